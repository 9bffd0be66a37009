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


def test_stage_seconds_are_sampled_once_per_url(settings: Settings, redis_client: redis.Redis) -> None:
    from stores.ledger import STAGE_SAMPLES

    ledger = _ledger(settings, redis_client)
    ledger.open_batch("b4", total=3)
    for n, seconds in enumerate([0.4, 0.1, 0.3, 0.2]):
        assert ledger.stage_done("b4", "fetch", f"r{n}", 0, seconds=seconds)
    assert not ledger.stage_done("b4", "fetch", "r0", 0, seconds=50.0)  # redelivered: no second sample
    assert ledger.stage_done("b4", "language", "r0", 1)  # counted without a time: no sample
    status = ledger.status("b4")
    assert status is not None
    assert status.stages == {"fetch": 4, "language": 1}
    assert status.stage_seconds == {"fetch": {"p50": 0.2, "p95": 0.4, "samples": 4}}
    row = status.as_dict()
    assert row["stage_seconds"] == status.stage_seconds and row["pending"] == 3  # the old keys stay
    assert row["done"] is False and row["seconds"] >= 0
    for n in range(STAGE_SAMPLES + 5):  # the list keeps the last STAGE_SAMPLES
        ledger.stage_done("b4", "clean", f"s{n}", 2, seconds=1.0 if n < 5 else 2.0)
    status = ledger.status("b4")
    assert status is not None
    assert status.stage_seconds["clean"] == {"p50": 2.0, "p95": 2.0, "samples": STAGE_SAMPLES}


def test_rate_of_a_finished_batch_runs_to_its_last_outcome(
    settings: Settings, redis_client: redis.Redis
) -> None:
    ledger = _ledger(settings, redis_client)
    ledger.open_batch("b5", total=2)
    assert ledger.claim_outcome("b5", "r1", "seen")
    assert ledger.claim_outcome("b5", "r2", "unchanged")
    status = ledger.status("b5")
    assert status is not None and status.done
    assert status.created_at < status.touched  # microseconds: a fast batch still has a duration
    row = status.as_dict()
    assert row["seconds"] == round(status.touched - status.created_at, 3)
    assert row["urls_per_second"] == round(2 / (status.touched - status.created_at), 2)
    assert status.seconds(now=status.touched + 3600) == status.seconds()  # done: the clock stopped


def test_purge_deletes_the_batch_keys_and_nothing_else(settings: Settings, redis_client: redis.Redis) -> None:
    ledger = _ledger(settings, redis_client)
    outbox = _outbox(ledger, settings, redis_client)
    for batch in ("b6", "b6x"):  # b6x shares b6's first characters, not its keys
        ledger.open_batch(batch, total=2, urls={"a": "https://example.org/a"})
        ledger.stage_done(batch, "fetch", "a", 0, seconds=0.1)
        outbox.commit_dead_letter(_letter(batch, "b"))
    keys, listed = ledger.purge("b6")
    prefix = f"{settings.key_prefix}:batch:b6"
    assert listed and keys == sorted(
        [prefix, *(f"{prefix}:{part}" for part in ("dead", "outcomes", "progress", "seconds:fetch", "urls"))]
    )
    assert ledger.status("b6") is None and ledger.batch_keys("b6") == [] and not ledger.is_listed("b6")
    assert ledger.status("b6x") is not None and ledger.recent_batches() == ["b6x"]
    assert redis_client.xlen(outbox.key) == 2  # the outbox keeps both batches' entries
    assert ledger.purge("b6") == ([], False)
