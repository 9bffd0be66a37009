"""Starting and stopping ``ingest worker`` processes: shared by ``ingest run`` and the tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from contextlib import suppress
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
    """Warm shutdown (running tasks finish), then kill the process group of any still up.

    A Ctrl-C while waiting kills them all at once, then goes on: the workers run in sessions of
    their own, so nothing else would stop them once their parent is gone.
    """
    for process in workers:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    try:
        for process in workers:
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                _kill_group(process)
    except KeyboardInterrupt:
        for process in workers:
            _kill_group(process)
        raise


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """kill -9 the worker's process group (its pool too) and reap it."""
    if process.poll() is None:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    process.wait()
