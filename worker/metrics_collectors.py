"""What a Prometheus scrape reads live: queue depths from the broker, delivery lag from the outbox.

These are not counters a task increments but states of Redis and of the broker, so they are
read when Prometheus asks, by custom collectors in the registry each metrics server serves
(:func:`serving_registry`), beside the multiprocess values. Every worker and delivery process
serves them, so the same value comes from several targets: dashboards take ``max by``.

A source that does not answer (Redis down, broker down) only loses its own samples for that
scrape, counted in ``ingest_scrape_errors_total{source}``; the scrape itself still answers.
Connections get short timeouts, well inside Prometheus's default scrape timeout of 10 s.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis
import structlog
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector, CollectorRegistry

from config import Settings
from stores.outbox import group_name
from stores.redis_client import as_text
from worker.metrics_families import FAMILIES

if TYPE_CHECKING:
    from celery import Celery

log = structlog.stdlib.get_logger("ingest.metrics")

#: Seconds to connect to, and to wait for an answer from, Redis or the broker during a scrape.
CONNECT_TIMEOUT = 2.0
READ_TIMEOUT = 4.0
#: Redis without XINFO's ``lag`` (before 7.0, or after an XDEL): undelivered entries are counted
#: by the server up to this many ("at least" past it), so a scrape never copies a whole backlog.
LAG_COUNT_CAP = 1000
_COUNT_AFTER = """
return #redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', ARGV[2])
"""


def _gauge(name: str) -> GaugeMetricFamily:
    family = FAMILIES[name]
    return GaugeMetricFamily(name, family.help, labels=family.labels)


class ScrapeErrors(Collector):
    """``ingest_scrape_errors_total{source}``: sources a scrape of this process could not read."""

    SOURCES = ("broker", "outbox")

    def __init__(self) -> None:
        self._counts = dict.fromkeys(self.SOURCES, 0)
        self._lock = threading.Lock()

    def failed(self, source: str, exc: BaseException) -> None:
        """Count one failed read of ``source``."""
        with self._lock:
            self._counts[source] = self._counts.get(source, 0) + 1
        log.warning("metrics.scrape_failed", source=source, error=repr(exc))

    def collect(self) -> Iterator[Metric]:
        """The counter, one sample per source."""
        family = FAMILIES["ingest_scrape_errors_total"]
        counter = CounterMetricFamily(family.name.removesuffix("_total"), family.help, labels=family.labels)
        with self._lock:
            for source, count in self._counts.items():
                counter.add_metric([source], count)
        yield counter


def queue_depths(app: Celery, queues: list[str]) -> dict[str, int]:
    """Messages waiting in each queue, asked of the broker through kombu (Redis or RabbitMQ).

    A passive ``queue_declare`` returns the broker's message count: RabbitMQ's own count, and
    on Redis kombu's, the sum of the queue's priority sub-lists (``LLEN`` of each). Messages a
    worker reserved (prefetched, unacknowledged) are not counted. A queue that does not exist
    holds nothing: RabbitMQ before its first declaration, Redis whenever its list is empty.
    """
    depths: dict[str, int] = {}
    options = {"socket_connect_timeout": CONNECT_TIMEOUT, "socket_timeout": READ_TIMEOUT}
    with app.connection_for_read(connect_timeout=CONNECT_TIMEOUT, transport_options=options) as connection:
        connection.ensure_connection(max_retries=0)
        for queue in queues:
            # A channel per queue: RabbitMQ closes the channel of a failed passive declare.
            channel = connection.channel()
            try:
                depths[queue] = int(channel.queue_declare(queue=queue, passive=True).message_count)
            except connection.channel_errors as exc:
                if str(getattr(exc, "reply_code", "")) != "404":  # kombu's virtual transports: "404"
                    raise
                depths[queue] = 0
            finally:
                _close_quietly(channel)
    return depths


def _close_quietly(channel: Any) -> None:
    try:
        channel.close()
    except Exception as exc:  # a channel the broker already closed
        log.debug("metrics.channel_close_failed", error=repr(exc))


class QueueDepthCollector(Collector):
    """``ingest_queue_messages{queue}`` for the fetch and CPU queues of the settings."""

    def __init__(self, settings: Settings, errors: ScrapeErrors, app: Celery | None = None) -> None:
        self.queues = [settings.fetch_queue, settings.cpu_queue]
        self._errors = errors
        self._app = app

    def collect(self) -> Iterator[Metric]:
        """One sample per queue, or none when the broker does not answer."""
        try:
            depths = queue_depths(self._app or _process_app(), self.queues)
        except Exception as exc:
            self._errors.failed("broker", exc)
            return
        gauge = _gauge("ingest_queue_messages")
        for queue, depth in depths.items():
            gauge.add_metric([queue], depth)
        yield gauge


def _process_app() -> Celery:
    """The process's own Celery app: imported at the first scrape, so after prepare_metrics."""
    from worker.app import app

    return app


def delivery_lag(client: redis.Redis, outbox_key: str, stores: list[str]) -> dict[str, tuple[int, float]]:
    """Per store: outbox entries its group has not acknowledged, and the oldest one's age in seconds.

    Not acknowledged means not yet read by the group (XINFO GROUPS ``lag``) or read and still
    pending. Ages are measured on the Redis server's clock, which stamped the entry ids.
    """
    seconds, micros = client.time()
    now_ms = seconds * 1000 + micros / 1000
    try:
        groups = {as_text(info["name"]): info for info in client.xinfo_groups(outbox_key)}
    except redis.ResponseError:  # no outbox yet: nothing committed, nothing waiting
        return dict.fromkeys(stores, (0, 0.0))
    lags: dict[str, tuple[int, float]] = {}
    for store in stores:
        info = groups.get(group_name(store))
        if info is None:  # a store added later: its group will start from the oldest entry
            waiting, pending, last = int(client.xlen(outbox_key)), 0, "0-0"
        else:
            pending, last = int(info["pending"]), as_text(info["last-delivered-id"])
            lag = info.get("lag")
            waiting = int(lag) if lag is not None else _count_after(client, outbox_key, last)
        oldest: str | None = None
        if pending:
            oldest = as_text(client.xpending(outbox_key, group_name(store))["min"])
        elif waiting:
            first = client.xrange(outbox_key, min=f"({last}", count=1)
            oldest = as_text(first[0][0]) if first else None
        age = max(now_ms - int(oldest.partition("-")[0]), 0.0) / 1000 if oldest else 0.0
        lags[store] = (waiting + pending, round(age, 3))
    return lags


def _count_after(client: redis.Redis, key: str, last: str) -> int:
    return int(client.eval(_COUNT_AFTER, 1, key, f"({last}", LAG_COUNT_CAP))


class DeliveryLagCollector(Collector):
    """``ingest_delivery_lag_messages{store}`` and ``ingest_delivery_lag_seconds{store}``."""

    def __init__(self, settings: Settings, errors: ScrapeErrors) -> None:
        self.stores = settings.store_names
        self.outbox_key = settings.key("outbox")
        self._errors = errors
        self._client = redis.Redis.from_url(
            settings.effective_redis_url, socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=READ_TIMEOUT
        )

    def collect(self) -> Iterator[Metric]:
        """Two samples per configured store, or none when Redis does not answer."""
        try:
            lags = delivery_lag(self._client, self.outbox_key, self.stores)
        except redis.RedisError as exc:
            self._errors.failed("outbox", exc)
            return
        messages = _gauge("ingest_delivery_lag_messages")
        age = _gauge("ingest_delivery_lag_seconds")
        for store, (count, seconds) in lags.items():
            messages.add_metric([store], count)
            age.add_metric([store], seconds)
        yield messages
        yield age


def serving_registry(settings: Settings, directory: Path, app: Celery | None = None) -> CollectorRegistry:
    """What a metrics server serves: the multiprocess values of ``directory`` and the live reads."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))
    errors = ScrapeErrors()
    registry.register(QueueDepthCollector(settings, errors, app))
    registry.register(DeliveryLagCollector(settings, errors))
    registry.register(errors)
    return registry
