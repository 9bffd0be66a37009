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

A URL checked with its ``source``, ``labels`` and ``discovered_at``
(:func:`worker.intake.check_url`) gets them on its record; the ledger keeps them with the
batch, so a URL the reconciler sends again keeps them too. :func:`dispatch` is the part after
the batch is opened, shared with the intake bridge (:mod:`worker.intake_bridge`), which counts
stream entries into rolling batches instead.

>>> from worker import enqueue
>>> result = enqueue(["https://example.org/story"])
>>> result.batch  # doctest: +SKIP
'b-20261129-...'
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

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
    An entry's ``source``, ``labels`` and ``discovered_at`` go on the record.
    """
    entry = url if isinstance(url, IntakeUrl) else check_url(url)
    record = ArticleRecord.model_validate(
        {"id": record_id(entry.identity), "url": entry.url, **entry.record_fields}
    )
    return Job(batch=batch, record=record)


def fields_json(job: Job) -> str | None:
    """The intake fields of the job's record as the ledger keeps them (for the reconciler),
    None when it has none."""
    fields = job.record.model_dump(mode="json", include={"source", "labels", "discovered_at"})
    kept = {name: value for name, value in fields.items() if value}
    return json.dumps(kept, ensure_ascii=False, separators=(",", ":")) if kept else None


def read_urls(lines: Iterable[str]) -> list[str]:
    """URLs of a file: one per line; blank lines and ``#`` comments skipped."""
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def enqueue(
    urls: Iterable[str | IntakeUrl], settings: Settings | None = None, batch: str | None = None
) -> EnqueueResult:
    """Send every URL down the pipeline as one batch.

    ``urls`` are text, or entries :mod:`worker.intake` already checked (a URL file, or URLs
    with their ``source``, ``labels`` and ``discovered_at``, which go on their records). A URL
    repeated in it is sent once; a URL already published inside the re-ingest window is
    counted as ``seen`` and not sent; a bad URL ends at once as a ``bad_url`` dead letter.
    """
    settings = settings or get_settings()
    batch = batch or new_batch_id()
    jobs: dict[str, tuple[IntakeUrl, Job]] = {}
    repeated = 0
    for url in urls:
        entry = url if isinstance(url, IntakeUrl) else check_url(url)
        job = new_job(entry, batch)
        if job.record.id in jobs:
            repeated += 1
            continue
        jobs[job.record.id] = (entry, job)
    client = client_for(settings)
    ledger = Ledger(client, settings.key_prefix, settings.batch_ttl)
    outbox = outbox_for(settings, ledger)
    # Before anything can be committed: every configured store's group must see it.
    outbox.ensure_groups(settings.store_names)
    fields = {rid: text for rid, (_, job) in jobs.items() if (text := fields_json(job)) is not None}
    ledger.open_batch(batch, len(jobs), {rid: job.record.url for rid, (_, job) in jobs.items()}, fields)
    sent = dispatch(settings, ledger, outbox, batch, list(jobs.values()))
    return EnqueueResult(batch=batch, total=len(jobs), repeated=repeated, seen=sent.seen, bad=sent.bad)


@dataclass(frozen=True)
class Dispatched:
    """What :func:`dispatch` did with the jobs it was given."""

    sent: int
    """Jobs sent to the fetch stage."""
    seen: int
    """Ended as ``seen`` (published inside the re-ingest window): not sent."""
    bad: int
    """Ended as ``bad_url`` dead letters: not sent."""


def dispatch(
    settings: Settings,
    ledger: Ledger,
    outbox: Outbox,
    batch: str,
    jobs: Sequence[tuple[IntakeUrl, Job]],
    connection: Any = None,
) -> Dispatched:
    """Send on their way the jobs of ``batch`` that the ledger already counts (one per record id).

    A URL published inside the re-ingest window ends as ``seen``, a bad one as a ``bad_url``
    dead letter (both idempotent: a URL that already has its outcome is left alone); the rest
    go to the fetch stage (through ``connection`` if given, else a connection of their own).
    :func:`enqueue` calls it after opening the batch; the intake bridge
    (:mod:`worker.intake_bridge`) after counting stream entries into their rolling batch.
    """
    canonical = {job.record.id: entry.identity for entry, job in jobs if entry.problem is None}
    bad = {job.record.id: entry.error for entry, job in jobs if entry.problem is not None}
    by_id = {job.record.id: job for _, job in jobs}
    seen_urls = SeenUrls(client_for(settings), settings.key_prefix, settings.seen_ttl)
    marks = seen_urls.lookup(list(canonical.values()))
    seen = {rid for rid, mark in zip(canonical, marks, strict=True) if mark is not None}
    for rid in seen:
        ledger.claim_outcome(batch, rid, "seen")
    dead_letter_at_intake(outbox, batch, [by_id[rid] for rid in bad], bad)
    to_fetch = [job for rid, job in by_id.items() if rid not in seen and rid not in bad]
    if to_fetch:
        bundles = bundle_jobs(to_fetch, bundle_size(len(to_fetch), settings))
        if connection is not None:
            for bundle in bundles:
                send_fetch(bundle, settings, connection=connection)
        else:
            with app.connection_for_write(settings.effective_broker_url) as own:
                for bundle in bundles:
                    send_fetch(bundle, settings, connection=own)
    return Dispatched(sent=len(to_fetch), seen=len(seen), bad=len(bad))


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
