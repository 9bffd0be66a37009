"""The messages of the pipeline, built in one place.

fetch (fetch queue, I/O pool) -> language -> clean -> entities -> dedup -> publish
(CPU queue, prefork). Each message carries :class:`tasks.record.Job` s; the page body
travels by reference (a Redis key), never inside the messages.

A fetch message carries a *bundle* of one or more jobs. Celery's cost per message (delivery,
unacked bookkeeping, ack, task events) is about two thirds of a fetch worker's CPU, so a large
batch is sent in bundles of up to ``fetch_bundle_size`` URLs from different hosts, fetched one
after another by one pool slot (:func:`bundle_jobs`). For each URL it fetched, the fetch
task sends it on (:func:`send_after_fetch`): the CPU stages, one job per message, as a
Celery chain.
Retries, deferrals and redeliveries go back as bundles of one.

Signatures are built by task name, so the producer does not import the stages (nor their
models) to enqueue.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import zip_longest
from typing import Any
from urllib.parse import urlsplit

from config import Settings
from tasks.record import Job
from tasks.redact import redact_url
from worker.app import app

#: Stage names in chain order, as the ledger and ``ingest status`` report them.
STAGES = ("fetch", "language", "clean", "entities", "dedup", "publish")
FETCH_TASK = "ingest.fetch"
#: The error callback of every message: a stage killed from outside (hard time limit).
FAILURE_TASK = "ingest.task_failed"


def _shown(urls: Sequence[str], batch: str) -> dict[str, str]:
    """What Flower and the task events show as the arguments: the URLs, not whole jobs.

    Given here, it also spares Celery a ``saferepr()`` of the jobs on every publish. A
    password in a URL is masked (:mod:`tasks.redact`): Flower shows this to whoever opens it.
    """
    shown = ", ".join(repr(redact_url(url)) for url in urls[:3])
    shown += f", ... {len(urls)} URLs" if len(urls) > 3 else ""
    return {"argsrepr": f"Jobs([{shown}], batch={batch!r})", "kwargsrepr": "{}"}


def send_fetch(
    jobs: Sequence[Job],
    settings: Settings,
    *,
    countdown: float | None = None,
    retries: int = 0,
    slot_until: float | None = None,
    connection: Any = None,
) -> None:
    """Send the fetch message for ``jobs``; a retry or a deferral is a bundle of one."""
    if not jobs:
        raise ValueError("a fetch bundle needs at least one job")
    options: dict[str, Any] = {"retries": retries, **_shown([job.record.url for job in jobs], jobs[0].batch)}
    if countdown is not None:
        options["countdown"] = countdown
    if connection is not None:
        options["connection"] = connection
    app.send_task(
        FETCH_TASK,
        args=([job.model_dump(mode="json") for job in jobs],),
        kwargs={"slot_until": slot_until} if slot_until is not None else {},
        queue=settings.fetch_queue,
        link_error=[_errback()],
        **options,
    )


def send_after_fetch(job: Job, settings: Settings) -> None:
    """Send one fetched job to the CPU stages: language, then the rest as its Celery chain.

    The message is what ``chain(...).apply_async()`` would send, built without canvas
    objects: in a 200-thread fetch worker their class-wide cached-property locks (kombu's
    ``cached_property`` locks on every read) were where threads waited most.
    """
    shown = _shown([job.record.url], job.batch)
    errback = [_errback()]
    first, *rest = STAGES[1:]
    # Celery runs a message's chain from its end: the next stage is the last item.
    remaining = [
        dict(app.signature(f"ingest.{name}", queue=settings.cpu_queue, link_error=errback, **shown))
        for name in reversed(rest)
    ]
    app.send_task(
        f"ingest.{first}",
        args=(job.model_dump(mode="json"),),
        queue=settings.cpu_queue,
        chain=remaining,
        link_error=errback,
        **shown,
    )


def _errback() -> dict[str, Any]:
    """The error callback of every message: a stage killed from outside (hard time limit)."""
    return dict(app.signature(FAILURE_TASK))


def bundle_size(total: int, settings: Settings) -> int:
    """URLs per fetch message for a batch of ``total``.

    One per message until the batch is large enough to give every pool slot of one fetch
    worker a bundle of its own; then up to ``fetch_bundle_size``.
    """
    return max(1, min(settings.fetch_bundle_size, total // max(settings.fetch_concurrency, 1)))


def bundle_jobs(jobs: Sequence[Job], size: int) -> list[list[Job]]:
    """Jobs in bundles of ``size``, each bundle spreading over as many hosts as it can.

    Jobs are dealt host by host (one of each host in turn) before they are cut into bundles,
    so the URLs of one bundle rarely wait for each other's host slot.
    """
    by_host: dict[str, list[Job]] = {}
    for job in jobs:
        by_host.setdefault(_host(job.record.url), []).append(job)
    dealt = [job for turn in zip_longest(*by_host.values()) for job in turn if job is not None]
    size = max(size, 1)
    return [dealt[start : start + size] for start in range(0, len(dealt), size)]


def _host(url: str) -> str:
    """The URL's host, or "" when it has none (the fetch stage will say why)."""
    try:
        return urlsplit(url).hostname or ""
    except ValueError:
        return ""
