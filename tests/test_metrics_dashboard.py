"""The Grafana dashboard and the Prometheus example only query metrics worker/metrics.py defines,
and the metrics module itself is safe: bounded labels, no-ops while off, a scrape that answers
when Redis and the broker do not. (tests/test_metrics.py checks the same queries against what
live worker processes serve.)"""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from prometheus_client import generate_latest

from config import Settings
from tasks.record import ArticleRecord
from tests.support.metrics import (
    DASHBOARD,
    PROMETHEUS_CONFIG,
    dashboard_expressions,
    dashboard_panels,
    free_port,
    metric_names,
)
from worker import metrics
from worker.app import create_app
from worker.metrics import FAMILIES, bounded, status_class
from worker.metrics_collectors import serving_registry


def _sample_names() -> set[str]:
    """Every sample name the module's families can produce."""
    names = set()
    for family in FAMILIES.values():
        names.add(family.name)
        if family.kind == "histogram":
            names |= {f"{family.name}_bucket", f"{family.name}_count", f"{family.name}_sum"}
    return names


def test_dashboard_is_a_grafana_dashboard_on_a_prometheus_variable() -> None:
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert 36 <= board["schemaVersion"] <= 41
    assert board["uid"] and board["title"]
    variables = {item["name"]: item for item in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    panels = list(dashboard_panels(board))
    assert len({panel["id"] for panel in panels}) == len(panels)
    for panel in panels:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"]), panel["title"]


def test_dashboard_queries_only_defined_metrics_and_uses_each() -> None:
    known = _sample_names()
    used: set[str] = set()
    for where, expression in dashboard_expressions().items():
        names = metric_names(expression)
        assert names, f"{where}: no ingest_* metric in {expression!r}"
        assert names <= known, f"{where}: {sorted(names - known)} not defined in worker/metrics.py"
        used |= names
    board = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            assert metric_names(variable["definition"]) <= known
    for family in FAMILIES.values():
        assert any(name.startswith(family.name) for name in used), f"{family.name} has no panel"


def test_dashboard_panels_cover_the_issue() -> None:
    expressions = " ".join(dashboard_expressions().values())
    assert "histogram_quantile(0.5," in expressions and "histogram_quantile(0.95," in expressions
    assert 'outcome="dead"' in expressions and "by (reason" in expressions
    assert "ingest_duplicates_total" in expressions and "ingest_records_with_field_total" in expressions


def test_prometheus_example_scrapes_the_workers_and_flower() -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["news-ingest"]["static_configs"][0]["targets"]
    flower = jobs["flower"]
    assert flower["static_configs"][0]["targets"] == ["flower:5555"]
    assert flower["metrics_path"] == "/metrics"
    assert flower["basic_auth"]["username"]
    assert config["global"]["scrape_timeout"]


def test_labels_are_bounded() -> None:
    assert bounded("http_error", metrics._REASON_LABELS) == "http_error"
    assert bounded("host_busy", metrics._REASON_LABELS) == "host_busy"
    assert bounded("x" * 300, metrics._REASON_LABELS) == "other"
    assert bounded("https://example.org/a", metrics.OUTCOMES) == "other"
    assert [status_class(code) for code in (200, 304, 404, 503, 99, 999)] == [
        "2xx",
        "3xx",
        "4xx",
        "5xx",
        "other",
        "other",
    ]


def test_recording_while_off_does_nothing_and_never_fails() -> None:
    assert not metrics.enabled()
    metrics.observe_stage("fetch", 0.1)
    metrics.count_outcome("fetch", "dead", "http_error")
    metrics.count_fetch_response(200, "example.org")
    metrics.count_record(ArticleRecord(id="0" * 32, url="https://example.org/"))
    metrics.count_delivery("jsonl", "stored", 3)
    assert metrics._metrics is None  # nothing was even created


def test_a_scrape_answers_when_redis_and_the_broker_do_not(tmp_path: Path) -> None:
    down = f"redis://127.0.0.1:{free_port()}/0"
    settings = Settings(redis_url=down, key_prefix="metrics-down", _env_file=None)  # type: ignore[call-arg]
    registry = serving_registry(settings, tmp_path, app=create_app(settings))
    text = generate_latest(registry).decode()
    assert 'ingest_scrape_errors_total{source="broker"} 1.0' in text
    assert 'ingest_scrape_errors_total{source="outbox"} 1.0' in text
    assert "ingest_queue_messages{" not in text and "ingest_delivery_lag_messages{" not in text
