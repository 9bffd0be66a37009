"""The outbox and the delivery consumers on a real Redis, with the real JSONL store.

No Celery here: the entries are committed as the publish stage commits them and delivered
by :class:`worker.delivery.StoreConsumer` in this process.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import redis

from config import Settings
from stores.jsonl import JsonlStore
from stores.ledger import Ledger
from stores.outbox import Outbox
from tasks.record import ArticleRecord, DeadLetter
from worker.delivery import StoreConsumer


def _outbox(
    settings: Settings, client: redis.Redis, retention: int = 3600, claim_idle: float = 120
) -> Outbox:
    ledger = Ledger(client, settings.key_prefix, settings.batch_ttl)
    return Outbox(client, settings.key_prefix, ledger, retention, claim_idle=claim_idle)


def _record(index: int) -> ArticleRecord:
    return ArticleRecord(id=f"r{index:04d}", url=f"https://example.org/{index}", text=f"text {index}")


def _commit(outbox: Outbox, batch: str, count: int) -> None:
    ledger = Ledger(outbox._client, outbox._prefix, 3600)
    ledger.open_batch(batch, count)
    for index in range(count):
        record = _record(index)
        assert (
            outbox.commit_record(batch, record.id, "published", record.model_dump_json(), 600) == "committed"
        )


def _drain(consumer: StoreConsumer, rounds: int = 50) -> None:
    for _ in range(rounds):
        consumer.step(0)


def test_commit_is_once_per_url_across_redeliveries_and_batches(
    settings: Settings, redis_client: redis.Redis
) -> None:
    outbox = _outbox(settings, redis_client)
    outbox.ensure_groups(["jsonl"])
    record = _record(1)
    ledger = Ledger(redis_client, settings.key_prefix, 3600)
    ledger.open_batch("b1", 1)
    ledger.open_batch("b2", 1)
    assert outbox.commit_record("b1", record.id, "published", record.model_dump_json(), 600) == "committed"
    assert outbox.commit_record("b1", record.id, "published", record.model_dump_json(), 600) == "ended"
    assert outbox.commit_record("b2", record.id, "published", record.model_dump_json(), 600) == "seen"
    assert redis_client.xlen(outbox.key) == 1
    first, second = ledger.status("b1"), ledger.status("b2")
    assert first and second
    assert (first.outcomes, first.committed) == ({"published": 1}, 1)
    assert (second.outcomes, second.committed) == ({"seen": 1}, 0)
    assert second.delivered_to(["jsonl"])


def test_consumer_writes_acks_and_counts_each_entry_once(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    outbox = _outbox(settings, redis_client)
    outbox.ensure_groups(["jsonl"])
    _commit(outbox, "b1", 25)
    letter = DeadLetter(
        id="gone",
        url="https://example.org/gone",
        batch="b1",
        stage="fetch",
        reason="http_error",
        error="HTTP 404",
        attempts=1,
        failed_at=datetime.now(UTC),
    )
    ledger = Ledger(redis_client, settings.key_prefix, 3600)
    assert outbox.commit_dead_letter(letter)
    assert not outbox.commit_dead_letter(letter)
    consumer = StoreConsumer(
        JsonlStore(tmp_path), outbox, settings.model_copy(update={"delivery_batch": 10}), "c1"
    )
    _drain(consumer)
    status = ledger.status("b1")
    assert status is not None
    assert status.committed == 26
    assert status.delivered == {"jsonl": 26}
    assert status.delivered_to(["jsonl"])
    assert len((tmp_path / "articles.jsonl").read_text().splitlines()) == 25
    assert json.loads((tmp_path / "dead-letters.jsonl").read_text())["id"] == "gone"
    assert outbox.groups()["jsonl"].pending == 0


def test_entries_of_a_consumer_that_died_are_taken_over(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    outbox = _outbox(settings, redis_client, claim_idle=5.0)
    outbox.ensure_groups(["jsonl"])
    _commit(outbox, "b1", 5)
    taken = outbox.read("jsonl", "dead-consumer", 10, 0)  # read, then the process died: never acked
    assert len(taken) == 5
    survivor = StoreConsumer(JsonlStore(tmp_path), outbox, settings, "survivor")
    assert survivor.step(0) == 0 and outbox.groups()["jsonl"].pending == 5  # not idle long enough yet
    time.sleep(5.5)
    _drain(survivor, 3)
    assert outbox.groups()["jsonl"].pending == 0
    assert len((tmp_path / "articles.jsonl").read_text().splitlines()) == 5
    status = Ledger(redis_client, settings.key_prefix, 3600).status("b1")
    assert status is not None and status.delivered == {"jsonl": 5}


def test_trim_keeps_what_a_group_has_not_acknowledged(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    outbox = _outbox(settings, redis_client, retention=60)
    outbox.ensure_groups(["jsonl", "postgres"])
    _commit(outbox, "b1", 10)
    _drain(StoreConsumer(JsonlStore(tmp_path), outbox, settings, "c1"))
    later = time.time() + 3600
    assert outbox.trim(["jsonl", "postgres"], now=later) == 0  # postgres has read nothing yet
    assert outbox.trim(["jsonl"], now=time.time()) == 0  # inside the retention
    assert outbox.trim(["jsonl"], now=later) == 10
    assert redis_client.xlen(outbox.key) == 0


def test_a_store_down_past_the_retention_dead_letters_its_records_naming_it(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    from stores.webhook import WebhookStore

    outbox = _outbox(settings, redis_client, retention=4)
    outbox.ensure_groups(["webhook", "jsonl"])
    _commit(outbox, "b1", 3)
    down = WebhookStore("http://127.0.0.1:1/hook", "secret", concurrency=2, timeout=1.0, user_agent="test")
    consumer = StoreConsumer(down, outbox, settings, "c1")
    assert consumer.step(0) > 0  # inside the retention: retried later, nothing dead yet
    assert outbox.groups()["webhook"].pending == 3
    time.sleep(4.5)
    assert consumer.step(0) == 0
    assert outbox.groups()["webhook"].pending == 0
    consumer.step(0)  # the three new dead-letter entries: not for the webhook, acknowledged
    status = Ledger(redis_client, settings.key_prefix, 3600).status("b1")
    assert status is not None and status.failed == {"webhook": 3} and status.committed == 6
    assert status.undelivered("webhook") == 0
    # The dead letters name the store, and reach the JSONL store's dead-letters.jsonl.
    _drain(StoreConsumer(JsonlStore(tmp_path), outbox, settings, "c2"))
    letters = [json.loads(line) for line in (tmp_path / "dead-letters.jsonl").read_text().splitlines()]
    assert sorted(letter["id"] for letter in letters) == ["r0000", "r0001", "r0002"]
    assert {(letter["store"], letter["stage"], letter["reason"]) for letter in letters} == {
        ("webhook", "deliver", "store_error")
    }
    assert len(redis_client.hkeys(outbox.store_dead_key("webhook"))) == 3
