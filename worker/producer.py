"""The producer API: put URLs on the queue as one batch.

Intake is where URL-level dedup starts: every URL is canonicalised (:mod:`tasks.urls`), a
URL repeated inside the batch is sent once, and a URL published by an earlier batch inside
the re-ingest window (``seen_ttl``, :mod:`stores.seen`) is not fetched again: it ends at
once with the outcome ``seen`` in the batch ledger, and is counted there.

Intake is also where bad URLs end (:mod:`worker.intake`): a URL that is malformed, not
http(s) or was not UTF-8 in its file counts in the batch total and ends at once as one
``bad_url`` dead letter of stage ``intake`` (committed with the outcome, atomically, by
:meth:`stores.outbox.Outbox.commit_dead_letter`); it is never sent to the fetch stage. Every
URL loses its user info here, before it is stored, queued or fetched (:mod:`tasks.redact`).

>>> from worker import enqueue
>>> result = enqueue(["https://example.org/story"])
>>> result.batch  # doctest: +SKIP
'b-20261129-...'
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import structlog

from config import Settings, get_settings
from stores.ledger import Ledger
from stores.outbox import Outbox
from stores.redis_client import client_for
from stores.seen import SeenUrls
from tasks.record import ArticleRecord, DeadLetter, Job, record_id
from worker.app import app
from worker.intake import IntakeUrl, check_url
from worker.pipeline import bundle_jobs, bundle_size, send_fetch
from worker.stage import outbox_for

log = structlog.stdlib.get_logger("ingest.intake")


@dataclass(frozen=True)
class EnqueueResult:
    """What one enqueue call sent."""

    batch: str
    total: int
    repeated: int
    seen: int = 0
    """URLs of ``total`` that were published inside the re-ingest window: not sent."""
    bad: int = 0
    """URLs of ``total`` that ended at intake as ``bad_url`` dead letters: not sent."""


def new_batch_id() -> str:
    """A sortable, unique batch id."""
    return f"b-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{secrets.token_hex(4)}"


def intake_identity(url: str) -> tuple[str, bool]:
    """The canonical form of ``url`` and True, or its text and False if it has none."""
    entry = check_url(url)
    return entry.identity, entry.problem is None


def new_job(url: str | IntakeUrl, batch: str) -> Job:
    """The job that starts the chain for ``url`` (its user info removed).

    The id comes from the canonical URL; a URL too broken to canonicalise is keyed by its
    text (:func:`enqueue` dead-letters it at intake; a job sent anyway is refused by fetch).
    """
    entry = url if isinstance(url, IntakeUrl) else check_url(url)
    return Job(batch=batch, record=ArticleRecord(id=record_id(entry.identity), url=entry.url))


def read_urls(lines: Iterable[str]) -> list[str]:
    """URLs of a file: one per line; blank lines and ``#`` comments skipped."""
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def enqueue(
    urls: Iterable[str | IntakeUrl], settings: Settings | None = None, batch: str | None = None
) -> EnqueueResult:
    """Send every URL down the pipeline as one batch.

    ``urls`` are text, or entries :mod:`worker.intake` already checked (a URL file). A URL
    repeated in it is sent once; a URL already published inside the re-ingest window is
    counted as ``seen`` and not sent; a bad URL ends at once as a ``bad_url`` dead letter.
    """
    settings = settings or get_settings()
    batch = batch or new_batch_id()
    jobs: dict[str, Job] = {}
    canonical: dict[str, str] = {}
    bad: dict[str, str] = {}
    repeated = 0
    for url in urls:
        entry = url if isinstance(url, IntakeUrl) else check_url(url)
        job = new_job(entry, batch)
        if job.record.id in jobs:
            repeated += 1
            continue
        jobs[job.record.id] = job
        if entry.problem is None:
            canonical[job.record.id] = entry.identity
        else:
            bad[job.record.id] = entry.error
    client = client_for(settings)
    marks = SeenUrls(client, settings.key_prefix, settings.seen_ttl).lookup(list(canonical.values()))
    seen = {rid for rid, mark in zip(canonical, marks, strict=True) if mark is not None}
    ledger = Ledger(client, settings.key_prefix, settings.batch_ttl)
    outbox = outbox_for(settings, ledger)
    # Before anything can be committed: every configured store's group must see it.
    outbox.ensure_groups(settings.store_names)
    ledger.open_batch(batch, len(jobs), {rid: job.record.url for rid, job in jobs.items()})
    for rid in seen:
        ledger.claim_outcome(batch, rid, "seen")
    dead_letter_at_intake(outbox, batch, [jobs[rid] for rid in bad], bad)
    to_fetch = [job for rid, job in jobs.items() if rid not in seen and rid not in bad]
    if to_fetch:
        with app.connection_for_write(settings.effective_broker_url) as connection:
            for bundle in bundle_jobs(to_fetch, bundle_size(len(to_fetch), settings)):
                send_fetch(bundle, settings, connection=connection)
    return EnqueueResult(batch=batch, total=len(jobs), repeated=repeated, seen=len(seen), bad=len(bad))


def dead_letter_at_intake(outbox: Outbox, batch: str, jobs: Iterable[Job], errors: Mapping[str, str]) -> int:
    """End each job as one ``bad_url`` dead letter of stage ``intake`` (``errors`` by record id).

    Returns how many ended here (a job whose URL already had its outcome is left alone).
    """
    now = datetime.now(UTC)
    ended = 0
    for job in jobs:
        error = errors[job.record.id][:2000]
        letter = DeadLetter(
            id=job.record.id,
            url=job.record.url,
            batch=batch,
            stage="intake",
            reason="bad_url",
            error=error,
            attempts=1,
            failed_at=now,
        )
        if outbox.commit_dead_letter(letter):
            ended += 1
            log.debug("intake.dead_letter", url=letter.url, batch=batch, reason="bad_url", error=error)
    if ended:  # one line per batch: the CLI names every bad line already
        log.warning("intake.bad_urls", batch=batch, count=ended, reason="bad_url")
    return ended
