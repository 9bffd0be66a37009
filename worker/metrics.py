"""Prometheus metrics of the workers and of ``ingest deliver`` (prometheus_client, multiprocess mode).

Why multiprocess mode: a prefork CPU worker is one main process and N pool children, and the
children do the work, while Prometheus scrapes one port per worker. So every process writes
its values to mmap files in a directory of the worker's own, and the main process serves
their sum (``MultiProcessCollector``). The gevent fetch worker and the delivery process are one
process each and are served the same way, from an HTTP server thread (a greenlet under gevent).

Order matters: prometheus_client decides how a metric keeps its value when the metric is
created, from ``PROMETHEUS_MULTIPROC_DIR``. So the ``worker`` and ``deliver`` commands call
:func:`prepare_metrics` before they import the Celery app and the stages (and before the pool
forks), and the metric objects here are created on first use, never at import.

Without a port (``INGEST_METRICS_PORT`` unset, no ``--metrics-port``) nothing is created and
every recording function returns at once. A recording function never raises: a metric must
never fail a task. Every label value is bounded (reasons from :data:`tasks.errors.REASONS`,
outcomes and stages from the code, everything else ``other``), so cardinality cannot grow
with the URLs ingested. Queue depths and delivery lag are read when Prometheus scrapes
(:mod:`worker.metrics_collectors`).
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable, Iterable
from functools import cache, wraps
from pathlib import Path
from typing import TYPE_CHECKING, ParamSpec

import structlog

from tasks.errors import REASONS
from worker.metrics_families import FAMILIES

if TYPE_CHECKING:
    from config import Settings
    from tasks.record import ArticleRecord

log = structlog.stdlib.get_logger("ingest.metrics")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: 1 ms to 60 s: a dedup lookup takes about a millisecond, a slow fetch or a big page's NER tens of seconds.
STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: 1 s to a day: a feed polled every 5 minutes, then fetch, the CPU stages and delivery.
DISCOVERY_BUCKETS = (
    1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0, 86400.0
)  # fmt: skip
#: The ledger's final outcomes, then the two ways a URL goes round again.
OUTCOMES = ("published", "duplicate", "unchanged", "seen", "dead", "retried", "deferred")
#: Reasons a URL is retried or deferred without being one of the dead-letter reasons.
EXTRA_REASONS = ("host_busy",)
#: Record fields whose fill rate is counted, with how each is read off a record.
FIELDS: dict[str, Callable[[ArticleRecord], object]] = {
    "title": lambda record: record.title,
    "date": lambda record: record.published_at,
    "authors": lambda record: record.authors,
    "entities": lambda record: record.entities,
}
DELIVERY_RESULTS = ("stored", "failed", "retried")
#: What the intake bridge did with a stream entry (:mod:`worker.intake_bridge`).
INTAKE_RESULTS = ("enqueued", "seen", "bad_url", "repeated", "resent", "done_before")
OTHER = "other"


_lock = threading.Lock()
_directory: Path | None = None
_metrics: _Metrics | None = None
P = ParamSpec("P")


def metrics_dir(port: int) -> Path:
    """The multiprocess directory of the process serving ``port``: one per port, so two workers
    on a host never share (or empty) each other's files, and a restart starts afresh."""
    return Path(tempfile.gettempdir()) / "news-ingest-metrics" / str(port)


def prepare_metrics(settings: Settings, port: int | None = None) -> int | None:
    """Serve ``/metrics`` on ``port`` (else ``settings.metrics_port``) and record from now on.

    Call it before the Celery app, the stages or anything creating a metric is imported, and
    before a pool forks. It binds the port first (a port already served by another process is
    left alone: logged, and this process runs without metrics), then empties the port's
    directory, sets ``PROMETHEUS_MULTIPROC_DIR`` for this process and its children, and has
    ``worker_process_shutdown`` mark a finished pool child dead. Returns the port, or None.
    """
    global _directory
    port = settings.metrics_port if port is None else port
    if not port:
        return None
    from celery.signals import worker_process_shutdown
    from prometheus_client import start_http_server, values

    from worker.metrics_collectors import serving_registry

    directory = metrics_dir(port)
    directory.mkdir(parents=True, exist_ok=True)
    try:
        start_http_server(port, addr=settings.metrics_addr, registry=serving_registry(settings, directory))
    except OSError as exc:
        log.error("metrics.unavailable", port=port, error=str(exc))
        return None
    for stale in directory.glob("*.db"):  # an earlier process of this port: its counts are not ours
        stale.unlink(missing_ok=True)
    os.environ[MULTIPROC_ENV] = str(directory)
    # In case prometheus_client was imported before (a library): its choice is made again.
    values.ValueClass = values.get_value_class()
    worker_process_shutdown.connect(_process_dead, weak=False)
    _directory = directory
    _get()  # the families without labels are served (at 0) from the first scrape
    log.info("metrics.serving", port=port, addr=settings.metrics_addr, directory=str(directory))
    return port


def enabled() -> bool:
    """True once :func:`prepare_metrics` serves this process's metrics."""
    return _directory is not None


def _process_dead(pid: int | None = None, **_kwargs: object) -> None:
    """A pool child ended: drop its live gauges (its counters still count)."""
    if pid and _directory is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, str(_directory))


class _Metrics:
    """The metric objects, created once per process after ``PROMETHEUS_MULTIPROC_DIR`` is set."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Histogram

        def counter(name: str) -> Counter:
            family = FAMILIES[name]
            return Counter(name.removesuffix("_total"), family.help, family.labels, registry=None)

        duration = FAMILIES["ingest_stage_duration_seconds"]
        self.stage_duration = Histogram(
            duration.name, duration.help, duration.labels, buckets=STAGE_BUCKETS, registry=None
        )
        self.outcomes = counter("ingest_outcomes_total")
        self.fetch_responses = counter("ingest_fetch_responses_total")
        self.records = counter("ingest_records_total")
        self.with_field = counter("ingest_records_with_field_total")
        self.duplicates = counter("ingest_duplicates_total")
        self.deliveries = counter("ingest_deliveries_total")
        self.intake = counter("ingest_intake_entries_total")
        delay = FAMILIES["ingest_discovery_to_stored_seconds"]
        self.discovery_delay = Histogram(delay.name, delay.help, buckets=DISCOVERY_BUCKETS, registry=None)
        self.discovered = counter("ingest_discovered_urls_total")
        self.discovery_polls = counter("ingest_discovery_polls_total")
        self.discovery_errors = counter("ingest_discovery_errors_total")
        for field in FIELDS:  # every fill rate has a series from the start
            self.with_field.labels(field=field)
        for result in INTAKE_RESULTS:  # and so has every intake result (served at 0 until a bridge counts)
            self.intake.labels(result=result)


def _get() -> _Metrics | None:
    global _metrics
    if _directory is None:
        return None
    if _metrics is None:
        with _lock:
            if _metrics is None:
                _metrics = _Metrics()
    return _metrics


def _never_fails(record: Callable[P, None]) -> Callable[P, None]:
    """A recording function that returns at once when metrics are off and never raises."""

    @wraps(record)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> None:
        if _directory is None:
            return
        try:
            record(*args, **kwargs)
        except Exception as exc:
            log.warning("metrics.record_failed", metric=record.__name__, error=repr(exc))

    return guarded


def bounded(value: str, known: frozenset[str] | tuple[str, ...]) -> str:
    """``value`` if it is one of ``known``, else ``other``."""
    return value if value in known else OTHER


@cache
def _stages() -> frozenset[str]:
    from worker.pipeline import STAGES

    return frozenset((*STAGES, "deliver"))


_REASON_LABELS = frozenset(("", *REASONS, *EXTRA_REASONS))


def status_class(status: int) -> str:
    """``404`` -> ``4xx``; anything outside 100-599 is ``other``."""
    return f"{status // 100}xx" if 100 <= status <= 599 else OTHER


@_never_fails
def observe_stage(stage: str, seconds: float) -> None:
    """One attempt of ``stage`` took ``seconds``."""
    metrics = _get()
    if metrics is not None:
        metrics.stage_duration.labels(stage=bounded(stage, _stages())).observe(max(seconds, 0.0))


@_never_fails
def count_outcome(stage: str, outcome: str, reason: str = "") -> None:
    """A URL ended (or went round again) at ``stage`` as ``outcome``, for ``reason``."""
    metrics = _get()
    if metrics is not None:
        metrics.outcomes.labels(
            stage=bounded(stage, _stages()),
            outcome=bounded(outcome, OUTCOMES),
            reason=bounded(reason, _REASON_LABELS),
        ).inc()


@_never_fails
def count_fetch_response(status: int, host: str | None = None) -> None:
    """A page request got an HTTP answer. ``host`` is not a label: hosts are unbounded."""
    metrics = _get()
    if metrics is not None:
        metrics.fetch_responses.labels(status_class=status_class(status)).inc()


@_never_fails
def count_record(record: ArticleRecord) -> None:
    """A record was made final: counted with its filled fields, and as a duplicate if it is one."""
    metrics = _get()
    if metrics is None:
        return
    metrics.records.inc()
    for field, read in FIELDS.items():
        if read(record):
            metrics.with_field.labels(field=field).inc()
    if record.duplicate_of:
        metrics.duplicates.inc()


@_never_fails
def count_delivery(store: str, result: str, entries: int = 1) -> None:
    """``entries`` outbox entries of ``store`` were ``stored``, ``failed`` or ``retried``."""
    metrics = _get()
    if metrics is not None and entries > 0:
        from config.stores import STORE_NAMES

        labels = {"store": bounded(store, STORE_NAMES), "result": bounded(result, DELIVERY_RESULTS)}
        metrics.deliveries.labels(**labels).inc(entries)


@_never_fails
def count_intake(result: str, entries: int = 1) -> None:
    """``entries`` intake stream entries ended as ``result`` at the bridge (no source label:
    any program may write any source name to the stream, so it is not bounded)."""
    metrics = _get()
    if metrics is not None and entries > 0:
        metrics.intake.labels(result=bounded(result, INTAKE_RESULTS)).inc(entries)


# --- discovery (ingest watch) -----------------------------------------------------------------
_sources: frozenset[str] = frozenset()


def known_sources(names: Iterable[str]) -> None:
    """The source names of the watcher's file: the only values the ``source`` label takes."""
    global _sources
    _sources = frozenset(names)


@cache
def _discovery_reasons() -> frozenset[str]:
    from tasks.discovery import DISCOVERY_REASONS

    return frozenset(DISCOVERY_REASONS)


@_never_fails
def count_discovery_poll(source: str, new_urls: int) -> None:
    """A poll of ``source`` ended, having sent ``new_urls`` URLs to the intake stream (0 too:
    the series exists from the first poll)."""
    metrics = _get()
    if metrics is not None:
        label = bounded(source, _sources)
        metrics.discovery_polls.labels(source=label).inc()
        metrics.discovered.labels(source=label).inc(max(new_urls, 0))


@_never_fails
def count_discovery_error(source: str, reason: str) -> None:
    """A feed or sitemap of ``source`` could not be read (or only in part), for ``reason``."""
    metrics = _get()
    if metrics is not None:
        metrics.discovery_errors.labels(
            source=bounded(source, _sources), reason=bounded(reason, _discovery_reasons())
        ).inc()


@_never_fails
def observe_discovery_delay(seconds: float) -> None:
    """A record whose URL came from discovery was stored ``seconds`` after its discovered_at."""
    metrics = _get()
    if metrics is not None:
        metrics.discovery_delay.observe(max(seconds, 0.0))
