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
        from stores.redis_stream import RedisStreamStore

        return RedisStreamStore.from_settings(settings)
    if name == "webhook":
        from stores.webhook import WebhookStore

        return WebhookStore.from_settings(settings)
    raise ValueError(f"unknown store {name!r}")


def build_stores(settings: Settings) -> list[Store]:
    """Every configured store, in ``INGEST_STORES`` order."""
    return [build_store(name, settings) for name in settings.store_names]
