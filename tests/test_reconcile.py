"""The reconciler on a real Redis: an idle batch's URLs without outcome are sent again, once
per round, and a moving batch is left alone."""

from __future__ import annotations

import json
import time

import redis

from config import Settings
from stores.ledger import Ledger
from stores.redis_client import client_for
from worker.reconcile import reconcile


def _queued_urls(client: redis.Redis, queue: str) -> list[str]:
    return sorted(json.loads(raw)["headers"]["argsrepr"] for raw in client.lrange(queue, 0, -1))


def test_an_idle_batch_gets_its_urls_without_outcome_sent_again(
    settings: Settings, redis_client: redis.Redis
) -> None:
    ledger = Ledger(client_for(settings), settings.key_prefix, settings.batch_ttl)
    urls = {f"r{index}": f"https://site{index}.example/a" for index in range(3)}
    ledger.open_batch("b1", 3, urls)
    assert ledger.claim_outcome("b1", "r0", "seen")
    assert reconcile(settings, ledger) == 0  # it just moved: not stuck
    later = time.time() + settings.stuck_after + 1
    assert reconcile(settings, ledger, now=later) == 2
    assert _queued_urls(redis_client, settings.fetch_queue) == [
        f"Jobs(['https://site{index}.example/a'], batch='b1')" for index in (1, 2)
    ]
    assert reconcile(settings, ledger, now=later) == 0  # one turn per round
    status = ledger.status("b1")
    assert status is not None and status.resent == 2
    ledger.claim_outcome("b1", "r1", "seen")
    ledger.claim_outcome("b1", "r2", "unchanged")
    redis_client.delete(ledger.batch_key("b1", "turn:reconcile"))
    assert reconcile(settings, ledger, now=later + 10 * settings.stuck_after) == 0  # done: left alone
