"""``ingest intake``: the bridge from the Redis intake stream to the pipeline (:mod:`worker.intake_bridge`).

Registered on :data:`worker.cli.cli`.
"""

from __future__ import annotations

from typing import Annotated

import typer

from config import get_settings
from worker.cli import _check_redis, cli


@cli.command()
def intake(
    metrics_port: Annotated[
        int | None,
        typer.Option(
            min=0, max=65535, help="Serve Prometheus /metrics on this port (INGEST_METRICS_PORT; 0: off)."
        ),
    ] = None,
    consumer: Annotated[
        str | None,
        typer.Option(help="Consumer name in the stream's group `bridge` (default: host and pid)."),
    ] = None,
) -> None:
    """Enqueue what any program XADDs to the Redis stream <INGEST_KEY_PREFIX>:intake, in rolling batches.

    Entry fields: url (required), source, batch, discovered_at (ISO 8601) and labels (a JSON object).
    Each entry is acknowledged once its job is enqueued; run as many bridges as you like. SIGTERM
    or Ctrl-C stops it after the entries under way.
    """
    settings = get_settings()
    _check_redis(settings)
    from worker.metrics import prepare_metrics

    prepare_metrics(settings, metrics_port)  # before the Celery app is imported
    from worker.intake_bridge import run_bridge

    run_bridge(settings, consumer=consumer)
