"""Flower, started as docker-compose.yml starts it, tells the truth about a mixed batch.

Real Flower, real workers (fetch, cpu, deliver), a loopback server: two articles, a page
with no article text (it dies in the clean stage), a 404 and a refused connection (retried
once, then dead). Everything is read through Flower's own HTTP API with the basic-auth
credentials compose requires.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from config import Settings
from tests.support.http_server import serve_pages
from tests.support.pages import load_pages
from tests.support.workers import running_workers, settings_env, wait_for_batch
from worker import enqueue

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
FLOWER = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["flower"]
CREDENTIALS = "watcher:s3cret-pass"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _get(port: int, path: str, credentials: str | None = CREDENTIALS) -> tuple[int, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if credentials:
        request.add_header("Authorization", "Basic " + base64.b64encode(credentials.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def flower_command(port: int, db: Path) -> list[str]:
    """The compose service's command, with this test's port, address and state file."""
    command = [str(part) for part in FLOWER["command"]]
    assert command[0] == "celery"
    assert "--persistent=True" in command, "compose must keep Flower's state across restarts"
    kept = [part for part in command[1:] if not part.startswith(("--port", "--db", "--address"))]
    program = str(Path(sys.executable).parent / "celery")
    return [program, *kept, f"--port={port}", "--address=127.0.0.1", f"--db={db}"]


def flower_env(settings: Settings) -> dict[str, str]:
    """The compose environment's Flower part, with the credentials a user would export."""
    declared = str(FLOWER["environment"]["FLOWER_BASIC_AUTH"])
    assert declared.startswith("${FLOWER_BASIC_AUTH:?"), "compose must refuse to start Flower without auth"
    return {**settings_env(settings), "FLOWER_BASIC_AUTH": CREDENTIALS}


@contextmanager
def running_flower(settings: Settings, port: int, db: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Flower up and answering its health check; stopped (state saved) on exit."""
    with log.open("ab") as output:
        process = subprocess.Popen(
            flower_command(port, db), env=flower_env(settings), stdout=output, stderr=output
        )
        try:
            _wait(lambda: _get(port, "/healthcheck", None)[0] == 200, 90, process)
            yield process
        finally:
            process.terminate()
            process.wait(timeout=30)


def _wait(predicate: Any, timeout: float, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if predicate():
                return
        except OSError:
            pass
        if process is not None and process.poll() is not None:
            raise AssertionError(f"Flower exited with {process.returncode}")
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {timeout}s")
        time.sleep(0.5)


def _tasks(port: int, batch: str) -> list[dict[str, Any]]:
    """This batch's tasks as Flower's API lists them (their arguments show the URLs and batch)."""
    status, body = _get(port, "/api/tasks?limit=1000")
    assert status == 200, body
    return [task for task in json.loads(body).values() if f"batch={batch!r}" in str(task.get("args"))]


def _our_workers(port: int, settings: Settings) -> dict[str, str]:
    """Worker name -> which of this test's queues it consumes (fetch or cpu), from Flower."""
    status, body = _get(port, "/api/workers?refresh=1")
    assert status == 200, body
    queues = {settings.fetch_queue: "fetch", settings.cpu_queue: "cpu"}
    found = {}
    for name, info in json.loads(body).items():
        for queue in info.get("active_queues") or []:
            if queue.get("name") in queues:
                found[name] = queues[queue["name"]]
    return found


def _url_of(task: dict[str, Any]) -> str:
    match = re.search(r"'(http://[^']+)'", str(task.get("args")))
    assert match, task
    return match.group(1)


def test_flower_shows_failure_retry_and_success_behind_basic_auth(settings: Settings, tmp_path: Path) -> None:
    settings = settings.model_copy(update={"max_retries": 1, "retry_backoff_base": 0.2, "host_rate": 4.0})
    port = _free_port()
    db = tmp_path / "flower.db"
    pages = load_pages()[:2]
    closed = f"http://127.0.0.1:{_free_port()}/refused"  # nothing listens there
    with serve_pages(pages) as server, running_flower(settings, port, db, tmp_path / "flower.log"):
        urls = [server.url(page.id) for page in pages]
        empty, missing = f"{server.base_url}/empty", f"{server.base_url}/missing"
        # Without credentials: refused, the dashboard and the API alike.
        assert _get(port, "/", None)[0] == 401
        assert _get(port, "/api/tasks", None)[0] == 401
        with running_workers(settings, tmp_path / "logs"):
            # Both workers listed, each with its queue (workers of other runs on this Redis
            # answer Flower's broadcast too: only ours consume this test's queues).
            _wait(lambda: set(_our_workers(port, settings).values()) == {"fetch", "cpu"}, 120)
            result = enqueue([*urls, empty, missing, closed], settings=settings)
            status = wait_for_batch(settings, result.batch, timeout=180)
            assert status["outcomes"] == {  # type: ignore[comparison-overlap]
                "published": 2,
                "duplicate": 0,
                "unchanged": 0,
                "seen": 0,
                "dead": 3,
            }

            def settled() -> bool:
                tasks = _tasks(port, result.batch)
                return (
                    bool(tasks)
                    and not [t for t in tasks if t["state"] in ("STARTED", "RECEIVED")]
                    and (
                        sum(t["state"] == "FAILURE" for t in tasks) >= 3
                        and sum(t["state"] == "SUCCESS" and t["name"] == "ingest.publish" for t in tasks) >= 2
                    )
                )

            try:
                _wait(settled, 60)
            finally:
                tasks = _tasks(port, result.batch)
                print("FLOWER |", sorted(Counter((t["name"], t["state"]) for t in tasks).items()))
        states: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for task in tasks:
            states.setdefault((task["name"], task["state"]), []).append(task)
        failed = {_url_of(task): task for task in tasks if task["state"] == "FAILURE"}
        assert set(failed) == {empty, missing, closed}, failed
        assert failed[missing]["name"] == "ingest.fetch" and "http_error" in failed[missing]["exception"]
        assert failed[closed]["name"] == "ingest.fetch" and "connect_error" in failed[closed]["exception"]
        assert failed[empty]["name"] == "ingest.clean"
        assert "no_text" in failed[empty]["exception"] or "not_article" in failed[empty]["exception"]
        # The refused connection was retried once: that attempt shows RETRY, not SUCCESS.
        again = states.get(("ingest.fetch", "RETRY"), [])
        retried = [task for task in again if "Deferred" not in task["exception"]]
        assert [_url_of(task) for task in retried] == [closed]
        assert "connect_error" in retried[0]["exception"]
        # One successful fetch per page fetched: deferrals (one host, host_rate 4/s) are RETRY
        # with the reason, never a successful fetch.
        fetched = sorted(_url_of(task) for task in states.get(("ingest.fetch", "SUCCESS"), []))
        assert fetched == sorted([*urls, empty])
        assert len(again) > len(retried), "five URLs on one host at 4/s: some must have been deferred"
        assert all("busy" in task["exception"] for task in again if task not in retried)
        assert len(states.get(("ingest.publish", "SUCCESS"), [])) == 2
        # The Broker page lists both queues.
        code, page = _get(port, "/broker")
        assert code == 200
        assert settings.fetch_queue.encode() in page and settings.cpu_queue.encode() in page
        # Its /metrics can be scraped (Prometheus's Flower job).
        code, metrics = _get(port, "/metrics")
        assert code == 200 and b"flower_events_total" in metrics
        before = {task["uuid"]: task["state"] for task in tasks}
    # Restarted on the same state file: the history is still there.
    with running_flower(settings, port, db, tmp_path / "flower.log"):
        _wait(lambda: len(_tasks(port, result.batch)) >= len(before), 60)
        after = {task["uuid"]: task["state"] for task in _tasks(port, result.batch)}
    assert {uuid: after.get(uuid) for uuid in before} == before
