"""The near-duplicate index in Redis: MinHash LSH with an atomic check-and-insert.

What it answers
    "Is this article a (near-)copy of one indexed inside the dedup window, and if so, which
    group does it belong to?" Each article is inserted with the id of its group's first
    member (its own id if it is the first), so every later copy learns that id in one step,
    whichever member it happens to resemble most. Jaccard similarity is symmetric: a copy
    that arrives before its original becomes the group's first member and the original
    joins it like any other copy.

Atomicity
    The lookup of every band, the verification of every candidate and the insertion are one
    Lua script: Redis runs scripts one at a time, so two workers that hold two copies of a
    story at the same moment are serialised; the second always sees the first and joins its
    group. No lock, no retry loop. A redelivered task finds its own identical sketch and
    gets the same answer without inserting twice (the group's first member finds its own
    id, i.e. stays first).

Layout (``B`` = ``<prefix>:dedup:{<scheme>:<partition>}``; the braces are a Redis Cluster
hash tag, so a partition lives in one slot and its script stays atomic)
    * ``B:seq`` - article counter (INCR), the article number ``n``;
    * ``B:d:<gen>:<n // 64>`` - hash, field ``n % 64``: 16-byte group id + sketch (1 byte
      per permutation; 16 + 48 = 64 bytes, the largest value a listpack hash keeps);
    * ``B:b:<gen>:<bucket>`` - hash, field ``band key // buckets``: the newest article
      numbers (at most :data:`MAX_PER_BAND_KEY`) whose band hashed to that key.

    Small hashes are stored by Redis as listpacks (a few bytes per field instead of a
    ~70-byte key per entry): ``buckets`` is sized so each band hash holds ~100 fields (and
    stays under the default ``hash-max-listpack-entries`` of 128), the article table 64.
    A band hash also holds the field ``~`` once its expiry is set, so an insert calls
    ``EXPIREAT`` only on the hashes it creates. ``bench/dedup_scale.py`` measures 237 bytes
    per article with 1,000,000 indexed (the target is 300).

Expiry: a news window of days, in generations
    The window (``dedup_ttl``, 7 days by default) is cut into ``generations`` time slices
    (4: 42 h each). An article is written under the current generation number
    (server clock, ``TIME``), and every key of a generation gets one ``EXPIREAT`` at the
    end of the generation plus the window, so a whole slice of the index vanishes at once,
    with no per-entry TTL, no sweeper and no memory spent on timestamps. Lookups read the
    current and the ``generations`` previous slices: an article is matched for at least
    the window and at most window x (1 + 1/generations) after it was indexed. The memory
    held is therefore about articles per day x (window + one generation) in days x ~240
    bytes: ~2.1 GB for a million articles a day over a 7-day window, ~210 MB for 100,000.
    The ``seq`` counter is the only key without expiry.

Sharding when one Redis is not enough
    The script needs all keys of one lookup on one node, and the hash tag puts a whole
    partition in one slot. ``dedup_partition=language`` makes one partition per detected
    language (copies of a wire story share its language; a German and an English version
    are not shingle copies anyway), so a Redis Cluster spreads the languages over its
    nodes, with the same groups as long as copies are detected in the same language (the
    benchmarks and the concurrency test run with one partition). A single language that
    outgrows a node can be split further by publisher region or by time (one cluster per
    window slice, looked up newest-first), at the price of a second round trip.
    Throughput is rarely the limit: a check-and-insert costs ~0.15-0.3 ms of Redis time, so
    one node serves a few thousand per second, more than the CPU stages before it produce
    on a dozen cores.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis

from tasks.minhash import Signature, estimate_jaccard, matches_needed

#: Article numbers kept per band key and generation: a band value shared by many articles
#: (a boilerplate sentence that survived cleaning) must not make every lookup slow. The
#: newest are kept, news copies arrive close together.
MAX_PER_BAND_KEY = 8
#: Articles per hash of the article table.
DOCS_PER_HASH = 64
_GROUP_ID_BYTES = 16

_CHECK_AND_INSERT = """
-- KEYS[1]: the partition's article counter (its hash tag covers every key used here).
-- ARGV: key base, generation seconds, generations looked back, window seconds,
-- matches needed, max per band key, group id (16 bytes), sketch, now ('' = server clock),
-- then one (bucket, field) pair per band.
local base, genlen, back = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local window, need, cap = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local own, sketch, now = ARGV[7], ARGV[8], tonumber(ARGV[9])
if not now then
  now = tonumber(redis.call('TIME')[1])
end
local k = #sketch
local idlen = #own
local gen = math.floor(now / genlen)
local best, best_group = -1, own
local checked = {}
local current, live = {}, {}
for g = gen, gen - back, -1 do
  local gs = string.format('%d', g)
  local bprefix, dprefix = base .. ':b:' .. gs .. ':', base .. ':d:' .. gs .. ':'
  for i = 10, #ARGV, 2 do
    local docs
    if g == gen then
      -- '~' marks a band hash whose expiry is set: then the insert below needs no EXPIREAT.
      local got = redis.call('HMGET', bprefix .. ARGV[i], ARGV[i + 1], '~')
      docs, current[i], live[i] = got[1], got[1], got[2]
    else
      docs = redis.call('HGET', bprefix .. ARGV[i], ARGV[i + 1])
    end
    if docs then
      for doc in string.gmatch(docs, '%d+') do
        local seen_key = gs .. ':' .. doc
        if not checked[seen_key] then
          checked[seen_key] = true
          local n = tonumber(doc)
          local dkey = dprefix .. string.format('%d', math.floor(n / 64))
          local rec = redis.call('HGET', dkey, string.format('%d', n % 64))
          if rec and #rec == idlen + k then
            local m = 0
            for j = 1, k do
              if string.byte(rec, idlen + j) == string.byte(sketch, j) then m = m + 1 end
            end
            if m > best then best, best_group = m, string.sub(rec, 1, idlen) end
          end
        end
      end
    end
  end
end
local group = own
if best >= need then group = best_group end
if best == k then
  return {group, best, 0}
end
local n = redis.call('INCR', KEYS[1])
local gs = string.format('%d', gen)
local expire_at = (gen + 1) * genlen + window
local ns = string.format('%d', n)
local dkey = base .. ':d:' .. gs .. ':' .. string.format('%d', math.floor(n / 64))
redis.call('HSET', dkey, string.format('%d', n % 64), group .. sketch)
redis.call('EXPIREAT', dkey, expire_at)
local bprefix = base .. ':b:' .. gs .. ':'
for i = 10, #ARGV, 2 do
  local bkey = bprefix .. ARGV[i]
  local docs = current[i]
  if docs then
    docs = docs .. ',' .. ns
    local _, commas = string.gsub(docs, ',', ',')
    while commas >= cap do
      docs = string.sub(docs, string.find(docs, ',', 1, true) + 1)
      commas = commas - 1
    end
  else
    docs = ns
  end
  if live[i] then
    redis.call('HSET', bkey, ARGV[i + 1], docs)
  else
    redis.call('HSET', bkey, ARGV[i + 1], docs, '~', 1)
    redis.call('EXPIREAT', bkey, expire_at)
  end
end
return {group, best, 1}
"""

_HEX_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class Match:
    """The index's answer for one article."""

    duplicate_of: str | None
    """Id of the group's first member, None if this article is the first."""
    similarity: float | None
    """Estimated Jaccard similarity to the closest indexed member, None if first."""
    inserted: bool
    """False when an identical sketch was indexed already (a redelivery or an exact copy)."""


@dataclass(frozen=True)
class IndexParams:
    """What shapes the index; ``scheme`` names it, so changing one starts a fresh index."""

    window: int
    generations: int
    buckets: int
    num_perm: int
    bands: int
    shingle_words: int
    threshold: float

    def __post_init__(self) -> None:
        if _GROUP_ID_BYTES + self.num_perm > 64:
            raise ValueError("num_perm must be at most 48 (16-byte id + sketch must fit 64 bytes)")
        if not 1 <= self.bands <= self.num_perm:
            raise ValueError("bands must be between 1 and num_perm")
        if self.window <= 0 or self.generations <= 0 or self.buckets <= 0:
            raise ValueError("window, generations and buckets must be positive")

    @property
    def scheme(self) -> str:
        """The part of the key name that makes signatures comparable."""
        return f"mh{self.num_perm}s{self.shingle_words}b{self.bands}"

    @property
    def generation_seconds(self) -> int:
        """Length of one generation."""
        return -(-self.window // self.generations)


class NearDuplicateIndex:
    """MinHash LSH index of one partition, with an atomic check-and-insert."""

    def __init__(self, client: redis.Redis, prefix: str, params: IndexParams, partition: str = "all") -> None:
        self._client = client
        self.params = params
        self.base = f"{prefix}:dedup:{{{params.scheme}:{partition}}}"
        self._needed = matches_needed(params.threshold, params.num_perm)
        self._script = client.register_script(_CHECK_AND_INSERT)

    def band_fields(self, signature: Signature) -> list[str]:
        """The script's (bucket, field) arguments for the signature's bands."""
        buckets = self.params.buckets
        pairs: list[str] = []
        for key in signature.bands(self.params.bands):
            pairs += [str(key % buckets), str(key // buckets)]
        return pairs

    def check_and_insert(self, record_id: str, signature: Signature, now: float | None = None) -> Match:
        """Find the group of ``record_id``'s article and index it, atomically.

        ``now`` (Unix seconds) overrides the Redis server clock, for tests of expiry.
        """
        raw = self._script(keys=[self._seq_key], args=self._args(record_id, signature, now))
        return self._match(record_id, raw)

    def check_and_insert_many(
        self, items: Sequence[tuple[str, Signature, float | None]], client: redis.Redis | None = None
    ) -> list[Match]:
        """:meth:`check_and_insert` of each ``(record id, signature, now)`` in order, in one
        round trip (each script still runs atomically, one after the other). For bulk loads."""
        pipe = (client or self._client).pipeline(transaction=False)
        for record_id, signature, now in items:
            self._script(keys=[self._seq_key], args=self._args(record_id, signature, now), client=pipe)
        raws = pipe.execute()
        return [self._match(item[0], raw) for item, raw in zip(items, raws, strict=True)]

    @property
    def _seq_key(self) -> str:
        return f"{self.base}:seq"

    def _args(self, record_id: str, signature: Signature, now: float | None) -> list[str | bytes | int]:
        if not _HEX_ID.match(record_id):
            raise ValueError(f"record id {record_id!r} is not 32 hex characters")
        if signature.num_perm != self.params.num_perm:
            raise ValueError("signature and index disagree on num_perm")
        params = self.params
        return [
            self.base,
            params.generation_seconds,
            params.generations,
            params.window,
            self._needed,
            MAX_PER_BAND_KEY,
            bytes.fromhex(record_id),
            signature.sketch(),
            "" if now is None else str(int(now)),
            *self.band_fields(signature),
        ]

    def _match(self, record_id: str, raw: list[Any]) -> Match:
        group, best, inserted = raw
        group_id = bytes(group).hex()
        if group_id == record_id:
            return Match(duplicate_of=None, similarity=None, inserted=bool(inserted))
        return Match(
            duplicate_of=group_id,
            similarity=estimate_jaccard(int(best), self.params.num_perm),
            inserted=bool(inserted),
        )

    def clear(self) -> int:
        """Delete every key of this partition (benchmarks and tests); the count deleted."""
        deleted = 0
        batch: list[bytes] = []
        for key in self._client.scan_iter(match=f"{self.base}:*", count=5000):
            batch.append(key)
            if len(batch) >= 5000:
                deleted += int(self._client.unlink(*batch))
                batch = []
        if batch:
            deleted += int(self._client.unlink(*batch))
        return deleted
