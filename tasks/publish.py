"""Stage 6, publish: hand the finished record to the downstream stores.

PostgreSQL is upserted by ``id`` first (idempotent). Then the URL's outcome is claimed in
the ledger; only the claim's winner appends to the JSONL store, so a redelivered publish
never adds a second line. Duplicates are published too, with ``duplicate_of`` set, and
counted under their own outcome.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from stores.postgres import PostgresStore
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
        if settings.postgres_dsn:
            postgres_store(settings.postgres_dsn, settings.postgres_table).upsert(record)
        if self.ledger.claim_outcome(current.batch, record.id, outcome_of(record)):
            self.jsonl.write_article(record)
        if current.body_key:
            self.bodies.delete(current.body_key)
        return current.model_copy(update={"body_key": None})

    return run_stage(self, STAGE, job, stage)
