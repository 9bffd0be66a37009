"""Stage 6, publish: make the record final, once per URL, for every store to take.

The record is committed to the outbox (:mod:`stores.outbox`) in the same atomic step that
claims the URL's outcome in the batch ledger; the stores' delivery consumers
(:mod:`worker.delivery`) write it to JSONL, PostgreSQL, a Redis Stream or a webhook, each at
its own pace, so a store that is down delays its copy and never the pipeline. A redelivered
publish finds the outcome claimed and commits nothing; the same URL made final by another
live batch ends here as ``seen``. Last, every name of the page (URL, final URL, canonical
link) is marked as seen for the re-ingest window, so later batches do not fetch it again;
marking after the commit means a crash in between costs a re-fetch, never a lost article.

Duplicates: by default a near-copy is published like any article, with ``duplicate_of``
and ``similarity`` set, so consumers can show one story with its outlets, or filter on
``duplicate_of IS NULL``. With ``dedup_drop_duplicates`` it is not committed at all. Either
way it is counted under the ``duplicate`` outcome and its URLs are marked as seen.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import structlog

from stores.redis_client import client_for
from stores.seen import SeenUrls
from tasks.dedup import url_identities
from tasks.record import ArticleRecord, Job
from worker import metrics
from worker.app import app
from worker.stage import StageTask, run_stage

STAGE = "publish"
log = structlog.stdlib.get_logger("ingest.publish")


def outcome_of(record: ArticleRecord) -> str:
    """``duplicate`` for a copy of an earlier article, else ``published``."""
    return "duplicate" if record.duplicate_of else "published"


def _count(ended: str, record: ArticleRecord) -> None:
    """Metrics of a publish that took the URL's outcome (``ended``: a redelivery, not counted)."""
    if ended in ("committed", "dropped"):
        metrics.count_record(record)
        metrics.count_outcome(STAGE, outcome_of(record))
        if record.discovered_at is not None:
            waited = datetime.now(UTC) - record.discovered_at
            metrics.observe_discovery_delay(max(waited.total_seconds(), 0.0))
    elif ended == "seen":
        metrics.count_outcome(STAGE, "seen")


@app.task(bind=True, base=StageTask, name="ingest.publish")
def publish(self: StageTask, job: dict[str, Any]) -> dict[str, Any]:
    """Commit the record to the outbox for every configured store, exactly once per URL."""

    def stage(current: Job) -> Job:
        settings = self.settings
        record = current.record
        if settings.dedup_drop_duplicates and record.duplicate_of is not None:
            claimed = self.ledger.claim_outcome(current.batch, record.id, "duplicate")
            ended = "dropped" if claimed else "ended"
        else:
            ended = self.outbox.commit_record(
                current.batch, record.id, outcome_of(record), record.model_dump_json(), settings.seen_ttl
            )
        _count(ended, record)
        if ended == "seen":
            log.info("publish.seen", detail="made final by another batch inside the re-ingest window")
        else:
            seen = SeenUrls(client_for(settings), settings.key_prefix, settings.seen_ttl)
            seen.mark(url_identities(record), record.id, current.batch)
        if current.body_key:
            self.bodies.delete(current.body_key)
        return current.model_copy(update={"body_key": None})

    return run_stage(self, STAGE, job, stage)
