"""ETag and Last-Modified per URL, so a re-fetch can be a cheap conditional request.

Kept in Redis under ``<prefix>:validators:<record id>`` with a TTL; the fetch stage sends
``If-None-Match`` / ``If-Modified-Since`` from them and a 304 ends the URL as ``unchanged``.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from stores.redis_client import as_bytes, as_text


@dataclass(frozen=True)
class Validators:
    """What the server said identifies this version of the page."""

    etag: str | None = None
    last_modified: str | None = None

    def headers(self) -> dict[str, str]:
        """The conditional request headers these validators allow."""
        headers = {}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.last_modified:
            headers["If-Modified-Since"] = self.last_modified
        return headers


class ValidatorStore:
    """Validators per record id, kept ``ttl`` seconds after the last fetch."""

    def __init__(self, client: redis.Redis, prefix: str, ttl: int) -> None:
        self._client = client
        self._prefix = prefix
        self._ttl = ttl

    def _key(self, record_id: str) -> str:
        return f"{self._prefix}:validators:{record_id}"

    def get(self, record_id: str) -> Validators | None:
        """The validators of the last fetch of this URL, if any are remembered."""
        raw = self._client.hgetall(self._key(record_id))
        if not raw:
            return None
        fields = {as_text(key): as_bytes(value).decode("latin-1") for key, value in raw.items()}
        return Validators(etag=fields.get("etag") or None, last_modified=fields.get("last_modified") or None)

    def put(self, record_id: str, validators: Validators) -> None:
        """Remember the validators of a fetch (forget them when the server sent none)."""
        key = self._key(record_id)
        mapping: dict[str, str] = {
            name: value
            for name, value in (("etag", validators.etag), ("last_modified", validators.last_modified))
            if value
        }
        pipe = self._client.pipeline()
        pipe.delete(key)
        if mapping:
            for name, value in mapping.items():
                pipe.hset(key, name, value)
            pipe.expire(key, self._ttl)
        pipe.execute()

    def forget(self, record_id: str) -> None:
        """Drop the URL's validators: its last fetch did not end as a record, so the next
        fetch must be a full one (a 304 would otherwise end it as ``unchanged`` forever)."""
        self._client.delete(self._key(record_id))
