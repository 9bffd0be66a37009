"""Scraping a process's /metrics as Prometheus does, and reading the Grafana dashboard's queries."""

from __future__ import annotations

import json
import re
import socket
import time
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "news-ingest.json"
PROMETHEUS_CONFIG = ROOT / "deploy" / "prometheus.yml"

#: Words of PromQL that look like metric names but are not.
_PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"}
_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


@dataclass(frozen=True)
class Sample:
    """One line of a scrape: name, labels, value."""

    name: str
    labels: dict[str, str]
    value: float


def free_port() -> int:
    """A loopback port nobody listens on (bound once, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def scrape(port: int, timeout: float = 10.0) -> list[Sample]:
    """The samples ``http://127.0.0.1:<port>/metrics`` serves."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=timeout) as response:
        text = response.read().decode("utf-8")
    return [
        Sample(sample.name, dict(sample.labels), float(sample.value))
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def scrape_when_up(port: int, timeout: float = 60.0) -> list[Sample]:
    """:func:`scrape`, once the process (still starting) serves the port."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return scrape(port, timeout=5)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def total(samples: Iterable[Sample], name: str, **labels: str) -> float:
    """Sum of the samples named ``name`` whose labels include ``labels``."""
    return sum(
        s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def by_label(samples: Iterable[Sample], name: str, label: str, **labels: str) -> dict[str, float]:
    """``sum by (label)`` of the samples named ``name`` whose labels include ``labels``; zeros dropped."""
    sums: dict[str, float] = {}
    for s in samples:
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
            sums[s.labels.get(label, "")] = sums.get(s.labels.get(label, ""), 0.0) + s.value
    return {key: value for key, value in sums.items() if value}


def dashboard_panels(dashboard: dict[str, object] | None = None) -> Iterator[dict[str, object]]:
    """Every panel of the dashboard, those inside rows too."""
    board = dashboard if dashboard is not None else json.loads(DASHBOARD.read_text(encoding="utf-8"))
    stack = list(board.get("panels", []))  # type: ignore[call-overload]
    while stack:
        panel = stack.pop(0)
        yield panel
        stack.extend(panel.get("panels", []))


def dashboard_expressions() -> dict[str, str]:
    """Panel title and target refId -> PromQL expression, for every target of every panel."""
    found = {}
    for panel in dashboard_panels():
        for target in panel.get("targets", []):  # type: ignore[attr-defined]
            found[f"{panel['title']}/{target.get('refId')}"] = str(target["expr"])
    return found


def metric_names(expression: str) -> set[str]:
    """The metric names an expression reads (those of this project: ``ingest_*``)."""
    without_strings = re.sub(r'"[^"]*"', '""', expression)
    without_labels = re.sub(r"\{[^}]*\}", "", without_strings)
    without_ranges = re.sub(r"\[[^\]]*\]", "", without_labels)
    names = set(_IDENTIFIER.findall(without_ranges)) - _PROMQL_WORDS
    return {name for name in names if name.startswith("ingest_")}
