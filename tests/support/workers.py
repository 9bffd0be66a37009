"""Real Celery worker processes for integration tests, started as a user starts them."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from config import Settings
from worker.processes import spawn_worker, stop_workers


def settings_env(settings: Settings) -> dict[str, str]:
    """The ``INGEST_*`` environment that reproduces ``settings`` in another process."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("INGEST_")}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, dict | list):
            text = json.dumps(value)
        else:
            text = str(value)
        env[f"INGEST_{name.upper()}"] = text
    env.setdefault("INGEST_LOG_JSON", "true")
    return env


@contextmanager
def running_workers(
    settings: Settings,
    log_dir: Path,
    queues: tuple[str, ...] = ("fetch", "cpu", "deliver"),
    concurrency: dict[str, int] | None = None,
    metrics_ports: dict[str, int] | None = None,
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Start one ``ingest worker`` process per queue (and ``ingest deliver`` for ``deliver``);
    stop them (warm, then kill) on exit. ``metrics_ports``: the ``INGEST_METRICS_PORT`` of each
    queue's process (each process serves its own)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    env = settings_env(settings)
    processes: list[subprocess.Popen[bytes]] = []
    logs = []
    try:
        for index, queue in enumerate(queues):
            log = (log_dir / f"worker-{index}-{queue}.log").open("wb")
            logs.append(log)
            port = (metrics_ports or {}).get(queue)
            queue_env = env if port is None else {**env, "INGEST_METRICS_PORT": str(port)}
            processes.append(spawn_worker(queue, queue_env, log, (concurrency or {}).get(queue)))
        yield processes
    finally:
        stop_workers(processes, grace=20)
        for log in logs:
            log.close()


def wait_for_batch(
    settings: Settings, batch: str, timeout: float = 120.0, delivered: bool = True
) -> dict[str, object]:
    """Poll the ledger until every URL of ``batch`` has an outcome and (``delivered``) every
    configured store has taken each of its records and dead letters; the final status."""
    from stores.ledger import Ledger
    from stores.redis_client import client_for

    ledger = Ledger(client_for(settings), settings.key_prefix, settings.batch_ttl)
    deadline = time.monotonic() + timeout
    while True:
        status = ledger.status(batch)
        finished = status is not None and status.done
        if status is not None and finished and (not delivered or status.delivered_to(settings.store_names)):
            return status.as_dict()
        if time.monotonic() > deadline:
            raise TimeoutError(f"batch {batch} not done after {timeout}s: {status and status.as_dict()}")
        time.sleep(0.2)
