"""The ``ingest`` commands about stores: ``deliver``, ``retry-dead`` and ``replay``.

Registered on :data:`worker.cli.cli`; kept apart so each command module stays one screenful.
"""

from __future__ import annotations

import os
import socket
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from config import get_settings
from config.stores import STORE_NAMES
from worker.cli import _check_redis, cli, err


@cli.command()
def deliver(
    only: Annotated[
        str | None,
        typer.Option(
            help="Comma list: deliver to these of the configured stores only (e.g. the webhook in a "
            "process of its own); the others are left to other delivery processes."
        ),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            min=0, max=65535, help="Serve Prometheus /metrics on this port (INGEST_METRICS_PORT; 0: off)."
        ),
    ] = None,
) -> None:
    """Deliver finished records from the outbox to every configured store (INGEST_STORES)."""
    settings = get_settings()
    _check_redis(settings)
    from worker.metrics import prepare_metrics

    prepare_metrics(settings, metrics_port)  # before delivery imports the app: multiprocess values
    from worker.delivery import run_delivery
    from worker.logging import set_worker_name

    set_worker_name(f"deliver-{os.getpid()}@{socket.gethostname()}")

    chosen = [name.strip() for name in only.split(",") if name.strip()] if only else None
    if chosen is not None and (not chosen or set(chosen) - set(settings.store_names)):
        err.print(f"[red]error:[/red] --only {only!r}: choose among the configured {settings.store_names}")
        raise typer.Exit(2)
    import structlog

    # A log line, not a console message: in JSON mode the process writes JSON only.
    structlog.stdlib.get_logger("ingest.deliver").info(
        "deliver.started", stores=chosen or settings.store_names, stop="Ctrl-C or SIGTERM"
    )
    run_delivery(settings, only=chosen)


def _known_store(store: str | None) -> None:
    if store is not None and store not in STORE_NAMES:
        err.print(f"[red]error:[/red] unknown store {store!r}; choose from {', '.join(STORE_NAMES)}")
        raise typer.Exit(2)


@cli.command("retry-dead")
def retry_dead(
    batch: Annotated[str | None, typer.Option(help="Only this batch's dead letters.")] = None,
    reason: Annotated[str | None, typer.Option(help="Only dead letters with this reason code.")] = None,
    store: Annotated[
        str | None, typer.Option(help="Re-deliver the records this store could not take, to it.")
    ] = None,
) -> None:
    """Re-drive dead letters: failed URLs are enqueued again as a new batch; with --store, the
    records that store could not take are written to it again."""
    from worker.redrive import retry_pipeline_dead, retry_store_dead

    settings = get_settings()
    _check_redis(settings)
    _known_store(store)
    if store is None:
        result = retry_pipeline_dead(settings, batch, reason)
        if not result.found:
            err.print("no matching dead letters")
            return
        err.print(f"{result.redriven} URLs enqueued again as batch [bold]{result.batch}[/bold]")
        typer.echo(result.batch)
        return
    result = retry_store_dead(settings, store, batch, reason)
    err.print(f"{result.redriven} of {result.found} records written to {store}")
    if result.error:
        err.print(f"[red]error:[/red] {store} is still unavailable: {result.error}; the rest are kept")
        raise typer.Exit(1)


@cli.command()
def replay(
    store: Annotated[str, typer.Option(help="The store to re-deliver to.")],
    since: Annotated[
        str | None, typer.Option(help="From this long ago (2h, 30m, 1d), an ISO time or unix seconds.")
    ] = None,
) -> None:
    """Re-deliver what the outbox still holds to one store (e.g. a newly added index)."""
    from stores.base import StoreUnavailable
    from worker.redrive import replay as run_replay

    settings = get_settings()
    _check_redis(settings)
    _known_store(store)
    columns = (TextColumn(f"[bold]replaying to {store}"), BarColumn(), MofNCompleteColumn())
    try:
        with Progress(*columns, console=err) as progress:
            task = progress.add_task("replay", total=None)
            written = run_replay(settings, store, since, lambda n: progress.advance(task, n))
    except (StoreUnavailable, ValueError) as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    err.print(f"{written} entries written to {store}")
