"""The batch ledger on a real Redis: one outcome per URL, whoever asks and however often."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import redis

from config import Settings
from stores.ledger import Ledger
from stores.outbox import Outbox
from tasks.record import DeadLetter


def _ledger(settings: Settings, client: redis.Redis) -> Ledger:
    return Ledger(client, settings.key_prefix, settings.batch_ttl)


def _outbox(ledger: Ledger, settings: Settings, client: redis.Redis) -> Outbox:
    return Outbox(client, settings.key_prefix, ledger, 3600)


def _letter(batch: str, record_id: str, reason: str = "http_error") -> DeadLetter:
    return DeadLetter(
        id=record_id,
        url=f"https://example.org/{record_id}",
        batch=batch,
        stage="fetch",
        reason=reason,
        error="HTTP 404",
        attempts=1,
        failed_at=datetime.now(UTC),
    )


def test_outcome_is_claimed_once_under_contention(settings: Settings, redis_client: redis.Redis) -> None:
    ledger = _ledger(settings, redis_client)
    ledger.open_batch("b1", total=3)
    attempts = ["published"] * 20 + ["duplicate"] * 20
    with ThreadPoolExecutor(max_workers=16) as pool:
        wins = list(pool.map(lambda outcome: ledger.claim_outcome("b1", "r1", outcome), attempts))
    assert wins.count(True) == 1
    outbox = _outbox(ledger, settings, redis_client)
    ledger_letters = [outbox.commit_dead_letter(_letter("b1", "r1")) for _ in range(3)]
    assert ledger_letters == [False, False, False]  # r1 already has its outcome
    status = ledger.status("b1")
    assert status is not None
    assert sum(status.outcomes.values()) == 1
    assert status.accounted == 1 and not status.done


def test_dead_letters_are_kept_and_counted_by_reason(settings: Settings, redis_client: redis.Redis) -> None:
    ledger = _ledger(settings, redis_client)
    ledger.open_batch("b2", total=2)
    outbox = _outbox(ledger, settings, redis_client)
    assert outbox.commit_dead_letter(_letter("b2", "a", "http_error"))
    assert not outbox.commit_dead_letter(_letter("b2", "a", "timeout"))
    assert outbox.commit_dead_letter(_letter("b2", "b", "not_html"))
    status = ledger.status("b2")
    assert status is not None and status.done
    assert status.reasons == {"http_error": 1, "not_html": 1}
    assert sorted((letter.id, letter.reason) for letter in ledger.dead_letters("b2")) == [
        ("a", "http_error"),
        ("b", "not_html"),
    ]
    assert redis_client.xlen(outbox.key) == 2 and status.committed == 2  # once each, for the stores


def test_stage_counts_retries_and_deliveries(settings: Settings, redis_client: redis.Redis) -> None:
    ledger = _ledger(settings, redis_client)
    ledger.open_batch("b3", total=1)
    assert ledger.stage_done("b3", "fetch", "r1", 0)
    assert not ledger.stage_done("b3", "fetch", "r1", 0)  # redelivered: counted once per URL
    assert ledger.stage_done("b3", "language", "r1", 1)
    assert not ledger.stage_done("b3", "fetch", "r1", 0)  # a stale step after its successor
    assert ledger.stage_done("b3", "fetch", "r2", 0)
    ledger.retried("b3", "fetch")
    status = ledger.status("b3")
    assert status is not None
    assert status.stages == {"fetch": 2, "language": 1} and status.retries == {"fetch": 1}
    assert [ledger.count_delivery("t1", 0) for _ in range(3)] == [1, 2, 3]
    assert ledger.count_delivery("t1", 1) == 1  # a retry is a new message
    assert ledger.recent_batches()[0] == "b3"
    assert ledger.status("unknown") is None
