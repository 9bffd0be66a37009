"""What happens when Redis (the broker or the state store) goes away in the middle of a task.

Every stage records its outcome in Redis: the ledger, the outbox, the page bodies, the
dedup index. If Redis cannot be reached, the task did not record anything, so its message
must not be acknowledged: it has to run again once Redis is back. Two pieces do that:

* :func:`pause_after_state_error` (used by :func:`worker.stage.run_stage` and the fetch task):
  a state error waits a little inside the task, so a worker does not spin through the
  queue while Redis is down, then propagates.
* :class:`GuardedRequest`, the request class of every stage task: a task that failed with a
  state error has its message rejected *with requeue* instead of acknowledged (Celery
  acknowledges failures: ``task_acks_on_failure_or_timeout``). Celery still calls the error
  callback in the pool child; :func:`worker.failures.task_failed` ignores state errors, so
  the URL is not dead-lettered while its message is requeued. If even the requeue fails, the
  broker is down too: the message stays in the broker's unacked set and comes back after
  ``visibility_timeout``.

The same holds when Celery fails to send the next step of a chain after the task returned
(kombu ``OperationalError``): the step runs again, which is harmless because every step is
idempotent per URL (the ledger counts a URL once per stage, the outbox commits it once).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import redis
import structlog
from billiard.einfo import ExceptionWithTraceback
from celery.worker.request import Request
from kombu.exceptions import OperationalError

log = structlog.stdlib.get_logger("ingest.guard")

#: Errors meaning "Redis is unreachable or refused the command": nothing was recorded.
STATE_ERRORS: tuple[type[BaseException], ...] = (redis.RedisError, OperationalError)

#: Seconds a task waits after a state error before its message goes back to the queue.
STATE_ERROR_PAUSE = 3.0


def is_state_error(exc: BaseException | None) -> bool:
    """True for an error of Redis or of the broker connection (possibly wrapped)."""
    if isinstance(exc, ExceptionWithTraceback):
        exc = exc.exc
    return isinstance(exc, STATE_ERRORS)


def pause_after_state_error(
    exc: BaseException, pause: float = STATE_ERROR_PAUSE, undo: Callable[[], None] | None = None
) -> None:
    """Log the state error and wait ``pause`` seconds; the caller then re-raises it.

    ``undo`` (best effort, once Redis may be back) takes back what the run counted before the
    error, such as its delivery: a message requeued by a live worker must not count towards
    ``max_deliveries`` after a Redis restart, or a URL could end as ``worker_lost``.
    """
    log.warning("stage.state_unavailable", error=f"{type(exc).__name__}: {exc}", pause=pause)
    time.sleep(pause)
    if undo is not None:
        with contextlib.suppress(*STATE_ERRORS):
            undo()


class GuardedRequest(Request):
    """A task request whose state errors requeue the message instead of acknowledging it."""

    def on_failure(self, exc_info: Any, send_failed_event: bool = True, return_ok: bool = False) -> None:
        """Requeue on a state error; any other failure is handled as Celery does."""
        exc = getattr(exc_info, "exception", None)
        if not is_state_error(exc):
            super().on_failure(exc_info, send_failed_event=send_failed_event, return_ok=return_ok)
            return
        try:
            self.reject(requeue=True)
            log.warning("stage.requeued", task=self.name, task_id=self.id, error=repr(exc))
        except Exception as requeue_error:
            log.error(
                "stage.requeue_failed",
                task=self.name,
                task_id=self.id,
                error=repr(requeue_error),
                detail="the message stays unacknowledged and comes back after the visibility timeout",
            )
