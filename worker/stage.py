"""What every stage task shares: context binding, timing, retries and dead letters.

A stage is a pure function ``Job -> Job``; :func:`run_stage` is the thin layer that turns it
into a well-behaved Celery task (like a dramatiq middleware, written out once):

* logs are bound with ``url``, ``batch``, ``stage`` and ``task_id``;
* :class:`TransientError` is retried with exponential backoff and jitter (or the server's
  ``Retry-After``) up to ``max_retries``, then dead-lettered;
* :class:`PermanentError`, a soft time limit and any unexpected exception end the URL as
  exactly one dead letter: the task shows FAILURE (:class:`worker.task_states.DeadLettered`),
  is not redelivered, and the chain stops while the worker keeps going;
* :class:`StopPipeline` ends the URL with a non-failure outcome (``unchanged``, ``seen``): the
  task succeeds and its chain stops (:mod:`worker.task_states` says why never ``Ignore``);
* every stage's duration and every outcome are counted for Prometheus (:mod:`worker.metrics`);
* a message redelivered more than ``max_deliveries`` times (it keeps killing its worker) is
  dead-lettered as ``worker_lost`` instead of looping forever.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cached_property, partial
from typing import Any, NoReturn

import structlog
from celery import Task
from celery.exceptions import Retry, SoftTimeLimitExceeded

from config import Settings, get_settings
from stores.bodies import BodyStore
from stores.ledger import Ledger
from stores.outbox import Outbox
from stores.redis_client import client_for
from stores.validators import ValidatorStore
from tasks.errors import IngestError, StopPipeline, TransientError
from tasks.record import DeadLetter, Job
from worker import metrics
from worker.guard import STATE_ERRORS, GuardedRequest, pause_after_state_error
from worker.pipeline import STAGES
from worker.task_states import DeadLettered, UrlEnded, end_task

log = structlog.stdlib.get_logger("ingest.stage")


class StageTask(Task):
    """Base class of the stage tasks: gives them the stores, created once per process."""

    abstract = True
    #: A task that failed because Redis was unreachable is requeued, never acknowledged.
    Request = GuardedRequest
    #: A dead letter is an expected end: logged by Celery without a traceback.
    throws = (DeadLettered,)

    @cached_property
    def settings(self) -> Settings:
        """Settings in force in this worker process."""
        return get_settings()

    @cached_property
    def ledger(self) -> Ledger:
        """The batch ledger."""
        return Ledger(client_for(self.settings), self.settings.key_prefix, self.settings.batch_ttl)

    @cached_property
    def bodies(self) -> BodyStore:
        """Page bodies stored by the fetch stage."""
        return BodyStore(client_for(self.settings), self.settings.key_prefix, self.settings.body_ttl)

    @cached_property
    def validators(self) -> ValidatorStore:
        """ETag / Last-Modified per URL, remembered by the fetch stage."""
        return ValidatorStore(
            client_for(self.settings), self.settings.key_prefix, self.settings.validators_ttl
        )

    @cached_property
    def outbox(self) -> Outbox:
        """Where finished records and dead letters are committed for the stores."""
        return outbox_for(self.settings, self.ledger)


def outbox_for(settings: Settings, ledger: Ledger) -> Outbox:
    """The outbox of these settings."""
    return Outbox(
        client_for(settings),
        settings.key_prefix,
        ledger,
        settings.outbox_retention,
        claim_idle=settings.delivery_claim_idle,
    )


#: What a stage does with a transient error it may still retry: send the job again in
#: ``countdown`` seconds, then raise ``Retry`` to end this attempt (the task shows RETRY).
RetryLater = Callable[[TransientError, float], NoReturn]


def run_stage(
    task: StageTask, stage: str, payload: dict[str, Any], work: Callable[[Job], Job]
) -> dict[str, Any]:
    """Run ``work`` on the job in ``payload`` as stage ``stage`` of ``task`` (one job per message)."""
    job = Job.model_validate(payload)
    retries = int(task.request.retries or 0)

    def retry_later(exc: TransientError, countdown: float) -> NoReturn:
        raise task.retry(exc=exc, countdown=countdown, max_retries=task.settings.max_retries)

    task_id = task.request.id or "local"
    counted = False
    try:
        deliveries = task.ledger.count_delivery(task_id, retries)
        counted = True
        result = run_job(
            task, stage, job, work, retries=retries, deliveries=deliveries, retry_later=retry_later
        )
    except UrlEnded as ended:
        return end_task(task, job.record.url, ended)
    except STATE_ERRORS as exc:
        undo = partial(task.ledger.uncount_delivery, task_id, retries) if counted else None
        pause_after_state_error(exc, undo=undo)  # then GuardedRequest requeues the message
        raise
    return result.model_dump(mode="json")


def run_job(
    task: StageTask,
    stage: str,
    job: Job,
    work: Callable[[Job], Job],
    *,
    retries: int,
    deliveries: int,
    retry_later: RetryLater,
) -> Job:
    """``work(job)`` with every way it can end handled (see the module docstring).

    ``deliveries`` is how often the message carrying the job was delivered: past
    ``max_deliveries`` the job is dead-lettered as ``worker_lost`` instead of run. Returns the
    next job, or raises :class:`UrlEnded` (the URL ended here: dead letter or stopped) or what
    ``retry_later`` raises.
    """
    # Bound for this job only and restored afterwards: a pool thread runs many tasks.
    with structlog.contextvars.bound_contextvars(
        url=job.record.url, batch=job.batch, stage=stage, task_id=task.request.id
    ):
        if deliveries > task.settings.max_deliveries:
            raise dead_letter(task, job, stage, "worker_lost", f"delivered {deliveries} times", retries + 1)
        return _attempt(task, stage, job, work, retries=retries, retry_later=retry_later)


def _attempt(
    task: StageTask,
    stage: str,
    job: Job,
    work: Callable[[Job], Job],
    *,
    retries: int,
    retry_later: RetryLater,
) -> Job:
    settings = task.settings
    started = time.perf_counter()
    try:
        result = work(job)
    except StopPipeline as stop:
        if task.ledger.claim_outcome(job.batch, job.record.id, stop.outcome):
            log.info("stage.stopped", outcome=stop.outcome, detail=stop.detail)
            metrics.count_outcome(stage, stop.outcome)
        if job.body_key:
            task.bodies.delete(job.body_key)
        raise UrlEnded(stop.outcome) from stop
    except TransientError as exc:
        if retries < settings.max_retries:
            countdown = _backoff(settings, retries, exc.retry_after)
            log.warning("stage.retry", reason=exc.reason, error=str(exc), countdown=countdown)
            task.ledger.retried(job.batch, stage)
            metrics.count_outcome(stage, "retried", exc.reason)
            retry_later(exc, countdown)
        raise dead_letter(task, job, stage, exc.reason, str(exc), retries + 1) from exc
    except IngestError as exc:
        raise dead_letter(task, job, stage, exc.reason, str(exc), retries + 1) from exc
    except SoftTimeLimitExceeded as exc:
        error = "stage exceeded its soft time limit"
        raise dead_letter(task, job, stage, "timeout", error, retries + 1) from exc
    except (UrlEnded, Retry):
        raise
    except STATE_ERRORS:
        raise  # nothing recorded: the message goes back to the queue (worker.guard)
    except Exception as exc:
        log.exception("stage.crashed")
        error = f"{type(exc).__name__}: {exc}"
        raise dead_letter(task, job, stage, "internal_error", error, retries + 1) from exc
    elapsed = time.perf_counter() - started
    metrics.observe_stage(stage, elapsed)
    result = result.model_copy(update={"record": result.record.with_timing(stage, elapsed)})
    task.ledger.stage_done(job.batch, stage, job.record.id, STAGES.index(stage), seconds=elapsed)
    log.info("stage.done", seconds=round(elapsed, 4))
    return result


def dead_letter(task: StageTask, job: Job, stage: str, reason: str, error: str, attempts: int) -> UrlEnded:
    """End the job's URL as one dead letter: in the ledger and, for the stores, in the outbox.

    Returns the :class:`UrlEnded` for the caller to raise (the task then shows FAILURE).
    """
    letter = DeadLetter(
        id=job.record.id,
        url=job.record.url,
        batch=job.batch,
        stage=stage,
        reason=reason,
        error=error[:2000],
        attempts=attempts,
        failed_at=datetime.now(UTC),
    )
    if task.outbox.commit_dead_letter(letter):
        task.validators.forget(job.record.id)
        log.warning("stage.dead_letter", reason=reason, error=error[:500], attempts=attempts)
        metrics.count_outcome(stage, "dead", reason)
    if job.body_key:
        task.bodies.delete(job.body_key)
    return UrlEnded("dead", reason, error[:500])


def _backoff(settings: Settings, retries: int, retry_after: float | None) -> float:
    """Seconds before the next try: the server's Retry-After, else exponential with jitter."""
    if retry_after is not None:
        # A countdown waits unacknowledged in the worker: past the visibility timeout it
        # would be handed out a second time. A longer Retry-After pauses the host instead.
        return min(retry_after, settings.visibility_timeout / 2)
    base = settings.retry_backoff_base * (2**retries)
    return round(base * random.uniform(0.5, 1.5), 3)
