"""The batch ledger in Redis: what was enqueued, how far it got, how each URL ended.

Every URL of a batch ends with exactly one outcome (see :data:`OUTCOMES`). The outcome is
claimed atomically with ``HSETNX`` inside a Lua script, so a redelivered or retried task
can never count, publish or dead-letter a URL twice; a record or dead letter is claimed by
the outbox's script (:mod:`stores.outbox`), which commits it for the stores at the same time.
The stores' delivery counts (``delivered:<store>``, ``failed:<store>``) live in the batch
hash too, and so do the last :data:`STAGE_SAMPLES` durations of each stage (for the p50/p95
that ``ingest status`` shows) under ``<prefix>:batch:<id>:seconds:<stage>``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

import redis

from stores.batch_status import OUTCOMES, BatchStatus, percentile
from stores.redis_client import as_text
from tasks.record import DeadLetter

__all__ = ["OUTCOMES", "STAGE_SAMPLES", "BatchStatus", "Ledger", "percentile"]

#: Durations kept per batch and stage: the most recent ones, enough for a stable p95.
STAGE_SAMPLES = 1000

_CLAIM_OUTCOME = """
-- KEYS: outcomes hash, batch hash
-- ARGV: record id, outcome, ttl
if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then
  return 0
end
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('HINCRBY', KEYS[2], 'outcome:' .. ARGV[2], 1)
local now = redis.call('TIME')
redis.call('HSET', KEYS[2], 'touched', now[1] .. '.' .. string.format('%06d', now[2]))
return 1
"""


_PROGRESS = """
-- KEYS: progress hash (record id -> furthest stage order), batch hash, the stage's seconds list
-- ARGV: record id, stage order, stage name, ttl, seconds the stage took ('' if not timed),
--       samples kept per stage
local reached = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '-1')
if reached >= tonumber(ARGV[2]) then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('HINCRBY', KEYS[2], 'stage:' .. ARGV[3], 1)
if ARGV[5] ~= '' then
  redis.call('LPUSH', KEYS[3], ARGV[5])
  redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[6]) - 1)
  redis.call('EXPIRE', KEYS[3], ARGV[4])
end
local now = redis.call('TIME')
redis.call('HSET', KEYS[2], 'touched', now[1] .. '.' .. string.format('%06d', now[2]))
return 1
"""


class Ledger:
    """Batch accounting under ``<prefix>:batch:<id>``, kept ``ttl`` seconds."""

    def __init__(self, client: redis.Redis, prefix: str, ttl: int) -> None:
        self._client = client
        self._prefix = prefix
        self._ttl = ttl
        self._claim = client.register_script(_CLAIM_OUTCOME)
        self._progress = client.register_script(_PROGRESS)

    @property
    def ttl(self) -> int:
        """Seconds a batch's keys are kept."""
        return self._ttl

    def batch_key(self, batch: str, *suffix: str) -> str:
        """The key of the batch's hash (or of one of its parts: ``outcomes``, ``dead``)."""
        return ":".join((self._prefix, "batch", batch, *suffix))

    def open_batch(
        self,
        batch: str,
        total: int,
        urls: dict[str, str] | None = None,
        fields: dict[str, str] | None = None,
    ) -> None:
        """Record a new batch of ``total`` URLs (before any of its tasks is sent).

        ``urls`` (record id -> URL as enqueued) is kept with the batch, so that a URL whose
        message the broker lost can be sent again (:mod:`worker.reconcile`); so is ``fields``
        (record id -> JSON of what intake put on the record: ``source``, ``labels``,
        ``discovered_at``), for the URLs that have any. A rolling batch of the intake stream
        grows entry by entry instead (:class:`stores.intake_stream.IntakeStream`).
        """
        now = time.time()
        pipe = self._client.pipeline()
        if urls:
            pipe.hset(self.batch_key(batch, "urls"), mapping=dict(urls))  # type: ignore[arg-type]
            pipe.expire(self.batch_key(batch, "urls"), self._ttl)
        if fields:
            pipe.hset(self.batch_key(batch, "fields"), mapping=dict(fields))  # type: ignore[arg-type]
            pipe.expire(self.batch_key(batch, "fields"), self._ttl)
        pipe.hset(self.batch_key(batch), mapping={"total": total, "created_at": now, "touched": now})
        pipe.expire(self.batch_key(batch), self._ttl)
        pipe.zadd(f"{self._prefix}:batches", {batch: now})
        pipe.execute()

    def stage_done(
        self, batch: str, stage: str, record_id: str, order: int, seconds: float | None = None
    ) -> bool:
        """Count the URL through ``stage`` (the ``order``-th of the chain), once per URL.

        A stage redelivered after the URL went further (its successor already ran) counts
        nothing: the counts stay per URL whatever the broker redelivers. ``seconds`` (what the
        stage took) joins the stage's samples only when the URL is counted, so a redelivery
        does not weigh twice in the percentiles.
        """
        seconds_key = self.batch_key(batch, "seconds", stage)
        keys = [self.batch_key(batch, "progress"), self.batch_key(batch), seconds_key]
        timed = "" if seconds is None else f"{seconds:.6f}"
        args: list[str | int] = [record_id, order, stage, self._ttl, timed, STAGE_SAMPLES]
        return bool(self._progress(keys=keys, args=args))

    def retried(self, batch: str, stage: str) -> None:
        """Count one retry of ``stage`` (the batch is moving: touched now)."""
        pipe = self._client.pipeline()
        pipe.hincrby(self.batch_key(batch), f"retry:{stage}", 1)
        pipe.hset(self.batch_key(batch), "touched", time.time())
        pipe.execute()

    def count_delivery(self, task_id: str, retries: int) -> int:
        """How many times this exact task message (id, retry number) was delivered."""
        key = f"{self._prefix}:delivery:{task_id}:{retries}"
        pipe = self._client.pipeline()
        pipe.incr(key)
        pipe.expire(key, 24 * 3600)
        count, _ = pipe.execute()
        return int(count)

    def uncount_delivery(self, task_id: str, retries: int) -> None:
        """Take back a delivery counted by :meth:`count_delivery` whose run ended on a state
        error: the message is requeued by a live worker, so it did not lose its worker."""
        self._client.decr(f"{self._prefix}:delivery:{task_id}:{retries}")

    def claim_outcome(self, batch: str, record_id: str, outcome: str) -> bool:
        """Atomically give the URL an outcome that writes nothing (``seen``, ``unchanged``, a
        dropped ``duplicate``); False if it already has one.

        Records and dead letters are claimed by :class:`stores.outbox.Outbox`, which commits
        them for the stores in the same script.
        """
        if outcome not in OUTCOMES or outcome == "dead":
            raise ValueError(f"use Outbox.commit_dead_letter for {outcome!r}")
        keys = [self.batch_key(batch, "outcomes"), self.batch_key(batch)]
        return bool(self._claim(keys=keys, args=[record_id, outcome, self._ttl]))

    def without_outcome(self, batch: str) -> dict[str, str]:
        """Record id -> URL of the batch's URLs that have no outcome yet (from ``urls``)."""
        urls = self._client.hgetall(self.batch_key(batch, "urls"))
        ended = set(self._client.hkeys(self.batch_key(batch, "outcomes")))
        return {as_text(rid): as_text(url) for rid, url in urls.items() if rid not in ended}

    def record_fields(self, batch: str, record_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Record id -> the intake fields kept for it (``source``, ``labels``, ``discovered_at``);
        ids without any are left out."""
        ids = list(record_ids)
        if not ids:
            return {}
        raw = self._client.hmget(self.batch_key(batch, "fields"), ids)
        return {rid: json.loads(as_text(value)) for rid, value in zip(ids, raw, strict=True) if value}

    def started(self, batch: str, record_ids: Iterable[str]) -> set[str]:
        """The ids among ``record_ids`` that went through a stage of the batch or have an outcome:
        their job certainly reached a worker."""
        ids = list(record_ids)
        if not ids:
            return set()
        pipe = self._client.pipeline(transaction=False)
        pipe.hmget(self.batch_key(batch, "progress"), ids)
        pipe.hmget(self.batch_key(batch, "outcomes"), ids)
        progress, outcomes = pipe.execute()
        pairs = zip(ids, progress, outcomes, strict=True)
        return {rid for rid, reached, ended in pairs if reached is not None or ended is not None}

    def take_turn(self, batch: str, what: str, seconds: float) -> bool:
        """True for one caller per ``seconds`` (across processes): who re-sends the batch's URLs."""
        key = self.batch_key(batch, f"turn:{what}")
        return bool(self._client.set(key, "1", nx=True, ex=max(int(seconds), 1)))

    def resent(self, batch: str, count: int) -> None:
        """Count URLs sent again by the reconciler (and mark the batch touched now)."""
        pipe = self._client.pipeline()
        pipe.hincrby(self.batch_key(batch), "resent", count)
        pipe.hset(self.batch_key(batch), "touched", time.time())
        pipe.execute()

    def forget_dead_letter(self, letter: DeadLetter) -> None:
        """Take a re-driven letter out of its batch (counted there as ``redriven``)."""
        if self._client.hdel(self.batch_key(letter.batch, "dead"), letter.id or letter.url):
            self._client.hincrby(self.batch_key(letter.batch), "redriven", 1)

    def store_redelivered(self, batch: str, store: str) -> None:
        """A store's dead letter of this batch was written after all (``ingest retry-dead --store``)."""
        key = self.batch_key(batch)
        if self._client.exists(key):
            pipe = self._client.pipeline()
            pipe.hincrby(key, f"failed:{store}", -1)
            pipe.hincrby(key, f"delivered:{store}", 1)
            pipe.execute()

    def dead_letters(self, batch: str) -> list[DeadLetter]:
        """The batch's dead letters, as kept in Redis."""
        raw = self._client.hvals(self.batch_key(batch, "dead"))
        return [DeadLetter.model_validate_json(item) for item in raw]

    def status(self, batch: str) -> BatchStatus | None:
        """The batch's counts, or None if no such batch is known (or it expired)."""
        raw = self._client.hgetall(self.batch_key(batch))
        if not raw:
            return None
        fields = {as_text(key): as_text(value) for key, value in raw.items()}
        status = BatchStatus(
            batch=batch,
            total=int(fields.get("total", 0)),
            created_at=float(fields.get("created_at", 0)),
        )
        groups = {
            "outcome": status.outcomes,
            "stage": status.stages,
            "retry": status.retries,
            "reason": status.reasons,
            "delivered": status.delivered,
            "failed": status.failed,
        }
        status.committed = int(fields.get("outbox", 0))
        status.touched = float(fields.get("touched", status.created_at))
        status.resent = int(fields.get("resent", 0))
        for name, value in fields.items():
            kind, _, item = name.partition(":")
            if kind in groups and item:
                groups[kind][item] = int(value)
        status.stage_seconds = self._stage_seconds(batch, sorted(status.stages))
        return status

    def _stage_seconds(self, batch: str, stages: list[str]) -> dict[str, dict[str, float]]:
        """p50 and p95 of each stage's kept durations (stages without samples left out)."""
        pipe = self._client.pipeline(transaction=False)
        for stage in stages:
            pipe.lrange(self.batch_key(batch, "seconds", stage), 0, -1)
        found: dict[str, dict[str, float]] = {}
        for stage, raw in zip(stages, pipe.execute() if stages else [], strict=True):
            if values := sorted(float(item) for item in raw):
                found[stage] = {"p50": percentile(values, 0.5), "p95": percentile(values, 0.95)}
                found[stage]["samples"] = len(values)
        return found

    def batch_keys(self, batch: str) -> list[str]:
        """Every key of the batch: its hash and ``<hash>:*`` (outcomes, dead letters, samples...)."""
        pattern = _glob_escape(self.batch_key(batch)) + ":*"
        keys = {as_text(key) for key in self._client.scan_iter(match=pattern, count=10_000)}
        if self._client.exists(self.batch_key(batch)):
            keys.add(self.batch_key(batch))
        return sorted(keys)

    def is_listed(self, batch: str) -> bool:
        """True when the index of batches (``recent_batches``) lists the batch."""
        return self._client.zscore(f"{self._prefix}:batches", batch) is not None

    def purge(self, batch: str) -> tuple[list[str], bool]:
        """Delete every key of the batch and its entry in the index of batches.

        Returns the keys deleted and whether the index listed it. Only the ledger's state goes:
        the outbox and the stores are shared by every batch and keep what they hold.
        """
        keys = self.batch_keys(batch)
        pipe = self._client.pipeline()
        if keys:
            pipe.delete(*keys)
        pipe.zrem(f"{self._prefix}:batches", batch)
        return keys, bool(pipe.execute()[-1])

    def recent_batches(self, limit: int = 20) -> list[str]:
        """Most recent batch ids first."""
        raw = self._client.zrevrange(f"{self._prefix}:batches", 0, limit - 1)
        return [as_text(item) for item in raw]


def _glob_escape(text: str) -> str:
    """``text`` matched literally by a Redis ``SCAN MATCH`` pattern."""
    return "".join(f"\\{char}" if char in "*?[]\\" else char for char in text)
