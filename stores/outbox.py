"""The outbox: where a finished record is committed once, and each store reads it at its own pace.

"The record is final" and "the record is delivered" are two steps. The publish stage commits
the record to one Redis Stream, ``<prefix>:outbox``, in the same Lua script that claims the
URL's outcome in the batch ledger, so a crash can never leave one without the other. Each
configured store then has its own consumer group on that stream (``store:<name>``) read by
:mod:`worker.delivery`: it writes a batch, and acknowledges each entry only after its write
(Kafka Connect's sink model: one idempotent writer per sink, with its own offset). A store
that is down holds back only its own group's cursor.

Identity beats batches: ``<prefix>:final:<record id>`` marks a URL as made final (for the
re-ingest window), so the same URL in two overlapping batches is committed once; the later
batch counts it as ``seen``.

Per batch the ledger hash counts ``outbox`` (entries committed), ``delivered:<store>`` and
``failed:<store>`` (dead letters naming the store); each count moves in the same script as
the XACK, so a redelivery never counts twice.

The stream is trimmed (:meth:`Outbox.trim`) only below what every configured group has
acknowledged, and never inside ``outbox_retention``: ``ingest replay`` can re-deliver that much.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import redis

from stores.base import Delivery, EntryKind
from stores.ledger import Ledger
from stores.redis_client import as_text
from tasks.record import DeadLetter

_COMMIT_RECORD = """
-- KEYS: outcomes hash, batch hash, final marker, outbox stream
-- ARGV: record id, outcome, batch ttl, final ttl, record json, batch
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then
  return 0
end
local owner = redis.call('GET', KEYS[3])
local outcome = ARGV[2]
local committed = 0
if owner and owner ~= ARGV[6] then
  outcome = 'seen'
else
  if tonumber(ARGV[4]) > 0 then
    redis.call('SET', KEYS[3], ARGV[6], 'EX', ARGV[4])
  end
  redis.call('XADD', KEYS[4], '*', 'kind', 'record', 'id', ARGV[1], 'batch', ARGV[6], 'body', ARGV[5])
  redis.call('HINCRBY', KEYS[2], 'outbox', 1)
  committed = 1
end
redis.call('HSET', KEYS[1], ARGV[1], outcome)
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('HINCRBY', KEYS[2], 'outcome:' .. outcome, 1)
local now = redis.call('TIME')
redis.call('HSET', KEYS[2], 'touched', now[1] .. '.' .. string.format('%06d', now[2]))
return committed + 1
"""

_COMMIT_DEAD_LETTER = """
-- KEYS: outcomes hash, batch hash, dead-letter hash, outbox stream
-- ARGV: record id, batch ttl, dead-letter json, reason, batch
if redis.call('HSETNX', KEYS[1], ARGV[1], 'dead') == 0 then
  return 0
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('HINCRBY', KEYS[2], 'outcome:dead', 1)
redis.call('HSET', KEYS[3], ARGV[1], ARGV[3])
redis.call('EXPIRE', KEYS[3], ARGV[2])
redis.call('HINCRBY', KEYS[2], 'reason:' .. ARGV[4], 1)
redis.call('XADD', KEYS[4], '*', 'kind', 'dead_letter', 'id', ARGV[1], 'batch', ARGV[5], 'body', ARGV[3])
redis.call('HINCRBY', KEYS[2], 'outbox', 1)
local now = redis.call('TIME')
redis.call('HSET', KEYS[2], 'touched', now[1] .. '.' .. string.format('%06d', now[2]))
return 1
"""

_ACK = """
-- KEYS: outbox stream, then one batch hash per entry
-- ARGV: group, counter field, then one entry id per batch hash
local counted = 0
for i = 3, #ARGV do
  if redis.call('XACK', KEYS[1], ARGV[1], ARGV[i]) == 1 then
    counted = counted + 1
    if redis.call('EXISTS', KEYS[i - 1]) == 1 then
      redis.call('HINCRBY', KEYS[i - 1], ARGV[2], 1)
    end
  end
end
return counted
"""

_STORE_DEAD_LETTER = """
-- KEYS: outbox stream, batch hash, store dead-letter hash
-- ARGV: group, entry id, letter key, {letter, entry} json, store, record id, batch, letter json
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then
  return 0
end
redis.call('HSET', KEYS[3], ARGV[3], ARGV[4])
redis.call('XADD', KEYS[1], '*', 'kind', 'dead_letter', 'id', ARGV[6], 'batch', ARGV[7], 'body', ARGV[8])
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('HINCRBY', KEYS[2], 'failed:' .. ARGV[5], 1)
  redis.call('HINCRBY', KEYS[2], 'outbox', 1)
end
return 1
"""


def group_name(store: str) -> str:
    """The consumer group of one store."""
    return f"store:{store}"


def _id_tuple(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


@dataclass(frozen=True)
class GroupState:
    """Where one store's consumer group stands."""

    store: str
    pending: int
    lag: int | None
    last_delivered: str


class Outbox:
    """The outbox stream ``<prefix>:outbox`` and its per-store consumer groups."""

    def __init__(
        self, client: redis.Redis, prefix: str, ledger: Ledger, retention: int, claim_idle: float = 120.0
    ) -> None:
        self._client = client
        self.claim_idle = claim_idle
        self._prefix = prefix
        self._ledger = ledger
        self.retention = retention
        self.key = f"{prefix}:outbox"
        self._commit_record = client.register_script(_COMMIT_RECORD)
        self._commit_dead = client.register_script(_COMMIT_DEAD_LETTER)
        self._ack = client.register_script(_ACK)
        self._store_dead = client.register_script(_STORE_DEAD_LETTER)

    # --- committing (the pipeline) ---------------------------------------------------------
    def commit_record(
        self, batch: str, record_id: str, outcome: str, record_json: str, final_ttl: int
    ) -> str:
        """Claim the URL's outcome and commit its record, atomically.

        Returns ``committed``; ``seen`` when another batch made the same URL final inside the
        re-ingest window (nothing committed); ``ended`` when this batch's URL already had its
        outcome (a redelivery: nothing done).
        """
        keys = [
            self._ledger.batch_key(batch, "outcomes"),
            self._ledger.batch_key(batch),
            f"{self._prefix}:final:{record_id}",
            self.key,
        ]
        args: list[str | int] = [record_id, outcome, self._ledger.ttl, final_ttl, record_json, batch]
        result = int(self._commit_record(keys=keys, args=args))
        return {0: "ended", 1: "seen", 2: "committed"}[result]

    def commit_dead_letter(self, letter: DeadLetter) -> bool:
        """End the URL as a dead letter (ledger and outbox at once); False if it already ended."""
        batch = letter.batch
        keys = [
            self._ledger.batch_key(batch, "outcomes"),
            self._ledger.batch_key(batch),
            self._ledger.batch_key(batch, "dead"),
            self.key,
        ]
        args: list[str | int] = [
            letter.id or letter.url,
            self._ledger.ttl,
            letter.model_dump_json(),
            letter.reason,
            batch,
        ]
        return bool(self._commit_dead(keys=keys, args=args))

    # --- consuming (the delivery consumers) ------------------------------------------------
    def ensure_groups(self, stores: Iterable[str]) -> None:
        """Create the stores' consumer groups if missing, at the start of the stream.

        Created by the producer before it enqueues, so no entry can be committed (or trimmed)
        before the group that must deliver it exists; a store added later gets what the
        outbox still holds.
        """
        for store in stores:
            try:
                self._client.xgroup_create(self.key, group_name(store), id="0", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    def read(
        self, store: str, consumer: str, count: int, block_ms: int, *, own: bool = True, claim: bool = True
    ) -> list[Delivery]:
        """This consumer's own unacknowledged entries first (``own``), then stale ones of dead
        consumers (``claim``), then new ones (waiting up to ``block_ms``). A consumer whose last
        batch was all acknowledged has nothing of its own pending, and dead consumers need not
        be looked for on every read: skipping them saves two round trips per batch."""
        group = group_name(store)
        if own:
            entries = _entries(self._client.xreadgroup(group, consumer, {self.key: "0"}, count=count))
            if entries:
                return entries
        stale = self._claim_stale(group, consumer, count) if claim else []
        return stale or _entries(
            # BLOCK 0 would wait forever: no wait asked means no BLOCK at all.
            self._client.xreadgroup(group, consumer, {self.key: ">"}, count=count, block=block_ms or None)
        )

    def _claim_stale(self, group: str, consumer: str, count: int) -> list[Delivery]:
        idle_ms = int(self.claim_idle * 1000)
        reply = self._client.xautoclaim(self.key, group, consumer, idle_ms, "0-0", count=count)
        claimed = reply[1] if isinstance(reply, list | tuple) and len(reply) > 1 else []
        return [_delivery(entry_id, fields) for entry_id, fields in claimed if fields]

    def ack(self, store: str, deliveries: Sequence[Delivery], counter: str = "delivered") -> int:
        """Acknowledge entries for ``store`` and count them per batch; returns how many were new."""
        if not deliveries:
            return 0
        keys = [self.key, *(self._ledger.batch_key(d.batch) for d in deliveries)]
        args = [group_name(store), f"{counter}:{store}", *(d.entry_id for d in deliveries)]
        return int(self._ack(keys=keys, args=args))

    def dead_letter_for_store(self, store: str, delivery: Delivery, letter: DeadLetter) -> bool:
        """Acknowledge an entry the store will never take, keeping it as a dead letter naming it.

        The letter and the whole entry are kept in ``<prefix>:store-dead:<store>`` (for
        ``ingest retry-dead --store``) and the letter is committed to the outbox, so the JSONL
        store lists it in dead-letters.jsonl like any other.
        """
        keys = [self.key, self._ledger.batch_key(delivery.batch), self.store_dead_key(store)]
        entry = {
            "entry_id": delivery.entry_id,
            "kind": delivery.kind,
            "record_id": delivery.record_id,
            "batch": delivery.batch,
            "payload": delivery.payload,
        }
        kept = json.dumps({"letter": letter.model_dump(mode="json"), "entry": entry})
        args = [
            group_name(store),
            delivery.entry_id,
            f"{delivery.batch}:{delivery.record_id}",
            kept,
            store,
            delivery.record_id,
            delivery.batch,
            letter.model_dump_json(),
        ]
        return bool(self._store_dead(keys=keys, args=args))

    def store_dead_key(self, store: str) -> str:
        """Hash of the dead letters of one store: ``<batch>:<record id>`` -> letter and entry."""
        return f"{self._prefix}:store-dead:{store}"

    # --- reading back, trimming, status -------------------------------------------------------
    def range(self, start: str = "-", count: int = 500) -> list[Delivery]:
        """Entries from ``start`` (inclusive) on, oldest first (for ``ingest replay``)."""
        return _entries([[self.key, self._client.xrange(self.key, min=start, count=count)]])

    def groups(self) -> dict[str, GroupState]:
        """The state of every store's group, by store name."""
        try:
            raw = self._client.xinfo_groups(self.key)
        except redis.ResponseError:
            return {}
        states = {}
        for info in raw:
            name = as_text(info["name"])
            if not name.startswith("store:"):
                continue
            lag = info.get("lag")
            states[name.removeprefix("store:")] = GroupState(
                store=name.removeprefix("store:"),
                pending=int(info["pending"]),
                lag=int(lag) if lag is not None else None,
                last_delivered=as_text(info["last-delivered-id"]),
            )
        return states

    def trim(self, stores: Iterable[str], now: float | None = None) -> int:
        """Drop entries older than the retention that every listed store's group has acknowledged."""
        cutoff = (int(((now or time.time()) - self.retention) * 1000), 0)
        floor = cutoff
        states = self.groups()
        for store in stores:
            state = states.get(store)
            if state is None:
                return 0  # a configured store without its group yet: keep everything
            last = _id_tuple(state.last_delivered)
            floor = min(floor, (last[0], last[1] + 1))
            if state.pending:
                summary = self._client.xpending(self.key, group_name(store))
                lowest = summary.get("min")
                if lowest:
                    floor = min(floor, _id_tuple(as_text(lowest)))
        if floor <= (0, 0):
            return 0
        return int(self._client.xtrim(self.key, minid=f"{floor[0]}-{floor[1]}", approximate=False))


def _delivery(entry_id: Any, fields: dict[Any, Any]) -> Delivery:
    values = {as_text(key): as_text(value) for key, value in fields.items()}
    kind: EntryKind = "dead_letter" if values.get("kind") == "dead_letter" else "record"
    return Delivery(
        entry_id=as_text(entry_id),
        kind=kind,
        record_id=values.get("id", ""),
        batch=values.get("batch", ""),
        payload=values.get("body", "{}"),
    )


def _entries(reply: Any) -> list[Delivery]:
    """Deliveries of an XREADGROUP / XRANGE reply (``[[stream, [(id, fields), ...]]]``)."""
    deliveries = []
    for _stream, items in reply or []:
        for entry_id, fields in items or []:
            if fields:  # a trimmed entry still pending comes back without fields
                deliveries.append(_delivery(entry_id, fields))
    return deliveries
