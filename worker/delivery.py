"""Delivery: one consumer per configured store, moving outbox entries into that store.

``ingest deliver`` runs one thread per store (:class:`StoreConsumer`). Each reads its
store's consumer group on the outbox (:mod:`stores.outbox`) in batches, writes the batch
through the store's adapter and acknowledges each entry only after the write. So:

* a store that is down holds back only its own group: the others go on, and its entries
  wait in the outbox, retried with exponential backoff (``delivery_backoff_max``, or the
  store's ``Retry-After``) for as long as the outbox keeps them (``outbox_retention``);
  after that an entry the store still has not taken becomes a dead letter naming it;
* an entry the store refuses for good (a webhook's 400) becomes such a dead letter at once;
* a delivery process that dies leaves its entries unacknowledged: any delivery process (a
  restarted one too: consumer names carry the pid) takes them over once they have been
  idle ``delivery_claim_idle``; the writes are idempotent by record id, so an entry written
  just before the crash changes nothing. A process that stops cleanly finishes its batch.

Several delivery processes (on several hosts) share the groups, like Celery workers share
a queue: add processes to deliver faster.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import threading
import time
from datetime import UTC, datetime
from types import FrameType

import redis
import structlog

from config import Settings
from stores.base import Delivery, Store, StoreUnavailable, WriteResult
from stores.ledger import Ledger
from stores.outbox import Outbox
from stores.redis_client import client_for
from stores.registry import build_stores
from tasks.record import DeadLetter
from worker import metrics
from worker.guard import STATE_ERRORS
from worker.reconcile import reconcile
from worker.stage import outbox_for

log = structlog.stdlib.get_logger("ingest.deliver")

#: How long one read waits for new entries: the consumer notices a stop request this often.
_BLOCK_MS = 1000
#: Seconds between two trims of the outbox by one delivery process.
_TRIM_EVERY = 60.0
#: Seconds between two looks for stuck batches (:mod:`worker.reconcile`).
_RECONCILE_EVERY = 30.0


def consumer_name() -> str:
    """This process's consumer name in every group: host and pid."""
    return f"{socket.gethostname()}-{os.getpid()}"


class StoreConsumer:
    """Delivers the outbox to one store."""

    def __init__(self, store: Store, outbox: Outbox, settings: Settings, consumer: str) -> None:
        self.store = store
        self.outbox = outbox
        self.settings = settings
        self.consumer = consumer
        self.failures = 0
        self._attempts: dict[str, int] = {}
        self._last_error = ""
        self._own_pending = True  # at start: what an earlier run of this name left unacknowledged
        self._next_claim = 0.0

    def run(self, stop: threading.Event) -> None:
        """Deliver until ``stop`` is set; a batch under way is finished first."""
        with structlog.contextvars.bound_contextvars(stage="deliver", store=self.store.name):
            log.info("deliver.started", consumer=self.consumer)
            while not stop.is_set():
                try:
                    wait = self.step(_BLOCK_MS)
                except redis.RedisError as exc:
                    self._own_pending = True  # what it had read may still be unacknowledged
                    self.failures += 1
                    wait = self.backoff(None)
                    log.warning("deliver.outbox_unavailable", error=str(exc), wait=wait)
                if wait:
                    stop.wait(wait)
            self.store.close()
            log.info("deliver.stopped")

    def step(self, block_ms: int = 0) -> float:
        """Deliver one batch; returns how long to wait before the next (0: go on at once)."""
        claim = time.monotonic() >= self._next_claim
        if claim:  # dead consumers' entries: looked for a few times per claim_idle, not per batch
            self._next_claim = time.monotonic() + self.outbox.claim_idle / 4
        entries = self.outbox.read(
            self.store.name,
            self.consumer,
            self.settings.delivery_batch,
            block_ms,
            own=self._own_pending,
            claim=claim,
        )
        self._own_pending = False
        if not entries:
            return 0.0
        skipped: list[Delivery] = []
        todo: list[Delivery] = []
        for delivery in entries:
            not_taken = delivery.kind == "dead_letter" and not self.store.takes_dead_letters
            (skipped if not_taken else todo).append(delivery)
        result = self._write(todo)
        written = set(result.written)
        done = [d for d in todo if d.entry_id in written]
        self.outbox.ack(self.store.name, skipped + done)
        metrics.count_delivery(self.store.name, "stored", len(done))
        for delivery in done:
            self._attempts.pop(delivery.entry_id, None)
        for delivery in todo:
            if delivery.entry_id in result.rejected:
                self._give_up(delivery, "store_rejected", result.rejected[delivery.entry_id])
        left = [d for d in todo if d.entry_id not in written and d.entry_id not in result.rejected]
        if done:
            lag = round(time.time() - done[0].committed_ms / 1000, 3)
            log.info("deliver.written", entries=len(done), lag_s=lag)
        if not left:
            self.failures = 0
            return 0.0
        oldest_allowed = (time.time() - self.outbox.retention) * 1000
        expired = [d for d in left if d.committed_ms < oldest_allowed]
        for delivery in expired:
            why = f"not taken within the outbox retention: {self._last_error}"
            self._give_up(delivery, "store_error", why)
        if len(expired) == len(left):
            return 0.0
        self._own_pending = True  # the rest stay unacknowledged: read them again first
        self.failures += 1
        wait = self.backoff(result.retry_after)
        log.warning("deliver.retry", entries=len(left) - len(expired), error=self._last_error, wait=wait)
        metrics.count_delivery(self.store.name, "retried", len(left) - len(expired))
        return wait

    def _write(self, todo: list[Delivery]) -> WriteResult:
        for delivery in todo:
            self._attempts[delivery.entry_id] = self._attempts.get(delivery.entry_id, 0) + 1
        if not todo:
            return WriteResult()
        try:
            result = self.store.write(todo)
        except StoreUnavailable as exc:
            self._last_error = str(exc)
            return WriteResult(retry_after=exc.retry_after)
        except Exception as exc:  # a bug in an adapter must not stop delivery to the others
            log.exception("deliver.store_crashed")
            self._last_error = f"{type(exc).__name__}: {exc}"
            return WriteResult()
        if len(result.written) + len(result.rejected) < len(todo):
            self._last_error = self._last_error or "some entries were not taken"
        return result

    def backoff(self, retry_after: float | None) -> float:
        """Seconds before the next try: the store's hint, else exponential with jitter, capped."""
        ceiling = min(self.settings.delivery_backoff_max, self.settings.delivery_claim_idle / 2)
        if retry_after is not None:
            return min(max(retry_after, 0.0), ceiling)
        base = min(0.5 * 2 ** (self.failures - 1), ceiling)
        return round(base * random.uniform(0.75, 1.25), 3)

    def _give_up(self, delivery: Delivery, reason: str, error: str) -> None:
        document = delivery.document
        letter = DeadLetter(
            id=delivery.record_id or None,
            url=str(document.get("url") or ""),
            batch=delivery.batch,
            stage="deliver",
            reason=reason,
            error=error[:2000],
            attempts=max(self._attempts.pop(delivery.entry_id, 1), 1),
            failed_at=datetime.now(UTC),
            store=self.store.name,
        )
        if self.outbox.dead_letter_for_store(self.store.name, delivery, letter):
            metrics.count_delivery(self.store.name, "failed")
            log.warning("deliver.dead_letter", reason=reason, error=error[:500], record_id=delivery.record_id)


def run_delivery(
    settings: Settings, stop: threading.Event | None = None, only: list[str] | None = None
) -> None:
    """``ingest deliver``: a consumer thread per configured store (or per store of ``only``)
    until SIGTERM/SIGINT (or ``stop``). The outbox is trimmed by what every configured
    store has taken, whichever process delivers it."""
    stop = stop or threading.Event()
    client = client_for(settings)
    outbox = outbox_for(settings, Ledger(client, settings.key_prefix, settings.batch_ttl))
    names = settings.store_names
    outbox.ensure_groups(names)
    consumer = consumer_name()
    threads = [
        threading.Thread(
            target=StoreConsumer(store, outbox, settings, f"{consumer}-{index}").run,
            args=(stop,),
            name=f"deliver-{store.name}-{index}",
        )
        for index in range(settings.delivery_consumers)
        for store in build_stores(settings)  # an adapter per consumer: nothing shared between threads
        if only is None or store.name in only
    ]

    def _stop(signum: int, _frame: FrameType | None) -> None:
        log.info("deliver.stopping", signal=signal.Signals(signum).name)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
    for thread in threads:
        thread.start()
    log.info("deliver.ready", stores=names, consumer=consumer)
    ledger = Ledger(client, settings.key_prefix, settings.batch_ttl)
    last_trim = time.monotonic()
    while not stop.wait(_RECONCILE_EVERY):
        try:
            reconcile(settings, ledger)
            if time.monotonic() - last_trim >= _TRIM_EVERY:
                last_trim = time.monotonic()
                trimmed = outbox.trim(names)
                if trimmed:
                    log.info("deliver.trimmed", entries=trimmed)
        except STATE_ERRORS as exc:
            log.warning("deliver.housekeeping_failed", error=str(exc))
    for thread in threads:
        thread.join()
