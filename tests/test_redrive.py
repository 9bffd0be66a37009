"""``ingest retry-dead`` and ``ingest replay`` as a user runs them, on real Redis and a real
webhook receiver."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime

import redis

from config import Settings
from stores.jsonl import JsonlStore
from stores.ledger import Ledger
from stores.webhook import WebhookStore
from tasks.record import ArticleRecord, DeadLetter
from tests.support.webhook_receiver import always, serve_webhook
from tests.support.workers import settings_env
from worker.delivery import StoreConsumer
from worker.stage import outbox_for

INGEST = [sys.executable, "-m", "worker"]
SECRET = "s3cret"


def _ingest(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*INGEST, *args], env=settings_env(settings), capture_output=True, text=True, timeout=120
    )


def _commit_records(settings: Settings, batch: str, count: int) -> list[str]:
    ledger = Ledger(
        redis.Redis.from_url(settings.effective_redis_url), settings.key_prefix, settings.batch_ttl
    )
    outbox = outbox_for(settings, ledger)
    outbox.ensure_groups(settings.store_names)
    ledger.open_batch(batch, count)
    ids = []
    for index in range(count):
        record = ArticleRecord(
            id=f"{batch}-{index}", url=f"https://example.org/{index}", text="t", content_hash="h"
        )
        outbox.commit_record(batch, record.id, "published", record.model_dump_json(), 600)
        ids.append(record.id)
    return ids


def test_replay_delivers_the_outbox_to_a_newly_added_store(
    settings: Settings, redis_client: redis.Redis
) -> None:
    settings = settings.model_copy(update={"stores": "jsonl"})
    ids = _commit_records(settings, "b1", 7)
    jsonl = StoreConsumer(
        JsonlStore(settings.output_dir), outbox_for(settings, _ledger(settings)), settings, "c"
    )
    for _ in range(3):
        jsonl.step(0)
    completed = _ingest(settings, "replay", "--store", "redis_stream", "--since", "1h")
    assert completed.returncode == 0, completed.stderr
    assert "7 entries written to redis_stream" in completed.stderr
    stream = [fields[b"id"].decode() for _, fields in redis_client.xrange(settings.stream_name)]
    assert stream == ids
    again = _ingest(settings, "replay", "--store", "redis_stream")  # idempotent: nothing added
    assert again.returncode == 0 and redis_client.xlen(settings.stream_name) == 7
    future = _ingest(settings, "replay", "--store", "redis_stream", "--since", "2999-01-01T00:00:00")
    assert "0 entries written" in future.stderr
    bad = _ingest(settings, "replay", "--store", "redis_stream", "--since", "yesterday")
    assert bad.returncode == 1 and "--since" in bad.stderr


def _ledger(settings: Settings) -> Ledger:
    return Ledger(redis.Redis.from_url(settings.effective_redis_url), settings.key_prefix, settings.batch_ttl)


def test_retry_dead_store_writes_what_the_store_refused(settings: Settings) -> None:
    with serve_webhook(SECRET, behaviour=always(400)) as receiver:
        settings = settings.model_copy(
            update={"stores": "jsonl,webhook", "webhook_url": receiver.url, "webhook_secret": SECRET}
        )
        ids = _commit_records(settings, "b1", 4)
        outbox = outbox_for(settings, _ledger(settings))
        webhook = WebhookStore(receiver.url, SECRET, concurrency=2, timeout=5, user_agent="test")
        consumer = StoreConsumer(webhook, outbox, settings, "c")
        consumer.step(0)
        status = _ledger(settings).status("b1")
        assert status is not None and status.failed == {"webhook": 4} and not receiver.accepted
        receiver.behaviour = always(200)
        completed = _ingest(settings, "retry-dead", "--store", "webhook", "--batch", "b1")
        assert completed.returncode == 0, completed.stderr
        assert "4 of 4 records written to webhook" in completed.stderr
        assert sorted(receiver.accepted) == sorted(ids)
    status = _ledger(settings).status("b1")
    assert status is not None and status.failed == {"webhook": 0} and status.delivered == {"webhook": 4}
    assert _ingest(settings, "retry-dead", "--store", "webhook").stderr.startswith("0 of 0")


def test_retry_dead_enqueues_failed_urls_again_as_a_new_batch(
    settings: Settings, redis_client: redis.Redis
) -> None:
    ledger = _ledger(settings)
    outbox = outbox_for(settings, ledger)
    ledger.open_batch("b-old", 3)
    for index, reason in enumerate(("timeout", "timeout", "http_error")):
        outbox.commit_dead_letter(
            DeadLetter(
                id=f"r{index}",
                url=f"https://site{index}.example/story",
                batch="b-old",
                stage="fetch",
                reason=reason,
                error="e",
                attempts=4,
                failed_at=datetime.now(UTC),
            )
        )
    completed = _ingest(settings, "retry-dead", "--reason", "timeout")
    assert completed.returncode == 0, completed.stderr
    new_batch = completed.stdout.strip()
    status = ledger.status(new_batch)
    assert status is not None and status.total == 2
    queued = [
        json.loads(raw)["headers"]["argsrepr"] for raw in redis_client.lrange(settings.fetch_queue, 0, -1)
    ]
    assert sorted(queued) == sorted(
        f"Jobs(['https://site{i}.example/story'], batch={new_batch!r})" for i in (0, 1)
    )
    assert [letter.reason for letter in ledger.dead_letters("b-old")] == ["http_error"]
    again = _ingest(settings, "retry-dead", "--reason", "timeout")  # a letter is re-driven once
    assert "no matching dead letters" in again.stderr


def test_unknown_store_is_a_clear_error(settings: Settings) -> None:
    completed = _ingest(settings, "replay", "--store", "elastic")
    assert completed.returncode == 2 and "unknown store 'elastic'" in completed.stderr
