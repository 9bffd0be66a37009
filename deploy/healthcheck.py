"""Container health checks, one per role: ``python /app/healthcheck.py ROLE [PORT]``.

ROLE is ``worker``, ``deliver``, ``intake``, ``watch`` or ``flower``.

Exit 0 when healthy, 1 when not (the reason on stderr). Each check asks the process itself,
never only its dependencies:

* ``worker``: a Celery worker of this container answers a remote-control ping through the
  broker. Its node name is ``<queues>-<pid>-<random>@<hostname>`` (``ingest worker``), so the reply of a
  node ending in ``@<this hostname>`` is this container's. A CPU worker answers only once it
  has loaded the language models of ``INGEST_PRELOAD_MODELS`` (default all; the others load
  on first use): give it a ``start_period``. With host networking every
  container shares the host's name, and any worker of the host counts.
* ``deliver``: Redis answers, and a delivery consumer of this host (consumer names are
  ``<hostname>-<pid>-<n>``) read from every store's consumer group of the outbox within the last
  ``max(120 s, 2 x INGEST_DELIVERY_BACKOFF_MAX)`` (a reader blocks for a few seconds at most
  between reads, or backs off while a store is down).
* ``intake``: Redis answers, and a bridge of this host (consumer names ``<hostname>-<pid>``)
  read the intake stream's group within the last 120 s (a bridge blocks a few seconds at most).
* ``watch``: Redis answers (the watcher keeps no consumer state to look at; compose restarts it
  if it exits, and its polls show in ``ingest_discovery_polls_total``).
* ``flower``: Flower's ``/healthcheck`` (no credentials needed) answers 200 on PORT (5555).
"""

from __future__ import annotations

import socket
import sys
import urllib.request
from typing import Any


def check_worker(app: Any = None) -> str | None:
    if app is None:
        from worker.app import app

    host = socket.gethostname()
    replies = app.control.ping(timeout=3.0) or []
    nodes = [node for reply in replies for node in reply]
    if not any(node.endswith(f"@{host}") for node in nodes):
        return f"no worker of {host} answered a ping (answered: {nodes})"
    return None


def check_deliver() -> str | None:
    from config import get_settings
    from stores.outbox import group_name
    from stores.redis_client import client_for

    settings = get_settings()
    client = client_for(settings)
    client.ping()
    key = f"{settings.key_prefix}:outbox"
    if not client.exists(key):
        return f"no outbox {key} yet: ingest deliver creates it when it starts"
    limit_ms = max(120.0, 2 * settings.delivery_backoff_max) * 1000
    for store in settings.store_names:
        idle = _idle_of_this_host(client, key, group_name(store))
        if not idle or min(idle) > limit_ms:
            return f"no consumer of this host read the {store} group lately (idle ms: {idle})"
    return None


def check_intake() -> str | None:
    from config import get_settings
    from stores.intake_stream import GROUP, intake_key
    from stores.redis_client import client_for

    settings = get_settings()
    client = client_for(settings)
    client.ping()
    key = intake_key(settings.key_prefix)
    if not client.exists(key):
        return f"no intake stream {key} yet: ingest intake creates it when it starts"
    idle = _idle_of_this_host(client, key, GROUP)
    if not idle or min(idle) > 120_000:
        return f"no bridge of this host read the intake stream lately (idle ms: {idle})"
    return None


def check_watch() -> str | None:
    from config import get_settings
    from stores.redis_client import client_for

    client_for(get_settings()).ping()
    return None


def _idle_of_this_host(client: Any, key: str, group: str) -> list[int]:
    """Milliseconds since each consumer of this host (names ``<hostname>-...``) last read ``group``."""
    mine = f"{socket.gethostname()}-"
    consumers = client.xinfo_consumers(key, group)
    return [int(c["idle"]) for c in consumers if _text(c["name"]).startswith(mine)]


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def check_flower(port: int) -> str | None:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthcheck", timeout=5) as response:
        if response.status != 200:
            return f"Flower answered {response.status}"
    return None


def main(argv: list[str]) -> int:
    role = argv[1] if len(argv) > 1 else "worker"
    checks = {
        "worker": check_worker,
        "deliver": check_deliver,
        "intake": check_intake,
        "watch": check_watch,
        "flower": lambda: check_flower(int(argv[2]) if len(argv) > 2 else 5555),
    }
    if role not in checks:
        print(f"unknown role {role!r}: choose from {', '.join(checks)}", file=sys.stderr)
        return 2
    try:
        problem = checks[role]()
    except Exception as exc:  # any failure to ask is unhealthy, with its reason
        problem = f"{type(exc).__name__}: {exc}"
    if problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
