"""RabbitMQ as the broker (``INGEST_BROKER_URL``): a killed worker's messages come back at once.

The shared RabbitMQ on 127.0.0.1:5672 (guest/guest) carries the Celery messages; Redis keeps
the pipeline's state. The CPU worker is killed with its pool (kill -9) mid-batch: RabbitMQ
sees the connection drop and hands its unacknowledged messages to the new worker, with no
visibility timeout to wait for.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from config import Settings
from tests.support.faults import assert_each_url_ended_once, batch_with_a_worker_killed
from tests.support.rabbitmq import on_rabbitmq

pytestmark = [pytest.mark.integration, pytest.mark.faults, pytest.mark.timeout(600)]


@pytest.fixture
def rabbit_settings(settings: Settings) -> Iterator[Settings]:
    """Settings with RabbitMQ as the broker, and no reconciler in time: the broker must do it."""
    overrides = {
        "stores": "jsonl",
        "max_retries": 1,
        "retry_backoff_base": 0.1,
        "fetch_connect_timeout": 2.0,
        "stuck_after": 600.0,
    }
    with on_rabbitmq(settings, **overrides) as configured:
        yield configured


def test_cpu_worker_killed_mid_batch_on_rabbitmq(rabbit_settings: Settings, tmp_path: Path) -> None:
    run = batch_with_a_worker_killed(rabbit_settings, tmp_path / "logs", "cpu")
    assert run.status["resent"] == 0  # the broker gave the messages back, not the reconciler
    fault = "kill -9 of the CPU worker, RabbitMQ broker"
    ended = assert_each_url_ended_once(rabbit_settings, run.urls, fault, run.seconds_after_kill)
    assert ended == (len(run.urls) - 2, 2)
