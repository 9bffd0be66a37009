"""Prometheus metrics on real parts: real ``ingest worker`` and ``ingest deliver`` processes, each
serving its own port, a real Redis (and RabbitMQ for the queue depths), a loopback HTTP server.

What the workers count must agree with the ledger's accounting of the same batch, and every
metric the Grafana dashboard queries must be in what the processes actually serve.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from kombu import Connection, Exchange, Producer, Queue

from config import Settings
from stores.outbox import group_name
from tests.support.http_server import serve_pages
from tests.support.metrics import (
    Sample,
    by_label,
    dashboard_expressions,
    free_port,
    metric_names,
    scrape,
    scrape_when_up,
    total,
)
from tests.support.pages import load_pages
from tests.support.workers import running_workers, settings_env, wait_for_batch
from worker import enqueue
from worker.app import create_app
from worker.metrics import OUTCOMES, metrics_dir
from worker.metrics_collectors import delivery_lag, queue_depths
from worker.metrics_families import WATCHED
from worker.pipeline import STAGES

pytestmark = pytest.mark.integration

RABBITMQ = "amqp://guest:guest@127.0.0.1:5672//"
FINAL = ("published", "duplicate", "unchanged", "seen", "dead")


@pytest.fixture
def metrics_settings(settings: Settings) -> Settings:
    """Test settings with fast retries, the JSONL store only, a gevent fetch worker and metrics
    bound to loopback."""
    return settings.model_copy(
        update={
            "stores": "jsonl",
            "max_retries": 1,
            "retry_backoff_base": 0.1,
            "fetch_connect_timeout": 2.0,
            "metrics_addr": "127.0.0.1",
            "fetch_pool": "gevent",  # the server thread of a monkey-patched process is a greenlet
        }
    )


@pytest.fixture
def new_port() -> Iterator[Callable[[], int]]:
    """Free ports for metrics servers; their multiprocess directories are removed afterwards."""
    ports: list[int] = []

    def take() -> int:
        ports.append(free_port())
        return ports[-1]

    yield take
    for port in ports:
        shutil.rmtree(metrics_dir(port), ignore_errors=True)


def _scrape_all(ports: dict[str, int]) -> dict[str, list[Sample]]:
    return {queue: scrape(port) for queue, port in ports.items()}


def _wait_for(check: Callable[[], bool], timeout: float = 15.0) -> None:
    """Until ``check()`` holds: a counter is written just after the ledger's script returns."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return  # the assertions that follow say what differs
        time.sleep(0.3)


def test_worker_metrics_agree_with_the_ledger(
    metrics_settings: Settings, tmp_path: Path, new_port: Callable[[], int]
) -> None:
    settings = metrics_settings
    pages = load_pages()
    ports = {"fetch": new_port(), "cpu": new_port(), "deliver": new_port()}
    refused = f"http://127.0.0.1:{free_port()}/gone"  # nobody listens: connect_error, after a retry
    with serve_pages(pages) as server:
        urls = [server.url(page.id) for page in pages]
        urls += [
            server.url(pages[0].id) + "?edition=copy",  # a duplicate
            server.base_url + "/missing",  # 404: http_error at fetch
            server.base_url + "/empty",  # no_text at clean
            refused,
        ]
        with running_workers(
            settings, tmp_path / "logs", concurrency={"fetch": 8, "cpu": 2}, metrics_ports=ports
        ):
            result = enqueue(urls, settings=settings)
            assert result.total == len(urls)  # nothing dead-lettered at intake: every URL is a worker's
            # The gevent fetch worker answers while it fetches: its server thread is a greenlet.
            assert any(s.name == "ingest_records_total" for s in scrape_when_up(ports["fetch"]))
            status = wait_for_batch(settings, result.batch, timeout=180)
            outcomes = {name: count for name, count in status["outcomes"].items() if count}  # type: ignore[attr-defined]

            def counted() -> dict[str, float]:
                samples = [s for group in _scrape_all(ports).values() for s in group]
                return by_label(samples, "ingest_outcomes_total", "outcome")

            _wait_for(lambda: {k: v for k, v in counted().items() if k in FINAL} == outcomes)
            scrapes = _scrape_all(ports)
    every = [sample for samples in scrapes.values() for sample in samples]

    # Outcomes: the workers' counts are the ledger's, outcome by outcome and dead reason by reason.
    final = {k: v for k, v in by_label(every, "ingest_outcomes_total", "outcome").items() if k in FINAL}
    assert final == outcomes
    assert outcomes == {"published": len(pages), "duplicate": 1, "dead": 3}
    dead = by_label(every, "ingest_outcomes_total", "reason", outcome="dead")
    assert dead == status["dead_letter_reasons"] == {"http_error": 1, "no_text": 1, "connect_error": 1}
    retried = by_label(every, "ingest_outcomes_total", "stage", outcome="retried")
    assert retried == {stage: float(n) for stage, n in status["retries"].items() if n}  # type: ignore[attr-defined]
    assert total(every, "ingest_outcomes_total", outcome="retried", reason="connect_error") >= 1
    assert set(by_label(every, "ingest_outcomes_total", "outcome")) <= set(OUTCOMES)

    # Stage durations: at least one attempt observed per URL through each stage.
    through = status["stages"]
    assert isinstance(through, dict)
    for stage in STAGES:
        observed = total(every, "ingest_stage_duration_seconds_count", stage=stage)
        assert observed >= through.get(stage, 0) > 0, stage
    buckets = [s for s in every if s.name == "ingest_stage_duration_seconds_bucket"]
    assert {s.labels["le"] for s in buckets} >= {"0.001", "60.0", "+Inf"}

    # Fetch responses: the pages, the copy and /empty answered 2xx, /missing (and robots.txt) 4xx.
    classes = by_label(every, "ingest_fetch_responses_total", "status_class")
    assert classes["2xx"] >= len(pages) + 2
    assert classes["4xx"] >= 1
    assert set(classes) <= {"2xx", "3xx", "4xx", "5xx"}

    # Records: fill rates and duplicates.
    records = total(every, "ingest_records_total")
    assert records == len(pages) + 1
    assert total(every, "ingest_duplicates_total") == 1
    filled = by_label(every, "ingest_records_with_field_total", "field")
    assert filled["title"] == records
    assert 0 < filled["entities"] <= records

    # Scrape-time values, served by every process: both queues (empty now), nothing left to deliver.
    for queue, samples in scrapes.items():
        depths = {s.labels["queue"]: s.value for s in samples if s.name == "ingest_queue_messages"}
        assert depths == {settings.fetch_queue: 0, settings.cpu_queue: 0}, queue
        assert total(samples, "ingest_delivery_lag_messages", store="jsonl") == 0, queue
        assert total(samples, "ingest_delivery_lag_seconds", store="jsonl") == 0, queue
        assert any(s.name == "ingest_delivery_lag_messages" for s in samples), queue
        assert total(samples, "ingest_scrape_errors_total") == 0, queue
    stored = by_label(scrapes["deliver"], "ingest_deliveries_total", "result", store="jsonl")
    assert stored == {"stored": status["committed"]}  # JSONL takes the records and the dead letters

    # One directory per process (per port), each holding only its own processes' files.
    directories = {metrics_dir(port) for port in ports.values()}
    assert len(directories) == 3 and all(directory.is_dir() for directory in directories)

    # The Grafana dashboard queries only what the processes serve (discovery's counters are
    # served by `ingest watch`: tests/test_watcher.py checks those).
    served = {sample.name for sample in every} | {family.name for family in WATCHED}
    for where, expression in dashboard_expressions().items():
        missing = metric_names(expression) - served
        assert not missing, f"{where}: {sorted(missing)} not served"


def test_metrics_port_option_overrides_the_setting(
    metrics_settings: Settings, tmp_path: Path, new_port: Callable[[], int]
) -> None:
    setting, option = new_port(), new_port()
    env = {**settings_env(metrics_settings), "INGEST_METRICS_PORT": str(setting)}
    command = [sys.executable, "-m", "worker", "deliver", "--metrics-port", str(option)]
    with (tmp_path / "deliver.log").open("wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=log, start_new_session=True)
        try:
            samples = scrape_when_up(option)
            assert any(s.name == "ingest_records_total" for s in samples)
            with pytest.raises(OSError):
                scrape(setting, timeout=2)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)


def _publish(url: str, queue: str, priorities: list[int | None]) -> None:
    with Connection(url) as connection:
        target = Queue(queue, Exchange(queue), routing_key=queue, channel=connection.default_channel)
        target.declare()
        producer = Producer(connection.default_channel)
        for priority in priorities:
            extra = {} if priority is None else {"priority": priority}
            producer.publish({"n": 1}, exchange=target.exchange, routing_key=queue, **extra)


def test_queue_depths_on_redis_with_priority_sub_queues(metrics_settings: Settings) -> None:
    settings = metrics_settings
    app = create_app(settings)
    assert queue_depths(app, [settings.fetch_queue, settings.cpu_queue]) == {
        settings.fetch_queue: 0,
        settings.cpu_queue: 0,
    }
    # kombu's Redis transport keeps a list per priority step: all of them are counted.
    _publish(settings.effective_broker_url, settings.fetch_queue, [None, None, 9, 3])
    assert queue_depths(app, [settings.fetch_queue, settings.cpu_queue]) == {
        settings.fetch_queue: 4,
        settings.cpu_queue: 0,
    }


def test_queue_depths_on_rabbitmq(metrics_settings: Settings) -> None:
    try:
        with Connection(RABBITMQ, connect_timeout=2) as probe:
            probe.ensure_connection(max_retries=0)
    except Exception as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"RabbitMQ does not answer on {RABBITMQ}: {exc}")
        pytest.skip(f"SKIPPING: RabbitMQ does not answer on {RABBITMQ}: {exc}")
    settings = metrics_settings.model_copy(update={"broker_url": RABBITMQ})
    app = create_app(settings)
    try:
        # Never declared: RabbitMQ answers 404, which is an empty queue, and the next one still counts.
        _publish(RABBITMQ, settings.cpu_queue, [None, None])
        assert queue_depths(app, [settings.fetch_queue, settings.cpu_queue]) == {
            settings.fetch_queue: 0,
            settings.cpu_queue: 2,
        }
    finally:
        with Connection(RABBITMQ) as connection:
            for queue in (settings.fetch_queue, settings.cpu_queue):
                with contextlib.suppress(Exception):  # a queue never declared
                    connection.channel().queue_delete(queue)


def test_delivery_lag_counts_what_each_store_has_not_acknowledged(
    metrics_settings: Settings, redis_client: redis.Redis
) -> None:
    key = metrics_settings.key("outbox")
    stores = ["jsonl", "postgres"]
    assert delivery_lag(redis_client, key, stores) == {"jsonl": (0, 0.0), "postgres": (0, 0.0)}
    ids = [redis_client.xadd(key, {"kind": "record", "n": n}) for n in range(5)]
    redis_client.xgroup_create(key, group_name("jsonl"), id="0")
    # jsonl reads two (pending) and acknowledges one; postgres has no group yet: all five wait.
    redis_client.xreadgroup(group_name("jsonl"), "c", {key: ">"}, count=2)
    redis_client.xack(key, group_name("jsonl"), ids[0])
    time.sleep(0.05)
    lags = delivery_lag(redis_client, key, stores)
    assert lags["jsonl"][0] == 4 and lags["postgres"][0] == 5
    assert lags["jsonl"][1] >= 0.05 and lags["postgres"][1] >= lags["jsonl"][1]
    # An XDEL leaves XINFO without a lag: the entries are then counted on the server.
    redis_client.xdel(key, ids[4])
    assert delivery_lag(redis_client, key, stores)["jsonl"][0] == 3
    redis_client.xreadgroup(group_name("jsonl"), "c", {key: ">"})
    redis_client.xack(key, group_name("jsonl"), *ids)
    assert delivery_lag(redis_client, key, stores)["jsonl"] == (0, 0.0)
