"""Delivery end to end: real worker processes, Redis, PostgreSQL, a Redis Stream and a webhook
receiver on loopback. Every record reaches every configured store exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest
import redis

from config import Settings
from stores.ledger import Ledger
from stores.redis_client import client_for
from tests.support.faults import wait_for
from tests.support.http_server import serve_pages
from tests.support.pages import load_pages
from tests.support.stores import drop_postgres_table, jsonl_ids, jsonl_lines, postgres_ids, stream_ids
from tests.support.webhook_receiver import fail_first, serve_webhook
from tests.support.workers import running_workers, settings_env, wait_for_batch
from tests.test_schema import validate_dead_letter, validate_record
from worker import enqueue
from worker.processes import spawn_worker

pytestmark = pytest.mark.integration

SECRET = "test-webhook-secret"


@pytest.fixture
def store_settings(settings: Settings, postgres_dsn: str):  # type: ignore[no-untyped-def]
    """Test settings with PostgreSQL on a private table, fast retries and prompt delivery retries."""
    table = "articles_" + settings.key_prefix.replace("-", "_")
    configured = settings.model_copy(
        update={
            "postgres_dsn": postgres_dsn,
            "postgres_table": table,
            "max_retries": 1,
            "retry_backoff_base": 0.1,
            "fetch_connect_timeout": 2.0,
            "delivery_backoff_max": 2.0,
            "delivery_claim_idle": 5.0,
        }
    )
    yield configured
    drop_postgres_table(configured)


def _published(settings: Settings, *batches: str) -> set[str]:
    """Ids committed as records by the batches (from the ledger's outcomes)."""
    client = client_for(settings)
    ledger = Ledger(client, settings.key_prefix, settings.batch_ttl)
    ids = set()
    for batch in batches:
        for rid, outcome in client.hgetall(ledger.batch_key(batch, "outcomes")).items():
            if outcome in (b"published", b"duplicate"):
                ids.add(rid.decode())
    return ids


def test_all_four_stores_get_every_record_once(
    store_settings: Settings, tmp_path: Path, redis_client: redis.Redis
) -> None:
    pages = load_pages()
    # The receiver answers 503 to each record's first POST: every record is still taken once.
    with serve_webhook(SECRET, behaviour=fail_first(503)) as receiver, serve_pages(pages) as server:
        settings = store_settings.model_copy(
            update={
                "stores": "jsonl,postgres,redis_stream,webhook",
                "webhook_url": receiver.url,
                "webhook_secret": SECRET,
            }
        )
        with running_workers(settings, tmp_path / "logs", concurrency={"fetch": 8, "cpu": 2}):
            urls = [server.url(page.id) for page in pages]
            urls += [server.url(pages[0].id) + "?edition=copy", server.base_url + "/missing"]
            result = enqueue(urls, settings=settings)
            status = wait_for_batch(settings, result.batch, timeout=240)
        published = _published(settings, result.batch)
        assert len(published) == len(pages) + 1
        assert status["outcomes"]["dead"] == 1  # type: ignore[index]
        assert jsonl_ids(settings) == {rid: 1 for rid in published}
        assert postgres_ids(settings) == {rid: 1 for rid in published}
        assert stream_ids(settings, redis_client) == {rid: 1 for rid in published}
        assert set(receiver.accepted) == published
        posts = receiver.posts
        assert all(post.signature_ok for post in posts)
        assert sorted(post.key for post in posts if post.status == 503) == sorted(published)
        assert sorted(post.key for post in posts if post.status == 200) == sorted(published)
    delivery = status["delivery"]
    assert isinstance(delivery, dict)
    for store in ("jsonl", "postgres", "redis_stream", "webhook"):
        assert delivery[store] == {"delivered": len(published) + 1, "failed": 0, "pending": 0}, store
    # Everything the pipeline emitted is valid by the committed schema file.
    for line in jsonl_lines(settings.output_dir / "articles.jsonl"):
        validate_record(line)
    letters = jsonl_lines(settings.output_dir / "dead-letters.jsonl")
    assert [letter["reason"] for letter in letters] == ["http_error"]
    for letter in letters:
        validate_dead_letter(letter)
    for document in receiver.accepted.values():
        validate_record(document)


def test_overlapping_batches_of_the_same_urls_give_one_record_each(
    store_settings: Settings, tmp_path: Path
) -> None:
    pages = load_pages()
    settings = store_settings
    with (
        serve_pages(pages) as server,
        running_workers(settings, tmp_path / "logs", concurrency={"fetch": 8, "cpu": 2}),
    ):
        urls = [server.url(page.id) + f"?v={n}" for page in pages for n in range(3)]
        first = enqueue(urls, settings=settings)
        second = enqueue(list(reversed(urls)), settings=settings)  # while the first is in flight
        wait_for_batch(settings, first.batch, timeout=240)
        last = wait_for_batch(settings, second.batch, timeout=240)
    published = _published(settings, first.batch, second.batch)
    assert len(published) == len(urls)
    assert jsonl_ids(settings) == {rid: 1 for rid in published}
    assert postgres_ids(settings) == jsonl_ids(settings)
    reasons = {**last["dead_letter_reasons"]}  # type: ignore[dict-item]
    assert not reasons, reasons  # no body_expired: one batch never deletes the other's pages
    assert jsonl_lines(settings.output_dir / "dead-letters.jsonl") == []


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def test_delivery_and_cpu_processes_killed_mid_batch_leave_no_gap_and_no_repeat(
    store_settings: Settings, tmp_path: Path, redis_client: redis.Redis
) -> None:
    pages = load_pages()
    with serve_webhook(SECRET) as receiver, serve_pages(pages) as server:
        settings = store_settings.model_copy(
            update={
                "stores": "jsonl,postgres,redis_stream,webhook",
                "webhook_url": receiver.url,
                "webhook_secret": SECRET,
                "delivery_batch": 2,  # many small writes, so a kill lands between write and ack
            }
        )
        env = settings_env(settings)
        logs = tmp_path / "logs"
        with running_workers(
            settings, logs, queues=("fetch", "cpu"), concurrency={"fetch": 8, "cpu": 2}
        ) as workers:
            urls = [server.url(page.id) + f"?v={n}" for page in pages for n in range(4)]
            result = enqueue(urls, settings=settings)
            ledger = Ledger(client_for(settings), settings.key_prefix, settings.batch_ttl)
            log = (logs / "deliver.log").open("ab")
            for _ in range(3):  # start delivery, kill it -9 once it has stored something, again
                deliverer = spawn_worker("deliver", env, log)
                wait_for(lambda: _delivered(ledger, result.batch) > 0 or _done(ledger, result.batch))
                _kill_group(deliverer)
            # The CPU pool's children are killed too: their stage messages come back.
            cpu = workers[1]
            children = subprocess.run(
                ["pgrep", "-P", str(cpu.pid)], capture_output=True, text=True
            ).stdout.split()
            for pid in children:
                os.kill(int(pid), signal.SIGKILL)
            deliverer = spawn_worker("deliver", env, log)
            try:
                wait_for_batch(settings, result.batch, timeout=300)
            finally:
                deliverer.send_signal(signal.SIGTERM)
                deliverer.wait(timeout=30)
                log.close()
        published = _published(settings, result.batch)
        assert published
        assert jsonl_ids(settings) == {rid: 1 for rid in published}
        assert postgres_ids(settings) == {rid: 1 for rid in published}
        assert stream_ids(settings, redis_client) == {rid: 1 for rid in published}
        assert set(receiver.accepted) == published  # a re-sent POST carries the same key


def _delivered(ledger: Ledger, batch: str) -> int:
    status = ledger.status(batch)
    return min(status.delivered.values(), default=0) if status else 0


def _done(ledger: Ledger, batch: str) -> bool:
    status = ledger.status(batch)
    return bool(status and status.done)
