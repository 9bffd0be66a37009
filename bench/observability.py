"""What Flower, the workers' /metrics and ``ingest status`` show during a mixed batch.

Not a test: it prints tables. The setup of issue 13: Flower started with the command of
docker-compose.yml (behind ``FLOWER_BASIC_AUTH``), one fetch worker, one CPU worker and one
delivery process, each serving ``/metrics`` on a port of its own, and 30 URLs from one
loopback server: 27 real news pages (``../shared/corpus/news``; the 7 test fixtures, served
several times under different paths, when the corpus is absent), a 404, a page with no
article text and a refused connection. Three must end as dead letters.

Halfway through and at the end it reads, through their HTTP APIs and the CLI:

* Flower's ``/api/tasks``: tasks per name and state (SUCCESS, FAILURE, RETRY, STARTED);
* the sum of every process's ``ingest_outcomes_total`` per outcome and reason, the stage
  latency (p50/p95 from the histogram's buckets), the queue gauges;
* ``ingest status BATCH --json``: URLs/s, p50/p95 per stage, queue depths, last errors.

    .venv/bin/python bench/observability.py

Needs the Redis of ``INGEST_REDIS_URL`` (default redis://127.0.0.1:6379/0); every key and
file is private to the run.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config import Settings  # noqa: E402
from tests.support.http_server import serve_in_thread  # noqa: E402
from tests.support.metrics import free_port, scrape, scrape_when_up  # noqa: E402
from tests.support.pages import load_pages  # noqa: E402
from tests.support.workers import running_workers, settings_env  # noqa: E402
from tests.test_flower import CREDENTIALS, _get, running_flower  # noqa: E402
from worker import enqueue  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus" / "news" / "html"


def corpus_pages(count: int) -> list[bytes]:
    """``count`` real pages: the corpus's, else the fixtures repeated."""
    if CORPUS.is_dir():
        return [gzip.decompress(path.read_bytes()) for path in sorted(CORPUS.glob("*.html.gz"))[:count]]
    fixtures = [page.html.encode() for page in load_pages()]
    return [fixtures[index % len(fixtures)] for index in range(count)]


class Pages(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, bodies: list[bytes]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.bodies = bodies


class _Handler(BaseHTTPRequestHandler):
    server: Pages

    def log_message(self, format: str, *args: object) -> None:
        return

    def do_GET(self) -> None:
        name = self.path.strip("/")
        if name.isdigit() and int(name) < len(self.server.bodies):
            status, body = 200, self.server.bodies[int(name)]
        elif name == "empty":
            status, body = 200, b"<html><body><nav>Home</nav></body></html>"
        else:
            status, body = 404, b"<html><body>not found</body></html>"
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def flower_states(port: int, batch: str) -> Counter[str]:
    status, body = _get(port, "/api/tasks?limit=5000")
    tasks = json.loads(body).values() if status == 200 else []
    return Counter(
        f"{task['name'].removeprefix('ingest.')} {task['state']}"
        for task in tasks
        if f"batch={batch!r}" in str(task.get("args"))
    )


def metric_outcomes(ports: list[int]) -> Counter[str]:
    totals: Counter[str] = Counter()
    for port in ports:
        for sample in scrape(port):
            if sample.name == "ingest_outcomes_total" and sample.value:
                labels = sample.labels
                reason = f" ({labels['reason']})" if labels.get("reason") else ""
                totals[f"{labels['stage']} {labels['outcome']}{reason}"] += int(sample.value)
    return totals


def gauges(ports: list[int], name: str, label: str) -> dict[str, float]:
    found: dict[str, float] = {}
    for port in ports:
        for sample in scrape(port):
            if sample.name == name:
                found[sample.labels[label]] = max(found.get(sample.labels[label], 0.0), sample.value)
    return found


def status_json(settings: Settings, batch: str) -> dict[str, object]:
    command = [sys.executable, "-m", "worker", "status", batch, "--json"]
    done = subprocess.run(command, env=settings_env(settings), capture_output=True, text=True, check=False)
    return json.loads(done.stdout) if done.stdout.strip() else {"error": done.stderr[-500:]}


def show(title: str, rows: dict[str, object]) -> None:
    print(f"\n{title}")
    width = max((len(key) for key in rows), default=10)
    for key, value in rows.items():
        print(f"  {key:<{width}}  {value}")


def snapshot(label: str, settings: Settings, batch: str, flower: int, ports: list[int]) -> None:
    print(f"\n===== {label} =====")
    # Read one after the other, as close together as they can be.
    status = status_json(settings, batch)
    states = flower_states(flower, batch)
    outcomes = metric_outcomes(ports)
    queues = gauges(ports, "ingest_queue_messages", "queue")
    lag = gauges(ports, "ingest_delivery_lag_messages", "store")
    show("Flower: tasks by stage and state", dict(sorted(states.items())))
    show("/metrics: ingest_outcomes_total (sum over the 3 processes)", dict(sorted(outcomes.items())))
    show("/metrics: ingest_queue_messages", queues)
    show("/metrics: ingest_delivery_lag_messages", lag)
    rows = {
        "outcomes": status.get("outcomes"),
        "URLs/s": status.get("urls_per_second"),
        "queues": status.get("queues"),
        "stage p50/p95 s": status.get("stage_seconds"),
        "last errors": [
            f"{e['reason']} at {e['stage']}: {e['url']}"  # type: ignore[index]
            for e in status.get("last_errors") or []  # type: ignore[union-attr]
        ],
    }
    show("ingest status --json", rows)


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="observability-"))
    settings = Settings(
        redis_url=os.environ.get("INGEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
        key_prefix=f"obs-{uuid.uuid4().hex[:8]}",
        output_dir=work / "out",
        fetch_allow_private=True,
        max_retries=1,
        retry_backoff_base=0.5,
        host_rate=5.0,
        _env_file=None,  # type: ignore[call-arg]
    )
    flower_port = free_port()
    ports = {"fetch": free_port(), "cpu": free_port(), "deliver": free_port()}
    refused = f"http://127.0.0.1:{free_port()}/refused"
    with serve_in_thread(Pages(corpus_pages(27))) as server, running_flower(
        settings, flower_port, work / "flower.db", work / "flower.log"
    ):
        base = f"http://127.0.0.1:{server.server_address[1]}"
        urls = [f"{base}/{index}" for index in range(27)] + [f"{base}/missing", f"{base}/empty", refused]
        print(f"Flower on 127.0.0.1:{flower_port} (user {CREDENTIALS.split(':')[0]}); metrics ports {ports}")
        with running_workers(settings, work / "logs", metrics_ports=ports):
            for port in ports.values():
                scrape_when_up(port, timeout=120)
            started = time.monotonic()
            batch = enqueue(urls, settings=settings).batch
            print(f"batch {batch}: {len(urls)} URLs")
            halfway = False
            while True:
                status = status_json(settings, batch)
                accounted = int(status.get("accounted", 0))  # type: ignore[call-overload]
                if not halfway and accounted >= len(urls) // 2:
                    seconds = time.monotonic() - started
                    label = f"halfway ({accounted}/{len(urls)} accounted, {seconds:.0f} s)"
                    snapshot(label, settings, batch, flower_port, list(ports.values()))
                    halfway = True
                delivery = status.get("delivery") or {}
                if status.get("done") and all(not store["pending"] for store in delivery.values()):  # type: ignore[union-attr]
                    break
                time.sleep(1)
            time.sleep(3)  # Flower's events of the last tasks
            label = f"end ({time.monotonic() - started:.0f} s)"
            snapshot(label, settings, batch, flower_port, list(ports.values()))
    print(f"\nwork directory: {work}")


if __name__ == "__main__":
    main()
