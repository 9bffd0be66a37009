"""The last line of "nothing lost": a task that died without handling its own failure.

:func:`worker.stage.run_stage` dead-letters every error a stage raises. What it cannot see
is a stage killed from outside: the hard time limit kills the worker child mid-task (a
C extension can ignore the soft limit). Celery then marks the task failed in the worker's
main process and calls the chain's error callback there; this callback writes the URL's one
dead letter, so the batch still completes.
"""

from __future__ import annotations

from typing import Any

import structlog
from billiard.exceptions import TimeLimitExceeded

from tasks.record import Job
from worker.app import app
from worker.stage import StageTask, dead_letter

log = structlog.stdlib.get_logger("ingest.failures")


@app.task(bind=True, base=StageTask, name="ingest.task_failed")
def task_failed(self: StageTask, request: Any, exc: BaseException, traceback: object) -> None:
    """Error callback of every chain: dead-letter the URL whose stage task failed."""
    args = getattr(request, "args", None) or []
    if not args or not isinstance(args[0], dict):
        log.error("failure.unknown_job", task=getattr(request, "task", None), error=repr(exc))
        return
    job = Job.model_validate(args[0])
    stage = str(getattr(request, "task", "") or "unknown").removeprefix("ingest.")
    reason = "timeout" if isinstance(exc, TimeLimitExceeded) else "internal_error"
    detail = f"{type(exc).__name__}: {exc}"
    retries = int(getattr(request, "retries", 0) or 0)
    dead_letter(self, job, stage, reason, detail, retries + 1)
