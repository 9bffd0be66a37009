"""The pipeline on RabbitMQ (``INGEST_BROKER_URL``), Redis kept for the state, end to end.

The producer (``ingest enqueue``), the workers, the delivery process and ``ingest status`` all
take the broker from the same setting: the messages go through the shared RabbitMQ on
127.0.0.1:5672, and nothing of the batch's messages is left in Redis. (The fault suite kills
a worker on RabbitMQ: tests/faults/test_rabbitmq_broker.py.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from kombu import Connection

from config import Settings
from tests.support.http_server import serve_pages
from tests.support.pages import load_pages
from tests.support.rabbitmq import RABBITMQ, on_rabbitmq
from tests.support.workers import running_workers, settings_env, wait_for_batch

pytestmark = pytest.mark.integration


@pytest.fixture
def rabbit_settings(settings: Settings) -> Iterator[Settings]:
    """Settings with RabbitMQ as the broker and fast retries."""
    with on_rabbitmq(settings, max_retries=1, retry_backoff_base=0.1) as configured:
        yield configured


def _ingest(settings: Settings, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "worker", *args]
    return subprocess.run(
        command, env=settings_env(settings), input=stdin, capture_output=True, text=True, timeout=120
    )


def test_pipeline_runs_on_rabbitmq_with_redis_for_state(
    rabbit_settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    settings = rabbit_settings
    pages = load_pages()[:3]
    with serve_pages(pages) as server, running_workers(settings, tmp_path / "logs"):
        urls = [server.url(page.id) for page in pages] + [f"{server.base_url}/missing"]
        enqueued = _ingest(settings, "enqueue", "-", stdin="\n".join(urls) + "\n")
        assert enqueued.returncode == 0, enqueued.stderr
        batch = enqueued.stdout.strip()
        status = wait_for_batch(settings, batch, timeout=180)
        shown = _ingest(settings, "status", batch, "--json")
    assert status["outcomes"] == {  # type: ignore[comparison-overlap]
        "published": 3,
        "duplicate": 0,
        "unchanged": 0,
        "seen": 0,
        "dead": 1,
    }
    records = (settings.output_dir / "articles.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["url"] for line in records) == sorted(urls[:3])
    # ingest status read the queue depths from RabbitMQ, and exits 3: the batch has a dead letter.
    assert shown.returncode == 3, shown.stderr
    assert json.loads(shown.stdout)["queues"] == {"fetch": 0, "cpu": 0}
    # No Celery queue of this run lives in Redis: the broker really was RabbitMQ.
    assert not redis_client.exists(settings.fetch_queue, settings.cpu_queue)
    with Connection(RABBITMQ) as connection:
        declared = connection.default_channel.queue_declare(settings.cpu_queue, passive=True)
        assert declared.message_count == 0
