"""Starting and stopping ``ingest worker`` processes: shared by ``ingest run`` and the tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from typing import IO


def spawn_worker(
    queue: str, env: Mapping[str, str], log_file: IO[bytes], concurrency: int | None = None
) -> subprocess.Popen[bytes]:
    """Start ``ingest worker --queues QUEUE`` (or ``ingest deliver`` for ``deliver``) in its own
    process group."""
    if queue == "deliver":
        command = [sys.executable, "-m", "worker", "deliver"]
        return subprocess.Popen(
            command, env=dict(env), stdout=log_file, stderr=log_file, start_new_session=True
        )
    command = [sys.executable, "-m", "worker", "worker", "--queues", queue]
    if concurrency is not None:
        command += ["--concurrency", str(concurrency)]
    return subprocess.Popen(command, env=dict(env), stdout=log_file, stderr=log_file, start_new_session=True)


def stop_workers(workers: list[subprocess.Popen[bytes]], grace: float = 30.0) -> None:
    """Warm shutdown (running tasks finish), then kill the process group of any still up."""
    for process in workers:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for process in workers:
        try:
            process.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
