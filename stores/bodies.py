"""Page bodies in Redis, stored once by the fetch stage and read by later stages.

A page averages ~200 kB of HTML; riding in every one of five Celery messages it would cost
five serialisations and five copies through the broker. Instead the fetch stage stores it
once, zlib-compressed (level 1: ~1 ms, ~5x smaller), under a key with a TTL, and messages
carry the key. ``bench/pipeline.py`` measures both.
"""

from __future__ import annotations

import zlib

import redis

from stores.redis_client import as_bytes
from tasks.errors import PermanentError


class BodyStore:
    """Compressed page bodies under ``<prefix>:body:<batch>:<record id>``, expiring after ``ttl`` seconds.

    The batch is part of the key: the same URL in two live batches is fetched by each, and
    one batch's publish must not delete the page the other one still needs.
    """

    def __init__(self, client: redis.Redis, prefix: str, ttl: int) -> None:
        self._client = client
        self._prefix = prefix
        self._ttl = ttl

    def put(self, batch: str, record_id: str, html: str) -> str:
        """Store the body and return its key."""
        key = f"{self._prefix}:body:{batch}:{record_id}"
        self._client.set(key, zlib.compress(html.encode("utf-8"), 1), ex=self._ttl)
        return key

    def get(self, key: str) -> str:
        """The body under ``key``; ``body_expired`` if its TTL ran out."""
        data = self._client.get(key)
        if data is None:
            raise PermanentError(f"page body {key} expired or missing", reason="body_expired")
        return zlib.decompress(as_bytes(data)).decode("utf-8")

    def delete(self, key: str) -> None:
        """Free the body once the record is published."""
        self._client.delete(key)
