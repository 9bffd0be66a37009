"""The producer API: put URLs on the queue as one batch.

Intake is where URL-level dedup starts: every URL is canonicalised (:mod:`tasks.urls`), a
URL repeated inside the batch is sent once, and a URL published by an earlier batch inside
the re-ingest window (``seen_ttl``, :mod:`stores.seen`) is not fetched again: it ends at
once with the outcome ``seen`` in the batch ledger, and is counted there.

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
from stores.seen import SeenUrls
from tasks.errors import PermanentError
from tasks.record import ArticleRecord, Job, record_id
from tasks.urls import canonicalize_url
from worker.app import app, broker_url
from worker.pipeline import bundle_jobs, bundle_size, send_fetch
from worker.stage import outbox_for


@dataclass(frozen=True)
class EnqueueResult:
    """What one enqueue call sent."""

    batch: str
    total: int
    repeated: int
    seen: int = 0
    """URLs of ``total`` that were published inside the re-ingest window: not sent."""


def new_batch_id() -> str:
    """A sortable, unique batch id."""
    return f"b-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{secrets.token_hex(4)}"


def intake_identity(url: str) -> tuple[str, bool]:
    """The canonical form of ``url`` and True, or its raw text and False if it has none."""
    try:
        return canonicalize_url(url), True
    except PermanentError:
        return url, False


def new_job(url: str, batch: str) -> Job:
    """The job that starts the chain for ``url``.

    The id comes from the canonical URL; a URL too broken to canonicalise still gets a job
    (keyed by its raw text) so that the fetch stage dead-letters it with ``bad_url``.
    """
    identity, _ = intake_identity(url)
    return Job(batch=batch, record=ArticleRecord(id=record_id(identity), url=url.strip()))


def read_urls(lines: Iterable[str]) -> list[str]:
    """URLs of a file: one per line; blank lines and ``#`` comments skipped."""
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def enqueue(urls: Iterable[str], settings: Settings | None = None, batch: str | None = None) -> EnqueueResult:
    """Send every URL down the pipeline as one batch.

    A URL repeated in it is sent once; a URL already published inside the re-ingest window
    is counted as ``seen`` and not sent.
    """
    settings = settings or get_settings()
    batch = batch or new_batch_id()
    jobs: dict[str, Job] = {}
    canonical: dict[str, str] = {}
    repeated = 0
    for url in urls:
        identity, valid = intake_identity(url)
        job = Job(batch=batch, record=ArticleRecord(id=record_id(identity), url=url.strip()))
        if job.record.id in jobs:
            repeated += 1
            continue
        jobs[job.record.id] = job
        if valid:
            canonical[job.record.id] = identity
    client = client_for(settings)
    marks = SeenUrls(client, settings.key_prefix, settings.seen_ttl).lookup(list(canonical.values()))
    seen = {rid for rid, mark in zip(canonical, marks, strict=True) if mark is not None}
    ledger = Ledger(client, settings.key_prefix, settings.batch_ttl)
    # Before anything can be committed: every configured store's group must see it.
    outbox_for(settings, ledger).ensure_groups(settings.store_names)
    ledger.open_batch(batch, len(jobs))
    for rid in seen:
        ledger.claim_outcome(batch, rid, "seen")
    to_fetch = [job for rid, job in jobs.items() if rid not in seen]
    with app.connection_for_write(broker_url(settings.effective_redis_url)) as connection:
        for bundle in bundle_jobs(to_fetch, bundle_size(len(to_fetch), settings)):
            send_fetch(bundle, settings, connection=connection)
    return EnqueueResult(batch=batch, total=len(jobs), repeated=repeated, seen=len(seen))
