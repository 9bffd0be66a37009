"""What the broker can tell about the workers: queue depths, and which queues have a consumer.

Both go through kombu, never through Redis directly, so they answer the same on the Redis
broker and on RabbitMQ (``INGEST_BROKER_URL``). A broker that cannot be reached is not an
error here: ``ingest status`` shows "unknown" and ``ingest run`` keeps waiting.

* Depth: a passive ``queue_declare`` returns the messages waiting (not those a worker took
  and has not acknowledged yet). A queue the broker does not know holds nothing: kombu's
  Redis transport has no queue until its list has a message; RabbitMQ's until a worker or the
  app declared it.
* Consumers: ``ingest run`` asks the workers (Celery's remote control, ``active_queues``)
  which queues they consume. A worker answers only once its consumer is running, that is
  after the CPU worker's warm-up (its detectors and the pipelines of ``INGEST_PRELOAD_MODELS``:
  :mod:`worker.warmup`), so the answer says whether the job waits for workers to start, for
  models to load, or for nothing. A pipeline not preloaded loads inside the first task that
  needs it; :mod:`stores.model_loads` says which are loading.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import structlog
from kombu.exceptions import OperationalError

from config import Settings

if TYPE_CHECKING:
    from celery import Celery

log = structlog.stdlib.get_logger("ingest.probe")

#: Seconds to connect to the broker before its queue depths are reported unknown.
CONNECT_TIMEOUT = 3.0


def queue_depths(settings: Settings) -> dict[str, int | None]:
    """Messages waiting in the fetch and cpu queues (by their short names); None where unknown."""
    from worker.app import app

    names = {"fetch": settings.fetch_queue, "cpu": settings.cpu_queue}
    depths: dict[str, int | None] = dict.fromkeys(names)
    connection = app.connection_for_read(settings.effective_broker_url, connect_timeout=CONNECT_TIMEOUT)
    try:
        # Errors of the transport in use (redis-py's, amqp's...), plus sockets and timeouts.
        unreachable = (OSError, OperationalError, *connection.connection_errors)
        not_found = tuple(connection.channel_errors)
        connection.ensure_connection(max_retries=0, timeout=CONNECT_TIMEOUT)
        for short, name in names.items():
            channel = connection.channel()  # one each: RabbitMQ closes a channel on "not found"
            try:
                depths[short] = int(channel.queue_declare(queue=name, passive=True).message_count)
            except not_found:
                depths[short] = 0
            finally:
                _close(channel)
    except unreachable as exc:
        log.debug("probe.broker_unreachable", error=str(exc))
    finally:
        _close(connection)
    return depths


def control_app(settings: Settings) -> Celery:
    """A Celery app on these settings' broker, to ask the workers questions.

    Not :data:`worker.app.app`: Celery publishes a broadcast through the app's own producer
    pool, on the broker the app was configured with, whatever connection it is handed; in
    ``ingest run`` that is the process's settings, not the embedded Redis the workers use.
    """
    from worker.app import app, create_app

    control = create_app(settings)
    app.set_current()  # a new app makes itself Celery's current one: the process's app stays it
    return control


def consumed_queues(settings: Settings, control: Celery, timeout: float = 0.5) -> set[str]:
    """Short names (``fetch``, ``cpu``) of the queues some running worker consumes now.

    ``control``: the :func:`control_app` of ``settings``, kept by the caller between calls.
    Waits ``timeout`` seconds for the answers; an empty set when nobody answers or the broker
    is down.
    """
    with control.connection_for_read() as connection:
        unreachable = (OSError, OperationalError, *connection.connection_errors, *connection.channel_errors)
    try:
        replies = control.control.inspect(timeout=timeout).active_queues() or {}
    except unreachable as exc:  # the broker is down or restarting: nobody is known to consume
        log.debug("probe.inspect_failed", error=f"{type(exc).__name__}: {exc}")
        return set()
    consumed = {queue.get("name") for queues in replies.values() for queue in queues or ()}
    names = {settings.fetch_queue: "fetch", settings.cpu_queue: "cpu"}
    return {names[name] for name in consumed if name in names}


def _close(resource: Any) -> None:
    try:
        resource.close()
    except (OSError, OperationalError) as exc:  # closing a broken connection may fail too
        log.debug("probe.close_failed", error=str(exc))
