"""In JSON mode a worker's output is one JSON stream: Celery's own lines included.

Real workers (fetch, cpu, deliver) run a small mixed batch and are shut down warm (Celery
then says "worker: Warm shutdown"); every line each process wrote must parse as JSON and
name its process (``pid``) and its worker; fetch lines carry status, bytes and ms.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from config import Settings
from tests.support.http_server import serve_pages
from tests.support.pages import load_pages
from tests.support.workers import running_workers, wait_for_batch
from worker import enqueue

pytestmark = pytest.mark.integration


def test_worker_output_is_json_only_with_pid_and_worker_name(settings: Settings, tmp_path: Path) -> None:
    settings = settings.model_copy(update={"max_retries": 0, "log_json": True})
    pages = load_pages()[:2]
    logs = tmp_path / "logs"
    with serve_pages(pages) as server, running_workers(settings, logs):
        urls = [server.url(page.id) for page in pages] + [f"{server.base_url}/missing"]
        batch = enqueue(urls, settings=settings).batch
        status = wait_for_batch(settings, batch, timeout=180)
    assert status["outcomes"]["dead"] == 1  # type: ignore[index]
    events: dict[str, list[dict[str, object]]] = {}
    for path in sorted(logs.glob("*.log")):
        lines = path.read_text().splitlines()
        assert lines, f"{path.name} is empty"
        for number, line in enumerate(lines, 1):
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                pytest.fail(f"{path.name}:{number} is not JSON: {line[:200]!r}")
            assert isinstance(entry.get("pid"), int), f"{path.name}:{number} has no pid: {line[:200]}"
            assert entry.get("worker"), f"{path.name}:{number} names no worker: {line[:200]}"
            events.setdefault(str(entry["event"]), []).append(entry)
    # Celery's shutdown message, normally written raw to the terminal, came through as JSON.
    assert any("Warm shutdown" in str(entry.get("message")) for entry in events["celery.say"])
    responses = events["fetch.response"]
    assert sorted(entry["status"] for entry in responses) == [200, 200, 404]  # type: ignore[type-var]
    for entry in responses:
        assert isinstance(entry["bytes"], int) and isinstance(entry["ms"], int | float)
        assert entry["url"] in urls and entry["batch"] == batch and entry["stage"] == "fetch"
    workers = {str(entry["worker"]).split("-")[0] for entries in events.values() for entry in entries}
    assert {"fetch", "cpu", "deliver"} <= workers
