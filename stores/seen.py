"""The "already seen" set: canonical URLs published inside the re-ingest window.

One Redis string per canonical URL, ``<prefix>:seen:<sha256 of the URL, 32 hex>``, holding
``<record id> <batch>`` with the re-ingest window (``seen_ttl``) as its TTL. Publishing
marks every name the page is known by (the URL as enqueued, the final URL after redirects,
its ``<link rel=canonical>``); the producer checks the enqueued URL before sending it, and
the dedup stage checks the other two once the page is fetched.

Marks made by the same batch are not "seen": a batch is one ingestion, and two of its URLs
that turn out to be the same page (one redirects to the other, or both declare the same
canonical) are left to content dedup, which publishes the second with ``duplicate_of``.
Whichever of them publishes first, the outcome is the same.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import redis

from stores.redis_client import as_text
from tasks.record import record_id


@dataclass(frozen=True)
class SeenMark:
    """Who published a URL inside the window."""

    record_id: str
    batch: str


class SeenUrls:
    """Canonical URLs published in the last ``ttl`` seconds (``ttl`` 0: nothing is ever seen)."""

    def __init__(self, client: redis.Redis, prefix: str, ttl: int) -> None:
        self._client = client
        self._prefix = prefix
        self._ttl = ttl

    @property
    def enabled(self) -> bool:
        """False when the re-ingest window is 0."""
        return self._ttl > 0

    def key(self, canonical_url: str) -> str:
        """The Redis key of one canonical URL."""
        return f"{self._prefix}:seen:{record_id(canonical_url)}"

    def lookup(self, canonical_urls: list[str]) -> list[SeenMark | None]:
        """The mark of each URL, None where it was not published inside the window."""
        if not self.enabled or not canonical_urls:
            return [None] * len(canonical_urls)
        raw = self._client.mget([self.key(url) for url in canonical_urls])
        marks: list[SeenMark | None] = []
        for value in raw:
            if value is None:
                marks.append(None)
                continue
            rid, _, batch = as_text(value).partition(" ")
            marks.append(SeenMark(record_id=rid, batch=batch))
        return marks

    def mark(self, canonical_urls: Iterable[str], published_id: str, batch: str) -> None:
        """Record that ``published_id`` was published under each of these URLs."""
        if not self.enabled:
            return
        pipe = self._client.pipeline(transaction=False)
        for url in dict.fromkeys(canonical_urls):
            pipe.set(self.key(url), f"{published_id} {batch}", ex=self._ttl)
        pipe.execute()
