"""The shared RabbitMQ on 127.0.0.1:5672 as a test's Celery broker (Redis keeps the state)."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from kombu import Connection

from config import Settings

RABBITMQ = "amqp://guest:guest@127.0.0.1:5672//"


@contextlib.contextmanager
def on_rabbitmq(settings: Settings, **overrides: Any) -> Iterator[Settings]:
    """``settings`` with RabbitMQ as the broker (and ``overrides``); the run's queues are
    deleted afterwards. Fails the test when RabbitMQ does not answer."""
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=2).close()
    except OSError:
        pytest.fail("RabbitMQ does not answer on 127.0.0.1:5672")
    configured = settings.model_copy(update={"broker_url": RABBITMQ, **overrides})
    try:
        yield configured
    finally:
        with Connection(RABBITMQ) as connection:
            for queue in (configured.fetch_queue, configured.cpu_queue):
                with contextlib.suppress(Exception):  # a queue never declared is not an error here
                    connection.channel().queue_delete(queue)
