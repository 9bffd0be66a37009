"""The producer API: put URLs on the queue as one batch.

>>> from worker import enqueue
>>> result = enqueue(["https://example.org/story"])
>>> result.batch  # doctest: +SKIP
'b-20261129-...'
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass

from config import Settings, get_settings
from stores.ledger import Ledger
from stores.redis_client import client_for
from tasks.errors import PermanentError
from tasks.record import ArticleRecord, Job, record_id
from tasks.urls import canonicalize_url
from worker.app import app, broker_url
from worker.pipeline import build_chain


@dataclass(frozen=True)
class EnqueueResult:
    """What one enqueue call sent."""

    batch: str
    total: int
    repeated: int


def new_batch_id() -> str:
    """A sortable, unique batch id."""
    return f"b-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{secrets.token_hex(4)}"


def new_job(url: str, batch: str) -> Job:
    """The job that starts the chain for ``url``.

    The id comes from the canonical URL; a URL too broken to canonicalise still gets a job
    (keyed by its raw text) so that the fetch stage dead-letters it with ``bad_url``.
    """
    try:
        identity = canonicalize_url(url)
    except PermanentError:
        identity = url
    return Job(batch=batch, record=ArticleRecord(id=record_id(identity), url=url.strip()))


def read_urls(lines: Iterable[str]) -> list[str]:
    """URLs of a file: one per line; blank lines and ``#`` comments skipped."""
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def enqueue(urls: Iterable[str], settings: Settings | None = None, batch: str | None = None) -> EnqueueResult:
    """Send every URL down the pipeline as one batch; a URL repeated in it is sent once."""
    settings = settings or get_settings()
    batch = batch or new_batch_id()
    jobs: dict[str, Job] = {}
    repeated = 0
    for url in urls:
        job = new_job(url, batch)
        if job.record.id in jobs:
            repeated += 1
            continue
        jobs[job.record.id] = job
    ledger = Ledger(client_for(settings), settings.key_prefix, settings.batch_ttl)
    ledger.open_batch(batch, len(jobs))
    with app.connection_for_write(broker_url(settings.effective_redis_url)) as connection:
        for job in jobs.values():
            build_chain(job, settings).apply_async(connection=connection)
    return EnqueueResult(batch=batch, total=len(jobs), repeated=repeated)
