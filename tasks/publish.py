"""Stage 6, publish: hand the finished record to the downstream stores.

PostgreSQL is upserted by ``id`` first (idempotent). Then the URL's outcome is claimed in
the ledger; only the claim's winner appends to the JSONL store, so a redelivered publish
never adds a second line. Last, every name of the page (URL, final URL, canonical link) is
marked as seen for the re-ingest window, so later batches do not fetch it again; marking
after the writes means a crash in between costs a re-fetch, never a lost article.

Duplicates: by default a near-copy is published like any article, with ``duplicate_of``
and ``similarity`` set, so consumers can show one story with its outlets, or filter on
``duplicate_of IS NULL``. With ``dedup_drop_duplicates`` it is not written anywhere. Either
way it is counted under the ``duplicate`` outcome and its URLs are marked as seen.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from stores.postgres import PostgresStore
from stores.redis_client import client_for
from stores.seen import SeenUrls
from tasks.dedup import url_identities
from tasks.record import ArticleRecord, Job
from worker.app import app
from worker.stage import StageTask, run_stage

STAGE = "publish"


@lru_cache(maxsize=4)
def postgres_store(dsn: str, table: str) -> PostgresStore:
    """One PostgreSQL store per process."""
    return PostgresStore(dsn, table)


def outcome_of(record: ArticleRecord) -> str:
    """``duplicate`` for a copy of an earlier article, else ``published``."""
    return "duplicate" if record.duplicate_of else "published"


@app.task(bind=True, base=StageTask, name="ingest.publish")
def publish(self: StageTask, job: dict[str, Any]) -> dict[str, Any]:
    """Write the record to every configured store, exactly once per URL."""

    def stage(current: Job) -> Job:
        settings = self.settings
        record = current.record
        drop = settings.dedup_drop_duplicates and record.duplicate_of is not None
        if settings.postgres_dsn and not drop:
            postgres_store(settings.postgres_dsn, settings.postgres_table).upsert(record)
        if self.ledger.claim_outcome(current.batch, record.id, outcome_of(record)) and not drop:
            self.jsonl.write_article(record)
        seen = SeenUrls(client_for(settings), settings.key_prefix, settings.seen_ttl)
        seen.mark(url_identities(record), record.id, current.batch)
        if current.body_key:
            self.bodies.delete(current.body_key)
        return current.model_copy(update={"body_key": None})

    return run_stage(self, STAGE, job, stage)
