"""The last line of "nothing lost": a task that died without handling its own failure.

:func:`worker.stage.run_stage` dead-letters every error a stage raises. What it cannot see
is a stage killed from outside: the hard time limit kills the worker child mid-task (a
C extension can ignore the soft limit). Celery then marks the task failed in the worker's
main process and calls the chain's error callback there; this callback writes the URL's one
dead letter, so the batch still completes.

A task that failed on a state error (Redis or the broker unreachable) is not a failure of
its URL: :class:`worker.guard.GuardedRequest` requeues its message. Celery still calls the
error callback for it, in the pool child, once the task raised; by then Redis may be back,
so the callback must leave that URL alone rather than dead-letter it as ``internal_error``
(or split a bundle that is being requeued whole).
"""

from __future__ import annotations

from typing import Any

import structlog
from billiard.exceptions import TimeLimitExceeded

from tasks.record import Job
from worker.app import app
from worker.guard import is_state_error
from worker.pipeline import send_fetch
from worker.stage import StageTask, dead_letter
from worker.task_states import DeadLettered

log = structlog.stdlib.get_logger("ingest.failures")


@app.task(base=StageTask, name="ingest.task_failed")
def task_failed(request: Any, exc: BaseException, traceback: object) -> None:
    """Error callback of every message: dead-letter the URL whose stage task failed.

    A fetch bundle of several URLs cannot say which one failed: its URLs are sent again
    one per message, so that each ends on its own (a culprit as a dead letter at last).

    Not a bound task on purpose: Celery calls an unbound errback in place with
    ``(request, exc, traceback)``, but sends a bound one as a new task with the task id only
    (which then fails its own argument check). The stores come from the task object itself.
    """
    self: StageTask = task_failed
    if isinstance(exc, DeadLettered):
        return  # the stage wrote the dead letter itself and failed the task to show it
    if is_state_error(exc):
        log.info("failure.requeued_not_failed", task=getattr(request, "task", None), error=repr(exc))
        return  # GuardedRequest puts the message back: the URL runs again once Redis is back
    args = getattr(request, "args", None) or []
    payloads = args[0] if args and isinstance(args[0], list) else args[:1]
    if not payloads or not all(isinstance(payload, dict) for payload in payloads):
        log.error("failure.unknown_job", task=getattr(request, "task", None), error=repr(exc))
        return
    jobs = [Job.model_validate(payload) for payload in payloads]
    retries = int(getattr(request, "retries", 0) or 0)
    if len(jobs) > 1:
        log.warning("failure.bundle_split", urls=len(jobs), error=repr(exc))
        for job in jobs:
            send_fetch([job], self.settings, retries=retries)
        return
    stage = str(getattr(request, "task", "") or "unknown").removeprefix("ingest.")
    reason = "timeout" if isinstance(exc, TimeLimitExceeded) else "internal_error"
    detail = f"{type(exc).__name__}: {exc}"
    dead_letter(self, jobs[0], stage, reason, detail, retries + 1)
