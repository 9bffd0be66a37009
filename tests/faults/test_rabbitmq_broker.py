"""RabbitMQ as the broker (``INGEST_BROKER_URL``): a killed worker's messages come back at once.

The shared RabbitMQ on 127.0.0.1:5672 (guest/guest) carries the Celery messages; Redis keeps
the pipeline's state. The CPU worker is killed with its pool (kill -9) mid-batch: RabbitMQ
sees the connection drop and hands its unacknowledged messages to the new worker, with no
visibility timeout to wait for.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kombu import Connection

from config import Settings
from tests.faults.test_worker_faults import _restart, _urls
from tests.support.faults import assert_each_url_ended_once, kill_group, outcomes_so_far, wait_for
from tests.support.http_server import serve_pages
from tests.support.pages import load_pages
from tests.support.workers import running_workers, wait_for_batch
from worker import enqueue
from worker.processes import stop_workers

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.timeout(600)]

RABBITMQ = "amqp://guest:guest@127.0.0.1:5672//"


@pytest.fixture
def rabbit_settings(settings: Settings) -> Iterator[Settings]:
    """Settings with RabbitMQ as the broker; the test's queues are deleted afterwards."""
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=2).close()
    except OSError:
        pytest.fail("RabbitMQ does not answer on 127.0.0.1:5672")
    configured = settings.model_copy(
        update={
            "broker_url": RABBITMQ,
            "stores": "jsonl",
            "max_retries": 1,
            "retry_backoff_base": 0.1,
            "fetch_connect_timeout": 2.0,
            "stuck_after": 600.0,  # the broker must do it alone: no reconciler in time
        }
    )
    yield configured
    with Connection(RABBITMQ) as connection:
        channel = connection.default_channel
        for queue in (configured.fetch_queue, configured.cpu_queue):
            try:
                channel.queue_delete(queue)
            except Exception:  # a queue never declared is not an error here
                channel = connection.channel()


def test_cpu_worker_killed_mid_batch_on_rabbitmq(rabbit_settings: Settings, tmp_path: Path) -> None:
    settings = rabbit_settings
    logs = tmp_path / "logs"
    with (
        serve_pages(load_pages()) as server,
        running_workers(settings, logs, concurrency={"fetch": 8, "cpu": 2}) as workers,
    ):
        urls = _urls(server.base_url, server.url)
        result = enqueue(urls, settings=settings)
        wait_for(lambda: outcomes_so_far(settings, result.batch) >= 5)
        kill_group(workers[1])
        killed_at = time.monotonic()
        replacement = _restart("cpu", settings, logs, 2)
        try:
            status = wait_for_batch(settings, result.batch, timeout=400)
        finally:
            stop_workers([replacement])
        recovered = time.monotonic() - killed_at
    assert status["resent"] == 0  # the broker gave the messages back, not the reconciler
    assert assert_each_url_ended_once(settings, urls) == (len(urls) - 2, 2)
    print(f"\nrabbitmq, cpu worker kill -9: all {len(urls)} ended {recovered:.0f}s after the kill")
