"""Keep docker-compose.yml honest without a Docker engine: run what its services declare.

Each service's command runs here with the service's environment, host names rewritten to
the local test services, and must do its job: the two workers and the delivery process
ingest a batch together. Flower, as compose starts it, is tested in tests/test_flower.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from config import Settings
from tests.support.http_server import serve_pages
from tests.support.pages import load_pages
from tests.support.workers import settings_env, wait_for_batch
from worker import enqueue

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def _local_env(service: dict[str, object], settings: Settings) -> dict[str, str]:
    """The service's environment, pointed at the test Redis and output directory."""
    declared = dict(service.get("environment") or {})  # type: ignore[call-overload]
    env = settings_env(settings)
    for key in declared:
        if key == "INGEST_REDIS_URL":
            env[key] = settings.effective_redis_url
        elif key == "INGEST_OUTPUT_DIR":
            env[key] = str(settings.output_dir)
        elif key == "INGEST_POSTGRES_DSN":
            env.pop(key, None)  # the compose DSN names the compose host; PostgreSQL is tested elsewhere
        else:
            env[key] = str(declared[key])
    return env


def _command(service: dict[str, object]) -> list[str]:
    """The service's command, its program taken from this interpreter's environment."""
    command = service["command"]
    assert isinstance(command, list)
    program = Path(sys.executable).parent / str(command[0])
    assert program.exists(), f"{command[0]} is not installed beside {sys.executable}"
    return [str(program), *(str(part) for part in command[1:])]


def test_declared_environment_names_real_settings() -> None:
    fields = {f"INGEST_{name.upper()}" for name in Settings.model_fields}
    for name, service in SERVICES.items():
        for key in service.get("environment") or {}:
            if key.startswith("INGEST_"):
                assert key in fields, f"{name} sets unknown setting {key}"


def test_compose_redis_keeps_its_data_across_a_restart() -> None:
    # Without AOF a restart forgets the queues, the unacknowledged messages and the ledger.
    redis_service = SERVICES["redis"]
    command = [str(part) for part in redis_service["command"]]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert any(str(volume).endswith(":/data") for volume in redis_service["volumes"])


def test_dockerfile_copies_what_exists() -> None:
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if line.startswith("COPY "):
            for source in line.split()[1:-1]:
                assert (ROOT / source).exists(), f"Dockerfile copies missing {source}"


@pytest.mark.integration
def test_compose_workers_ingest_a_batch_together(settings: Settings, tmp_path: Path) -> None:
    settings = settings.model_copy(update={"max_retries": 0})
    pages = load_pages()[:2]
    processes = []
    logs = []
    try:
        for name in ("fetch-worker", "cpu-worker", "deliver"):
            service = SERVICES[name]
            env = _local_env(service, settings)
            env["INGEST_FETCH_ALLOW_PRIVATE"] = "true"  # the test pages are on loopback
            log = (tmp_path / f"{name}.log").open("wb")
            logs.append(log)
            processes.append(
                subprocess.Popen(_command(service), env=env, stdout=log, stderr=log, start_new_session=True)
            )
        with serve_pages(pages) as server:
            result = enqueue([server.url(page.id) for page in pages], settings=settings)
            status = wait_for_batch(settings, result.batch, timeout=120)
        assert status["outcomes"]["published"] == 2  # type: ignore[index]
        assert len((settings.output_dir / "articles.jsonl").read_text().splitlines()) == 2
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)
        for log in logs:
            log.close()
