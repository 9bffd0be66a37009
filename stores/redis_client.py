"""One Redis client per process, from the settings in force."""

from __future__ import annotations

from functools import lru_cache

import redis

from config import Settings


@lru_cache(maxsize=8)
def redis_client(url: str, max_connections: int = 100) -> redis.Redis:
    """A pooled client for ``url`` (``redis://``, ``rediss://`` or ``unix://``), shared by threads."""
    return redis.Redis.from_url(
        url, health_check_interval=30, socket_timeout=30, max_connections=max_connections
    )


def client_for(settings: Settings) -> redis.Redis:
    """The client of the Redis these settings point at, its pool sized for every fetch
    thread of a worker to hold a connection at once."""
    return redis_client(settings.effective_redis_url, settings.fetch_concurrency + 64)


def as_bytes(value: object) -> bytes:
    """A Redis reply as bytes (clients here never set ``decode_responses``)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    raise TypeError(f"unexpected Redis reply {type(value).__name__}")


def as_text(value: object, errors: str = "strict") -> str:
    """A Redis reply decoded as UTF-8."""
    return as_bytes(value).decode("utf-8", errors)
