"""robots.txt rules per site, cached in Redis and shared by every fetch worker.

The body of each site's robots.txt is kept under ``<prefix>:robots:<origin>`` for ``ttl``
seconds, so a site is asked once per TTL by the whole pool, not once per process or URL.
Each process also keeps the parsed rules (protego) for ``local_ttl`` seconds to spare the
Redis round trip and the parse on every URL. An empty body means "everything allowed" (what
RFC 9309 prescribes for a missing robots.txt, a 4xx answer).
"""

from __future__ import annotations

import threading
import time

import redis
from protego import Protego

from stores.redis_client import as_text

#: RFC 9309: crawlers must parse at least the first 500 KiB of a robots.txt.
ROBOTS_MAX_BYTES = 500 * 1024


class RobotsCache:
    """Parsed robots.txt per origin (``https://host:port``)."""

    def __init__(self, client: redis.Redis, prefix: str, ttl: int, local_ttl: float = 60.0) -> None:
        self._client = client
        self._prefix = prefix
        self._ttl = ttl
        self._local_ttl = local_ttl
        self._local: dict[str, tuple[float, Protego]] = {}
        self._lock = threading.Lock()

    def _key(self, origin: str) -> str:
        return f"{self._prefix}:robots:{origin}"

    def get(self, origin: str) -> Protego | None:
        """The site's rules, or None when they must be fetched first."""
        now = time.monotonic()
        cached = self._local.get(origin)  # no lock: a dict read is atomic, and every fetch reads
        if cached and cached[0] > now:
            return cached[1]
        body = self._client.get(self._key(origin))
        if body is None:
            return None
        return self._remember(origin, as_text(body, errors="replace"))

    def claim_fetch(self, origin: str, seconds: int = 30) -> bool:
        """True for the one caller (across all workers) that should fetch ``origin``'s
        robots.txt now; the others wait for it instead of asking the site too."""
        return bool(self._client.set(f"{self._key(origin)}:lock", b"1", nx=True, ex=seconds))

    def release_fetch(self, origin: str) -> None:
        """End the claim of :meth:`claim_fetch` (fetched, or failed: let another try)."""
        self._client.delete(f"{self._key(origin)}:lock")

    def put(self, origin: str, body: str) -> Protego:
        """Store a freshly fetched robots.txt (``""`` for allow-all) and return its rules."""
        body = body[:ROBOTS_MAX_BYTES]
        self._client.set(self._key(origin), body.encode("utf-8"), ex=self._ttl)
        return self._remember(origin, body)

    def _remember(self, origin: str, body: str) -> Protego:
        rules = Protego.parse(body)
        with self._lock:
            if len(self._local) > 10_000:
                self._local.clear()
            self._local[origin] = (time.monotonic() + self._local_ttl, rules)
        return rules
