"""The store adapters by name, built from the settings (``INGEST_STORES``)."""

from __future__ import annotations

from config import Settings
from stores.base import Store


def build_store(name: str, settings: Settings) -> Store:
    """The adapter of store ``name`` for these settings (imports only what it needs)."""
    if name == "jsonl":
        from stores.jsonl import JsonlStore

        return JsonlStore(
            settings.output_dir,
            rotate_bytes=settings.jsonl_rotate_bytes,
            rotate_hourly=settings.jsonl_rotate_hourly,
            fsync=settings.jsonl_fsync,
        )
    if name == "postgres":
        from stores.postgres import PostgresStore

        if not settings.postgres_dsn:
            raise ValueError("the postgres store needs INGEST_POSTGRES_DSN")
        return PostgresStore(settings.postgres_dsn, settings.postgres_table)
    if name == "redis_stream":
        from stores.redis_client import redis_client
        from stores.redis_stream import RedisStreamStore

        client = redis_client(settings.redis_stream_url or settings.effective_redis_url)
        return RedisStreamStore(
            client,
            settings.stream_name,
            settings.redis_stream_maxlen,
            marker_ttl=settings.outbox_retention * 2,
        )
    if name == "webhook":
        from stores.webhook import WebhookStore

        if not (settings.webhook_url and settings.webhook_secret):
            raise ValueError("the webhook store needs INGEST_WEBHOOK_URL and INGEST_WEBHOOK_SECRET")
        return WebhookStore(
            settings.webhook_url,
            settings.webhook_secret,
            concurrency=settings.webhook_concurrency,
            timeout=settings.webhook_timeout,
            user_agent=settings.user_agent,
        )
    raise ValueError(f"unknown store {name!r}")


def build_stores(settings: Settings) -> list[Store]:
    """Every configured store, in ``INGEST_STORES`` order."""
    return [build_store(name, settings) for name in settings.store_names]
