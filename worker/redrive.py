"""Re-driving what did not get through: ``ingest retry-dead`` and ``ingest replay``.

* A URL that failed in the pipeline (a dead letter without ``store``) is re-driven by
  enqueueing it again, as a new batch; its letter leaves its old batch (counted there as
  ``redriven``), so the same letter is never re-driven twice.
* A record that a store could not take (a dead letter naming the store) is kept whole in
  ``<prefix>:store-dead:<store>``; re-driving writes it to that store now, and only what was
  written leaves the list.
* ``replay`` re-delivers what the outbox still holds (``outbox_retention``) to one store,
  e.g. a newly added search index, or one restored from an old backup. Writes are
  idempotent by record id, so replaying over records a store already has changes nothing.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

from config import Settings
from stores.base import Delivery, Store, StoreUnavailable
from stores.ledger import Ledger
from stores.outbox import Outbox
from stores.redis_client import as_text, client_for
from stores.registry import build_store
from worker.stage import outbox_for

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class RedriveResult:
    """What one re-drive did."""

    found: int
    redriven: int
    batch: str | None = None
    """The new batch of re-enqueued URLs (pipeline dead letters only)."""
    error: str | None = None


def _ledger_and_outbox(settings: Settings) -> tuple[Ledger, Outbox]:
    ledger = Ledger(client_for(settings), settings.key_prefix, settings.batch_ttl)
    return ledger, outbox_for(settings, ledger)


def retry_pipeline_dead(settings: Settings, batch: str | None, reason: str | None) -> RedriveResult:
    """Enqueue the URLs of the matching pipeline dead letters again, as one new batch."""
    from worker.producer import enqueue

    ledger, _ = _ledger_and_outbox(settings)
    batches = [batch] if batch else ledger.recent_batches(limit=10_000)
    chosen = [
        letter
        for name in batches
        for letter in ledger.dead_letters(name)
        if letter.store is None and (reason is None or letter.reason == reason)
    ]
    if not chosen:
        return RedriveResult(found=0, redriven=0)
    result = enqueue(list(dict.fromkeys(letter.url for letter in chosen)), settings=settings)
    for letter in chosen:
        ledger.forget_dead_letter(letter)
    return RedriveResult(found=len(chosen), redriven=len(chosen), batch=result.batch)


def retry_store_dead(
    settings: Settings, store_name: str, batch: str | None, reason: str | None
) -> RedriveResult:
    """Write the matching dead letters of one store to it again; keep what it still refuses."""
    ledger, outbox = _ledger_and_outbox(settings)
    client = client_for(settings)
    key = outbox.store_dead_key(store_name)
    kept: dict[str, tuple[Delivery, dict[str, object]]] = {}
    for field, raw in client.hgetall(key).items():
        item = json.loads(as_text(raw))
        letter, entry = item["letter"], item["entry"]
        if (batch is None or letter["batch"] == batch) and (reason is None or letter["reason"] == reason):
            kept[as_text(field)] = (Delivery(**entry), letter)
    if not kept:
        return RedriveResult(found=0, redriven=0)
    store = build_store(store_name, settings)
    redriven = 0
    try:
        items = list(kept.items())
        for start in range(0, len(items), settings.delivery_batch):
            chunk = items[start : start + settings.delivery_batch]
            result = store.write([delivery for _, (delivery, _) in chunk])
            written = set(result.written)
            for field, (delivery, _letter) in chunk:
                if delivery.entry_id in written:
                    ledger.store_redelivered(delivery.batch, store_name)
                    client.hdel(key, field)
                    redriven += 1
    except StoreUnavailable as exc:
        return RedriveResult(found=len(kept), redriven=redriven, error=str(exc))
    finally:
        store.close()
    return RedriveResult(found=len(kept), redriven=redriven)


def since_entry_id(since: str | None, now: float | None = None) -> str:
    """The first outbox id to replay from: ``2h`` / ``30m`` ago, an ISO time, unix seconds, or all."""
    if not since:
        return "-"
    text = since.strip()
    relative = _RELATIVE.match(text)
    if relative:
        seconds = float(relative.group(1)) * _UNITS[relative.group(2)]
        return f"{int(((now or time.time()) - seconds) * 1000)}-0"
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return f"{int(float(text) * 1000)}-0"
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"--since {since!r}: give 2h, 30m, 1d, an ISO 8601 time or unix seconds") from exc
    if moment.tzinfo is None:
        from datetime import UTC

        moment = moment.replace(tzinfo=UTC)
    return f"{int(moment.timestamp() * 1000)}-0"


def outbox_entries(outbox: Outbox, start: str, page: int = 500) -> Iterator[list[Delivery]]:
    """The outbox from ``start`` on, a page at a time."""
    while True:
        entries = outbox.range(start, count=page)
        if not entries:
            return
        yield entries
        ms, _, seq = entries[-1].entry_id.partition("-")
        start = f"{ms}-{int(seq) + 1}"


def replay(
    settings: Settings,
    store_name: str,
    since: str | None,
    progress: Callable[[int], None] = lambda _n: None,
    store: Store | None = None,
) -> int:
    """Write every record (and, for a store that takes them, dead letter) the outbox holds since
    ``since`` to one store; returns how many entries were written. Retries a store that is
    down a few times, then raises StoreUnavailable."""
    _, outbox = _ledger_and_outbox(settings)
    store = store or build_store(store_name, settings)
    total = 0
    try:
        for entries in outbox_entries(outbox, since_entry_id(since)):
            todo = [d for d in entries if d.kind == "record" or store.takes_dead_letters]
            for attempt in range(5):
                try:
                    result = store.write(todo)
                    break
                except StoreUnavailable:
                    if attempt == 4:
                        raise
                    time.sleep(2**attempt)
            total += len(result.written)
            progress(len(entries))
    finally:
        store.close()
    return total
