"""The intake stream: the raw way in, for a program in any language that can talk to Redis.

One Redis Stream, ``<prefix>:intake`` (:func:`intake_key`), one entry per URL::

    XADD <prefix>:intake * url <URL> [source <name>] [batch <id>]
         [discovered_at <ISO 8601, UTC>] [labels <JSON object of string to string>]

``source`` names where the URL was found (a feed, a sitemap, a crawler); ``labels`` are that
source's labels; ``discovered_at`` is when it was found (the entry's own time when absent).
The three go onto the URL's record. ``batch`` puts the entry in that batch instead of a
rolling one. Other fields are ignored. :func:`add_to_intake` writes an entry from Python.

``ingest intake`` (:mod:`worker.intake_bridge`) reads the stream with the consumer group
:data:`GROUP` and turns the entries into pipeline jobs. This module holds what it does in
Redis, each step one Lua script:

* :meth:`IntakeStream.rolling_batch`: the rolling batch of a source
  (``<prefix>:intake:open[:<source>]``: its id and how many places it gave out, expiring
  ``intake_batch_window`` after it opened; full at ``intake_batch_max``), shared by every bridge.
* :meth:`IntakeStream.claim`: for each entry, the marker ``<prefix>:intake:done:<entry id>``
  is set if absent (``c <batch>``: claimed into that batch; ``r <batch>``: its URL was already
  in the batch) and, for a new URL, the URL is counted into the batch's ledger (``total``
  grows by one, the URL and its intake fields are kept for the reconciler), all at once. An
  entry whose marker exists is never counted again: what it says is returned instead.
* :meth:`IntakeStream.ack`: after the job was sent, ``XACK`` and the marker set to ``s <batch>``
  (sent), together.

So an entry is counted once, whichever bridge takes it how many times; a bridge finding
``c <batch>`` (its taker died between claiming and acknowledging) sends the URL again, into
the same batch, unless a stage already has it; the batch's one outcome per record id makes
that harmless (see :mod:`worker.intake_bridge`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis

from stores.ledger import Ledger
from stores.redis_client import as_bytes, as_text

#: The consumer group of the intake bridges.
GROUP = "bridge"
#: The fields of an entry that mean something; any other field is ignored.
FIELDS = ("url", "source", "batch", "discovered_at", "labels")
#: Seconds a marker is kept once its entry is acknowledged: long enough for any bridge still
#: holding the entry (it took it over from one it thought dead) to find it done.
ACKED_MARKER_TTL = 3600
#: Most labels per entry, and most characters of a label's name or value.
MAX_LABELS = 64
MAX_LABEL_CHARS = 256
MAX_SOURCE_CHARS = 200
BATCH_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")

_ROLLING_BATCH = """
-- KEYS: the source's open batch (hash: batch, count)
-- ARGV: id for a new batch, window ms, most URLs per batch, places wanted
local batch = redis.call('HGET', KEYS[1], 'batch')
local count = tonumber(redis.call('HGET', KEYS[1], 'count') or '0')
local most = tonumber(ARGV[3])
if (not batch) or count >= most then
  batch = ARGV[1]
  count = 0
  redis.call('DEL', KEYS[1])
  redis.call('HSET', KEYS[1], 'batch', batch, 'count', 0)
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
local take = math.min(tonumber(ARGV[4]), most - count)
redis.call('HINCRBY', KEYS[1], 'count', take)
return {batch, take}
"""

_CLAIM = """
-- KEYS: batch hash, batch urls hash, batch fields hash, index of batches, then one marker per entry
-- ARGV: batch, batch ttl, marker ttl, then per entry: record id, url, intake fields json ('' if none)
local now = redis.call('TIME')
local stamp = now[1] .. '.' .. string.format('%06d', now[2])
local states = {}
local added = 0
for i = 5, #KEYS do
  local j = 4 + (i - 5) * 3
  local marker = redis.call('GET', KEYS[i])
  if marker then
    states[#states + 1] = marker
  elseif redis.call('HSETNX', KEYS[2], ARGV[j], ARGV[j + 1]) == 1 then
    redis.call('SET', KEYS[i], 'c ' .. ARGV[1], 'EX', ARGV[3])
    if ARGV[j + 2] ~= '' then
      redis.call('HSET', KEYS[3], ARGV[j], ARGV[j + 2])
    end
    added = added + 1
    states[#states + 1] = 'new'
  else
    redis.call('SET', KEYS[i], 'r ' .. ARGV[1], 'EX', ARGV[3])
    states[#states + 1] = 'repeat'
  end
end
if added > 0 then
  if redis.call('HSETNX', KEYS[1], 'created_at', stamp) == 1 then
    redis.call('ZADD', KEYS[4], stamp, ARGV[1])
  end
  redis.call('HINCRBY', KEYS[1], 'total', added)
  redis.call('HSET', KEYS[1], 'touched', stamp)
  for k = 1, 3 do
    redis.call('EXPIRE', KEYS[k], ARGV[2])
  end
end
return states
"""

_ACK = """
-- KEYS: stream, then one marker per entry
-- ARGV: group, marker ttl, then per entry: entry id, batch
local acked = 0
for i = 2, #KEYS do
  local j = 3 + (i - 2) * 2
  acked = acked + redis.call('XACK', KEYS[1], ARGV[1], ARGV[j])
  redis.call('SET', KEYS[i], 's ' .. ARGV[j + 1], 'EX', ARGV[2])
end
return acked
"""


def intake_key(prefix: str) -> str:
    """The intake stream of the deployment with key prefix ``prefix``."""
    return f"{prefix}:intake"


def add_to_intake(
    client: redis.Redis,
    prefix: str,
    url: str,
    source: str | None = None,
    batch: str | None = None,
    discovered_at: datetime | str | None = None,
    labels: Mapping[str, str] | None = None,
) -> str:
    """Push one URL onto the intake stream; returns the entry id.

    ``discovered_at``: a datetime (naive means UTC) or ISO 8601 text; ``labels`` are sent as
    a JSON object. ``ingest intake`` turns the entry into a pipeline job.
    """
    fields: dict[str, str] = {"url": url}
    if source is not None:
        fields["source"] = source
    if batch is not None:
        fields["batch"] = batch
    if isinstance(discovered_at, datetime):
        moment = discovered_at if discovered_at.tzinfo else discovered_at.replace(tzinfo=UTC)
        fields["discovered_at"] = moment.astimezone(UTC).isoformat()
    elif discovered_at is not None:
        fields["discovered_at"] = discovered_at
    if labels:
        fields["labels"] = json.dumps(dict(labels), ensure_ascii=False, separators=(",", ":"))
    return as_text(client.xadd(intake_key(prefix), fields))  # type: ignore[arg-type]


def entry_time(entry_id: str) -> datetime:
    """When the entry was added: the milliseconds of its id."""
    return datetime.fromtimestamp(int(entry_id.partition("-")[0]) / 1000, UTC)


@dataclass(frozen=True)
class IntakeEntry:
    """One stream entry, read: its URL text (None when it has no ``url``) and its fields."""

    entry_id: str
    url: str | None
    url_problem: str | None = None
    """Why the URL text is unusable before any check (not UTF-8); None otherwise."""
    source: str | None = None
    batch: str | None = None
    discovered_at: datetime | None = None
    labels: dict[str, str] = field(default_factory=dict)
    dropped: tuple[str, ...] = ()
    """Optional fields left out because they were malformed, and why (the bridge logs them)."""


def parse_entry(entry_id: str, fields: Mapping[Any, Any]) -> IntakeEntry:
    """The entry's fields, checked. A malformed optional field is left out (named in
    ``dropped``), never the URL: whether the URL is good is the intake check's to say."""
    values = {as_text(key, "replace"): as_bytes(value) for key, value in fields.items()}
    dropped: list[str] = []

    def text(name: str) -> str | None:
        raw = values.get(name)
        if raw is None:
            return None
        try:
            return raw.decode("utf-8").strip() or None
        except UnicodeDecodeError:
            dropped.append(f"{name}: not UTF-8")
            return None

    url_problem = None
    url = None
    raw_url = values.get("url")
    if raw_url is not None:
        try:
            url = raw_url.decode("utf-8")
        except UnicodeDecodeError as exc:
            url = raw_url.decode("utf-8", "backslashreplace")
            url_problem = f"not UTF-8 (byte 0x{raw_url[exc.start]:02x} at byte {exc.start + 1})"
    source = text("source")
    if source is not None and len(source) > MAX_SOURCE_CHARS:
        dropped.append(f"source: longer than {MAX_SOURCE_CHARS} characters")
        source = None
    batch = text("batch")
    if batch is not None and not BATCH_ID.fullmatch(batch):
        dropped.append(f"batch {batch[:80]!r}: not a batch id (letters, digits, . _ : -; at most 128)")
        batch = None
    return IntakeEntry(
        entry_id=entry_id,
        url=url,
        url_problem=url_problem,
        source=source,
        batch=batch,
        discovered_at=_moment(text("discovered_at"), dropped) or entry_time(entry_id),
        labels=_labels(text("labels"), dropped),
        dropped=tuple(dropped),
    )


def _moment(value: str | None, dropped: list[str]) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        dropped.append(f"discovered_at {value[:80]!r}: not ISO 8601 (the entry's time is used)")
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _labels(value: str | None, dropped: list[str]) -> dict[str, str]:
    if value is None:
        return {}
    try:
        labels = json.loads(value)
    except ValueError:
        dropped.append("labels: not JSON")
        return {}
    if not isinstance(labels, dict) or not all(
        isinstance(name, str) and isinstance(text, str) for name, text in labels.items()
    ):
        dropped.append("labels: not a JSON object of string to string")
        return {}
    if len(labels) > MAX_LABELS or any(
        len(name) > MAX_LABEL_CHARS or len(text) > MAX_LABEL_CHARS for name, text in labels.items()
    ):
        dropped.append(f"labels: more than {MAX_LABELS}, or one longer than {MAX_LABEL_CHARS} characters")
        return {}
    return labels


@dataclass(frozen=True)
class Claim:
    """One entry to count into a batch: its id, record id, URL and intake fields (JSON or None)."""

    entry_id: str
    record_id: str
    url: str
    fields: str | None = None


@dataclass(frozen=True)
class ClaimState:
    """What :meth:`IntakeStream.claim` found for one entry.

    ``new``: counted into ``batch`` now; ``repeat``: its URL was already in ``batch`` (not
    counted); ``claimed``: counted into ``batch`` by an earlier take that did not acknowledge
    it; ``repeated``: an earlier take found it a repeat; ``sent``: sent and acknowledged before.
    """

    state: str
    batch: str


_MARKER_STATES = {"c": "claimed", "r": "repeated", "s": "sent"}


class IntakeStream:
    """The stream ``<prefix>:intake``, its group :data:`GROUP` and the bridges' markers."""

    def __init__(self, client: redis.Redis, prefix: str, ledger: Ledger, claim_idle: float = 30.0) -> None:
        self._client = client
        self._prefix = prefix
        self._ledger = ledger
        self.claim_idle = claim_idle
        self.key = intake_key(prefix)
        self._rolling = client.register_script(_ROLLING_BATCH)
        self._claim = client.register_script(_CLAIM)
        self._ack = client.register_script(_ACK)

    def marker_key(self, entry_id: str) -> str:
        """The marker of one entry."""
        return f"{self._prefix}:intake:done:{entry_id}"

    def open_key(self, source: str | None) -> str:
        """The rolling batch of ``source`` (or of the entries without one)."""
        base = f"{self._prefix}:intake:open"
        return f"{base}:{source}" if source else base

    def ensure_group(self) -> None:
        """Create the bridges' group at the start of the stream (and the stream) if missing:
        entries pushed before any bridge ran are read too."""
        try:
            self._client.xgroup_create(self.key, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    # --- reading ------------------------------------------------------------------------------
    def read_own(self, consumer: str, count: int) -> list[tuple[str, dict[Any, Any]]]:
        """Entries this consumer took before and did not acknowledge (one deleted from the
        stream meanwhile, by ``XDEL``, is acknowledged: there is nothing left to enqueue)."""
        reply: Any = self._client.xreadgroup(GROUP, consumer, {self.key: "0"}, count=count)
        gone = [entry_id for _stream, items in reply or [] for entry_id, fields in items or [] if not fields]
        if gone:
            self._client.xack(self.key, GROUP, *gone)
        return _entries(reply)

    def claim_stale(self, consumer: str, count: int) -> list[tuple[str, dict[Any, Any]]]:
        """Entries other consumers took and left unacknowledged for ``claim_idle``: now this one's."""
        idle_ms = int(self.claim_idle * 1000)
        reply = self._client.xautoclaim(self.key, GROUP, consumer, idle_ms, "0-0", count=count)
        claimed = reply[1] if isinstance(reply, list | tuple) and len(reply) > 1 else []
        return [(as_text(entry_id), fields) for entry_id, fields in claimed if fields]

    def read_new(self, consumer: str, count: int, block_ms: int) -> list[tuple[str, dict[Any, Any]]]:
        """New entries, waiting up to ``block_ms`` for some (0: no wait)."""
        reply = self._client.xreadgroup(GROUP, consumer, {self.key: ">"}, count=count, block=block_ms or None)
        return _entries(reply)

    # --- batches and markers ----------------------------------------------------------------
    def rolling_batch(
        self, source: str | None, new_id: str, window: float, most: int, wanted: int
    ) -> tuple[str, int]:
        """The open rolling batch of ``source`` and how many of ``wanted`` places it gives
        (fewer when it fills up: ask again for the rest); ``new_id`` if a new one opens."""
        args: list[str | int] = [new_id, max(int(window * 1000), 1), most, wanted]
        batch, take = self._rolling(keys=[self.open_key(source)], args=args)
        return as_text(batch), int(take)

    def claim(self, batch: str, claims: Sequence[Claim]) -> list[ClaimState]:
        """Count each entry's URL into ``batch`` unless its marker says it was counted before."""
        if not claims:
            return []
        keys = [
            self._ledger.batch_key(batch),
            self._ledger.batch_key(batch, "urls"),
            self._ledger.batch_key(batch, "fields"),
            f"{self._prefix}:batches",
            *(self.marker_key(claim.entry_id) for claim in claims),
        ]
        args: list[str | int] = [batch, self._ledger.ttl, self._ledger.ttl]
        for claim in claims:
            args += [claim.record_id, claim.url, claim.fields or ""]
        states = []
        for raw in self._claim(keys=keys, args=args):
            text = as_text(raw)
            if text in ("new", "repeat"):
                states.append(ClaimState(text, batch))
            else:
                kind, _, where = text.partition(" ")
                states.append(ClaimState(_MARKER_STATES.get(kind, "sent"), where))
        return states

    def ack(self, done: Sequence[tuple[str, str]]) -> int:
        """Acknowledge entries ``(entry id, batch)`` and mark them sent; how many were pending."""
        if not done:
            return 0
        keys = [self.key, *(self.marker_key(entry_id) for entry_id, _ in done)]
        args: list[str | int] = [GROUP, ACKED_MARKER_TTL]
        for entry_id, batch in done:
            args += [entry_id, batch]
        return int(self._ack(keys=keys, args=args))

    # --- state and trimming -----------------------------------------------------------------
    def backlog(self) -> tuple[int, int | None]:
        """(entries taken and not acknowledged, entries not taken yet) of the bridges' group;
        the second is None when Redis cannot tell (entries were deleted)."""
        try:
            groups = self._client.xinfo_groups(self.key)
        except redis.ResponseError:
            return 0, None
        for info in groups:
            if as_text(info["name"]) == GROUP:
                lag = info.get("lag")
                return int(info["pending"]), (int(lag) if lag is not None else None)
        return 0, None

    def trim(self) -> int:
        """Drop the entries every group of the stream has acknowledged; how many went."""
        try:
            groups = self._client.xinfo_groups(self.key)
        except redis.ResponseError:
            return 0
        if not groups:
            return 0  # nobody reads it yet: keep everything for the first bridge
        floor: tuple[int, int] | None = None
        for info in groups:
            ms, _, seq = as_text(info["last-delivered-id"]).partition("-")
            lowest = (int(ms), int(seq or 0) + 1)
            if int(info["pending"]):
                summary = self._client.xpending(self.key, as_text(info["name"]))
                if summary.get("min"):
                    ms, _, seq = as_text(summary["min"]).partition("-")
                    lowest = min(lowest, (int(ms), int(seq or 0)))
            floor = lowest if floor is None else min(floor, lowest)
        if floor is None or floor <= (0, 1):
            return 0
        return int(self._client.xtrim(self.key, minid=f"{floor[0]}-{floor[1]}", approximate=False))


def _entries(reply: Any) -> list[tuple[str, dict[Any, Any]]]:
    """``(entry id, fields)`` of an XREADGROUP reply; entries deleted meanwhile are left out."""
    entries = []
    for _stream, items in reply or []:
        for entry_id, fields in items or []:
            if fields:
                entries.append((as_text(entry_id), fields))
    return entries
