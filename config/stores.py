"""Settings of the stores and of record delivery (mixed into :class:`config.settings.Settings`).

Kept apart from the pipeline's settings so that everything about where records go, and how
hard delivery tries, is read in one screen. Every field is still an ``INGEST_*`` variable.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, model_validator

#: The stores a deployment can deliver records to (``INGEST_STORES``).
STORE_NAMES = ("jsonl", "postgres", "redis_stream", "webhook")


class StoreSettings(BaseModel):
    """Where finished records are delivered, and how delivery retries."""

    stores: str | None = Field(
        default=None,
        description="Comma list of the stores every record is delivered to: `jsonl`, `postgres`, "
        "`redis_stream`, `webhook`. Unset: `jsonl`, plus `postgres` when `INGEST_POSTGRES_DSN` is set.",
    )
    output_dir: Path = Field(
        default=Path("ingest-output"),
        description="Directory of the JSONL store: articles.jsonl and dead-letters.jsonl. `ingest status` "
        "and `ingest dead-letters` read a batch that Redis does not have from there (summary.json, "
        "dead-letters.jsonl).",
    )
    jsonl_rotate_bytes: int = Field(
        default=0,
        ge=0,
        description="Rotate articles.jsonl (and dead-letters.jsonl) once it reaches this many bytes: "
        "it is renamed `articles-<UTC time>.jsonl` and a new file starts. 0: never by size.",
    )
    jsonl_rotate_hourly: bool = Field(
        default=False,
        description="Write one file per UTC hour, `articles-YYYYMMDDTHH.jsonl`, instead of one file.",
    )
    jsonl_fsync: bool = Field(
        default=True,
        description="fsync the JSONL file after each written batch, before the batch is acknowledged.",
    )
    postgres_dsn: str | None = Field(
        default=None,
        description="PostgreSQL DSN of the article store (upsert by id). Unset: no PostgreSQL store.",
    )
    postgres_table: str = Field(
        default="articles", description="Table of the PostgreSQL store (created and migrated if missing)."
    )
    redis_stream: str | None = Field(
        default=None,
        description="Stream the `redis_stream` store XADDs records to (fields `id` and `record`). "
        "Unset: `<INGEST_KEY_PREFIX>:articles`.",
    )
    redis_stream_url: str | None = Field(
        default=None,
        description="Redis of the `redis_stream` store, when it is not the broker's (`INGEST_REDIS_URL`).",
    )
    redis_stream_maxlen: int = Field(
        default=1_000_000,
        ge=0,
        description="Approximate MAXLEN of the `redis_stream` store's stream (`XADD MAXLEN ~`); "
        "0: unbounded.",
    )
    webhook_url: str | None = Field(
        default=None, description="URL the `webhook` store POSTs each record to (the JSON as body)."
    )
    webhook_secret: str | None = Field(
        default=None,
        description="Key of the `X-Ingest-Signature: sha256=<hex HMAC-SHA256 of the body>` header. "
        "Required with the `webhook` store.",
    )
    webhook_concurrency: int = Field(
        default=8, ge=1, description="Webhook requests in flight per delivery process."
    )
    webhook_timeout: float = Field(default=10.0, gt=0, description="Seconds for one webhook request.")
    outbox_retention: int = Field(
        default=24 * 3600,
        ge=60,
        description="Seconds the outbox keeps a finished record. A store that is down is retried for "
        "this long; a record it still has not taken by then becomes a dead letter naming the store. "
        "`ingest replay` re-delivers what the outbox still holds.",
    )
    delivery_batch: int = Field(
        default=200, ge=1, description="Outbox entries a store's consumer writes at once."
    )
    delivery_consumers: int = Field(
        default=1,
        ge=1,
        le=32,
        description="Consumers per store in one `ingest deliver` process, each writing its own "
        "batches: more than 1 helps a store whose writes are bound by its server's CPU (PostgreSQL "
        "builds each record's tsvector). More processes scale the same way.",
    )
    delivery_backoff_max: float = Field(
        default=30.0,
        gt=0,
        description="Longest wait between two tries of a store that is down (exponential from 0.5 s, "
        "with jitter, or the store's Retry-After).",
    )
    delivery_claim_idle: float = Field(
        default=120.0,
        gt=0,
        description="Seconds after which an outbox entry read by a delivery process that died "
        "(unacknowledged) is taken over by another.",
    )

    @property
    def store_names(self) -> list[str]:
        """The configured stores, in delivery order; raises ValueError on an unknown name."""
        if self.stores is None or not self.stores.strip():
            return ["jsonl", *(["postgres"] if self.postgres_dsn else [])]
        names = list(dict.fromkeys(name.strip() for name in self.stores.split(",") if name.strip()))
        unknown = [name for name in names if name not in STORE_NAMES]
        if unknown:
            raise ValueError(f"INGEST_STORES names unknown store(s) {unknown}; choose from {STORE_NAMES}")
        return names

    @model_validator(mode="after")
    def _stores_are_usable(self) -> StoreSettings:
        """Fail at start-up, not at the first record, on a store that cannot work."""
        names = self.store_names
        if "postgres" in names and not self.postgres_dsn:
            raise ValueError("INGEST_STORES names postgres but INGEST_POSTGRES_DSN is unset")
        if "webhook" in names and not (self.webhook_url and self.webhook_secret):
            raise ValueError("INGEST_STORES names webhook: set INGEST_WEBHOOK_URL and INGEST_WEBHOOK_SECRET")
        if not self.postgres_table.isidentifier():
            raise ValueError(f"INGEST_POSTGRES_TABLE {self.postgres_table!r} is not a plain identifier")
        return self
