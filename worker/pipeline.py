"""The chain of stages, built in one place.

fetch (fetch queue, I/O pool) -> language -> clean -> entities -> dedup -> publish
(CPU queue, prefork). Each message carries a :class:`tasks.record.Job`; the page body
travels by reference (a Redis key), never inside the messages.
"""

from __future__ import annotations

from celery import chain
from celery.canvas import Signature

from config import Settings
from tasks.clean import clean
from tasks.dedup import dedup
from tasks.entities import entities
from tasks.fetch import fetch
from tasks.language import language
from tasks.publish import publish
from tasks.record import Job
from worker.failures import task_failed

#: Stage names in chain order, as the ledger and ``ingest status`` report them.
STAGES = ("fetch", "language", "clean", "entities", "dedup", "publish")


def build_chain(job: Job, settings: Settings) -> Signature:
    """The Celery chain that takes one URL from fetch to publish, on these settings' queues."""
    cpu = settings.cpu_queue
    # What Flower and the task events show as the arguments: the URL, not the whole job.
    # Given here, it also spares Celery a saferepr() of the job on every publish.
    shown = {"argsrepr": f"Job(url={job.record.url!r}, batch={job.batch!r})", "kwargsrepr": "{}"}
    stages = chain(
        fetch.s(job.model_dump(mode="json")).set(queue=settings.fetch_queue, **shown),
        language.s().set(queue=cpu, **shown),
        clean.s().set(queue=cpu, **shown),
        entities.s().set(queue=cpu, **shown),
        dedup.s().set(queue=cpu, **shown),
        publish.s().set(queue=cpu, **shown),
    )
    # Called in the worker's main process when a stage dies from outside (hard time limit).
    stages.link_error(task_failed.s())
    return stages
