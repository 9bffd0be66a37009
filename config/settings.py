"""Every setting of news-ingest, in one place.

All settings come from environment variables with the ``INGEST_`` prefix (or a ``.env``
file in the working directory). Each field's description is the documentation that the
README's settings table repeats; ``ingest settings`` prints the values in force.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Redis used by workers and producers when ``INGEST_REDIS_URL`` is unset (``ingest run``
#: starts an embedded Redis instead).
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


class Settings(BaseSettings):
    """Runtime configuration, read from ``INGEST_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="INGEST_", env_file=".env", extra="ignore", frozen=True)

    # --- Broker, coordination and stores -------------------------------------------------
    redis_url: str | None = Field(
        default=None,
        description="Redis for the Celery broker, page bodies, dedup index and batch ledger. "
        "Unset: workers use redis://127.0.0.1:6379/0 and `ingest run` starts an embedded Redis.",
    )
    key_prefix: str = Field(
        default="ingest",
        description="Prefix of every Redis key and Celery queue name, so several deployments "
        "(or test runs) can share one Redis.",
    )
    postgres_dsn: str | None = Field(
        default=None,
        description="PostgreSQL DSN of the article store (upsert by id). Unset: no PostgreSQL store.",
    )
    postgres_table: str = Field(
        default="articles", description="Table of the PostgreSQL store (created if missing)."
    )
    output_dir: Path = Field(
        default=Path("ingest-output"),
        description="Directory of the JSONL store: articles.jsonl and dead-letters.jsonl.",
    )

    # --- Fetching -------------------------------------------------------------------------
    fetch_allow_private: bool = Field(
        default=False,
        description="Let the fetcher reach loopback, private and link-local addresses "
        "(local testing only; refused by default to prevent SSRF).",
    )
    fetch_connect_timeout: float = Field(default=5.0, description="Seconds to connect.")
    fetch_read_timeout: float = Field(default=15.0, description="Seconds between two reads.")
    fetch_deadline: float = Field(default=30.0, description="Seconds for a whole request, body included.")
    fetch_max_bytes: int = Field(
        default=10_000_000, description="Cap on the decompressed body size, in bytes."
    )
    fetch_max_redirects: int = Field(default=5, description="Redirect hops followed per URL.")
    user_agent: str = Field(
        default="news-ingest/0.1 (+https://github.com/news-ingest/news-ingest)",
        description="User-Agent sent with every request; include a contact URL.",
    )
    fetch_concurrency: int = Field(
        default=32, description="Threads of a fetch worker (requests in flight per process)."
    )

    # --- Task execution -------------------------------------------------------------------
    max_retries: int = Field(
        default=3, description="Retries of a transient error (timeout, 5xx, 429) per stage."
    )
    retry_backoff_base: float = Field(
        default=2.0, description="First retry delay in seconds; doubles each retry, with jitter."
    )
    max_deliveries: int = Field(
        default=3,
        description="Deliveries of one task message before it is dead-lettered as "
        "`worker_lost` (a page that kills its worker must not loop forever).",
    )
    soft_time_limit: int = Field(
        default=120, description="Seconds before a stage is interrupted (dead letter `timeout`)."
    )
    time_limit: int = Field(
        default=150, description="Seconds before the worker process running a stage is killed."
    )
    cpu_concurrency: int | None = Field(
        default=None, description="Processes of a CPU worker. Unset: one per core."
    )

    # --- Retention ------------------------------------------------------------------------
    body_ttl: int = Field(
        default=3600, description="Seconds a fetched page body stays in Redis for later stages."
    )
    batch_ttl: int = Field(
        default=7 * 24 * 3600, description="Seconds a batch's ledger and dead letters stay in Redis."
    )
    dedup_ttl: int = Field(
        default=7 * 24 * 3600,
        description="Seconds a content hash stays in the dedup index (the dedup window).",
    )

    # --- Stages ---------------------------------------------------------------------------
    spacy_models: dict[str, str] = Field(
        default={"fr": "fr_core_news_sm", "en": "en_core_web_sm"},
        description="Language (ISO 639-1) to spaCy pipeline name or path, as JSON. A language "
        "whose pipeline is not installed gets no entities.",
    )
    entities_max_chars: int = Field(
        default=20_000, description="Characters of article text sent to the NER model."
    )
    language_sample_chars: int = Field(
        default=1000, description="Characters of text the language detector reads."
    )

    # --- Logging --------------------------------------------------------------------------
    log_level: str = Field(default="INFO", description="Log level of the `ingest` loggers.")
    log_json: bool | None = Field(
        default=None, description="JSON log lines. Unset: JSON unless stderr is a terminal."
    )

    @property
    def effective_redis_url(self) -> str:
        """The Redis URL in force for workers and producers."""
        return self.redis_url or DEFAULT_REDIS_URL

    def key(self, *parts: str) -> str:
        """A Redis key under this deployment's prefix: ``key("batch", "b1")`` -> ``ingest:batch:b1``."""
        return ":".join((self.key_prefix, *parts))

    @property
    def fetch_queue(self) -> str:
        """Queue of the I/O-bound fetch stage."""
        return f"{self.key_prefix}.fetch"

    @property
    def cpu_queue(self) -> str:
        """Queue of the CPU-bound stages (language, clean, entities, dedup, publish)."""
        return f"{self.key_prefix}.cpu"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
