"""The intake dedup: canonical URLs that discovery already sent to the intake stream.

One Redis string per canonical URL, ``<prefix>:discovered:<sha256 of the URL, 32 hex>``,
shared by every watcher process, so a URL listed by two feeds, by two polls of one feed or by
two replicas is sent once. Sending is three steps, so that a watcher killed half-way loses
nothing and sends nothing twice while it lives:

1. :meth:`DiscoveredUrls.claim` (one Lua script per chunk of URLs) marks each URL not yet
   known as ``pending`` for ``pending_ttl`` seconds and says which were new; a URL already
   known gets its TTL renewed (it is remembered for ``ttl`` after the last poll that listed
   it, so a URL that stays in a sitemap for months is not sent again when its key expires);
2. the caller sends the new ones to the intake stream;
3. :meth:`DiscoveredUrls.confirm` sets them to their source with the full TTL.

A watcher killed between 1 and 3 leaves ``pending`` keys that expire, and the next poll
after that sends those URLs (at most a duplicate of what step 2 had already sent, never a
loss). :meth:`DiscoveredUrls.release` drops the claims of URLs whose sending failed.
"""

from __future__ import annotations

from collections.abc import Sequence

import redis

from tasks.record import record_id

_CLAIM = """
-- KEYS: one key per URL; ARGV[1]: pending ttl, ARGV[2]: ttl
local new = {}
for i, key in ipairs(KEYS) do
  if redis.call('SET', key, 'pending', 'NX', 'EX', ARGV[1]) then
    new[i] = 1
  else
    new[i] = 0
    if redis.call('GET', key) ~= 'pending' then
      redis.call('EXPIRE', key, ARGV[2])
    end
  end
end
return new
"""

#: URLs per claim script: one round trip each, short enough not to hold Redis.
CHUNK = 500


class DiscoveredUrls:
    """Canonical URLs sent in the last ``ttl`` seconds (counted from the last poll listing them)."""

    def __init__(self, client: redis.Redis, prefix: str, ttl: int, pending_ttl: int = 120) -> None:
        self._client = client
        self._prefix = prefix
        self._ttl = ttl
        self._pending_ttl = pending_ttl
        self._claim = client.register_script(_CLAIM)

    def key(self, canonical_url: str) -> str:
        """The Redis key of one canonical URL."""
        return f"{self._prefix}:discovered:{record_id(canonical_url)}"

    def known(self, canonical_urls: Sequence[str]) -> list[bool]:
        """Whether each URL was sent (or is being sent) already; reads only (``ingest discover``)."""
        flags: list[bool] = []
        for start in range(0, len(canonical_urls), CHUNK):
            chunk = canonical_urls[start : start + CHUNK]
            pipe = self._client.pipeline(transaction=False)
            for url in chunk:
                pipe.exists(self.key(url))
            flags.extend(bool(count) for count in pipe.execute())
        return flags

    def claim(self, canonical_urls: Sequence[str]) -> list[bool]:
        """True for each URL claimed now (not known before): the caller must send it, then
        :meth:`confirm` it (or :meth:`release` it if sending failed)."""
        flags: list[bool] = []
        for start in range(0, len(canonical_urls), CHUNK):
            keys = [self.key(url) for url in canonical_urls[start : start + CHUNK]]
            flags.extend(bool(flag) for flag in self._claim(keys=keys, args=[self._pending_ttl, self._ttl]))
        return flags

    def confirm(self, canonical_urls: Sequence[str], source: str) -> None:
        """Mark claimed URLs as sent (by ``source``), remembered for the full TTL."""
        for start in range(0, len(canonical_urls), CHUNK):
            pipe = self._client.pipeline(transaction=False)
            for url in canonical_urls[start : start + CHUNK]:
                pipe.set(self.key(url), source, ex=self._ttl)
            pipe.execute()

    def release(self, canonical_urls: Sequence[str]) -> None:
        """Drop the claims of URLs that were not sent: the next poll tries them again."""
        for start in range(0, len(canonical_urls), CHUNK):
            keys = [self.key(url) for url in canonical_urls[start : start + CHUNK]]
            if keys:
                self._client.delete(*keys)
