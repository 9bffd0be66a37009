"""How a stage task ends, as Celery (and so Flower) records it.

Flower shows a task's state from the worker's events, so each way a URL can end maps to
the state that tells the truth about it:

* the URL went on to its next stage, or ended with a non-failure outcome (``unchanged``,
  ``seen``): **SUCCESS**; an ended chain is stopped by clearing ``request.chain``, never with
  ``Ignore`` (an ignored task sends no event and would stay STARTED in Flower forever);
* the URL ended as a dead letter: **FAILURE**, with :class:`DeadLettered` (its reason and error)
  as the exception. The message is acknowledged, not redelivered
  (``task_acks_on_failure_or_timeout``), and the error callback skips it: the dead letter is
  already written;
* the URL was sent again for later (a retry after a transient error, or a deferral while its
  host is busy): **RETRY**, with the transient error or :class:`Deferred` as the reason.
"""

from __future__ import annotations

from typing import Any

from celery.exceptions import Retry


class DeadLettered(Exception):  # noqa: N818 - reads as a task state in Flower
    """The task's URL ended as a dead letter (already written); the task shows FAILURE."""

    def __init__(self, reason: str, error: str) -> None:
        super().__init__(reason, error)  # the arguments, so that the exception pickles
        self.reason = reason
        self.error = error

    def __str__(self) -> str:
        return f"{self.reason}: {self.error}"


class Deferred(Exception):  # noqa: N818 - reads as a task state in Flower
    """The URL's host was busy: the URL was sent again for when its slot is free."""


class UrlEnded(Exception):  # noqa: N818 - a control-flow signal inside a task
    """Raised inside a task when its URL's chain ends there, with ``outcome``.

    ``outcome`` is ``dead`` (a dead letter was written, with ``reason`` and ``error``) or a
    non-failure outcome of :data:`stores.ledger.OUTCOMES` such as ``unchanged``.
    """

    def __init__(self, outcome: str, reason: str = "", error: str = "") -> None:
        super().__init__(outcome, reason, error)
        self.outcome = outcome
        self.reason = reason
        self.error = error


def sent_again(message: str, cause: BaseException, countdown: float) -> Retry:
    """The exception that marks a task RETRY after its URL was sent again by hand.

    Celery's ``task.retry()`` would publish the message itself; the fetch stage sends its
    retries and deferrals as bundles of one, so it raises this instead (the trace records
    RETRY and sends nothing).
    """
    return Retry(message, exc=cause, when=countdown)


def end_task(task: Any, job_url: str, ended: UrlEnded) -> dict[str, Any]:
    """End the task for a URL whose chain stops here: raise FAILURE for a dead letter, else
    stop the chain and return what Flower shows as the (successful) result."""
    if ended.outcome == "dead":
        raise DeadLettered(ended.reason, ended.error) from None
    task.request.chain = None  # Celery sends the next step only while the chain is set
    return {"url": job_url, "outcome": ended.outcome}
