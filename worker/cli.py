"""The ``ingest`` command line.

``ingest run`` is the whole job on one machine (embedded Redis unless ``INGEST_REDIS_URL``
is set); ``enqueue`` and ``worker`` are the pieces of a scaled deployment; ``extract`` runs
the CPU stages offline on local files; ``schema`` prints the record's JSON Schema. ``run`` and
``demo`` live in :mod:`worker.cli_run`, the store commands (``deliver``, ``retry-dead``,
``replay``) in :mod:`worker.cli_stores`, the commands that look at batches (``status``,
``dead-letters``, ``purge``) in :mod:`worker.cli_inspect`; all register on :data:`cli`.
The exit codes are :mod:`worker.report`'s.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from config import Settings, get_settings
from worker.cpu_quota import available_cpus
from worker.report import EXIT_CODES_HELP, EXIT_FAILED

if TYPE_CHECKING:
    from worker.intake import IntakeUrl
    from worker.producer import EnqueueResult

cli = typer.Typer(
    help="news-ingest: fetch, clean, enrich and deduplicate news articles.",
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
)
err = Console(stderr=True, soft_wrap=True)

QUEUE_CHOICES = ("fetch", "cpu")


def _open_urls(urls_file: str) -> IO[bytes]:
    """The URL file as bytes: :mod:`worker.intake` decodes it line by line."""
    if urls_file == "-":
        return sys.stdin.buffer
    path = Path(urls_file)
    if not path.is_file():
        err.print(f"[red]error:[/red] URL file {urls_file} does not exist")
        raise typer.Exit(2)
    return path.open("rb")


def _read_urls(urls_file: str) -> list[IntakeUrl]:
    """The checked URLs of the file; its bad lines and removed credentials reported first."""
    from rich.markup import escape

    from worker.intake import read_url_lines, report

    with _open_urls(urls_file) as handle:
        entries = read_url_lines(handle)
    for message in report(entries, "stdin" if urls_file == "-" else urls_file):
        err.print(f"[yellow]warning:[/yellow] {escape(message)}", highlight=False)
    return entries


def _ledger(settings: Settings):
    from stores.ledger import Ledger
    from stores.redis_client import client_for

    return Ledger(client_for(settings), settings.key_prefix, settings.batch_ttl)


def _check_redis(settings: Settings) -> None:
    import redis

    from stores.redis_client import client_for

    try:
        client_for(settings).ping()
    except redis.RedisError as exc:
        err.print(f"[red]error:[/red] cannot reach Redis at {settings.effective_redis_url}: {exc}")
        err.print("Set INGEST_REDIS_URL, or use `ingest run`, which starts an embedded Redis.")
        raise typer.Exit(EXIT_FAILED) from exc


def _enqueue_summary(result: EnqueueResult) -> str:
    """``12 URLs (3 already seen, not fetched; 1 repeat skipped)``."""
    notes = []
    if result.seen:
        notes.append(f"{result.seen} already seen, not fetched")
    if result.repeated:
        notes.append(f"{result.repeated} repeats skipped")
    if result.bad:
        notes.append(f"{result.bad} bad, dead-lettered as bad_url")
    return f"{result.total} URLs" + (f" ({'; '.join(notes)})" if notes else "")


@cli.command()
def enqueue(
    urls_file: Annotated[str, typer.Argument(help="File with one URL per line, or - for stdin.")],
) -> None:
    """Enqueue the URLs of URLS_FILE as one batch and print the batch id."""
    settings = get_settings()
    _check_redis(settings)
    entries = _read_urls(urls_file)
    from worker.producer import enqueue as send

    result = send(entries, settings=settings)
    err.print(_enqueue_summary(result))
    typer.echo(result.batch)


@cli.command()
def worker(
    queues: Annotated[str, typer.Option(help="Comma-separated: fetch, cpu.")] = "fetch,cpu",
    concurrency: Annotated[
        int | None,
        typer.Option(
            help="Tasks at once: greenlets (gevent) or threads for --queues fetch (default "
            "INGEST_FETCH_CONCURRENCY); processes (prefork) for any set with cpu (default "
            "INGEST_CPU_CONCURRENCY, else one per core)."
        ),
    ] = None,
    pool: Annotated[
        str | None,
        typer.Option(
            help="Celery pool: gevent, threads, prefork, solo. Default: INGEST_FETCH_POOL (gevent) for "
            "--queues fetch, prefork for any set with cpu."
        ),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            min=0, max=65535, help="Serve Prometheus /metrics on this port (INGEST_METRICS_PORT; 0: off)."
        ),
    ] = None,
) -> None:
    """Run a Celery worker: --queues fetch alone on an I/O pool (gevent), any set with cpu on prefork.

    A CPU worker loads the language models of INGEST_PRELOAD_MODELS (default all: tens of
    seconds) before it takes tasks; any other on the first article in its language.
    """
    settings = get_settings()
    chosen = [name.strip() for name in queues.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(QUEUE_CHOICES))
    if unknown or not chosen:
        err.print(
            f"[red]error:[/red] unknown queue(s) {unknown or queues!r};"
            f" choose from {', '.join(QUEUE_CHOICES)}"
        )
        raise typer.Exit(2)
    from worker.logging import set_worker_name

    # The pid alone is not unique: in containers every worker is pid 1, and with host networking
    # they share the host's name; Flower and Celery's control need one name per worker.
    node = f"{'-'.join(chosen)}-{os.getpid()}-{secrets.token_hex(3)}@{socket.gethostname()}"
    set_worker_name(node)  # the lines before Celery names the node (patching, warm-up) carry it too
    fetch_only = chosen == ["fetch"]
    pool = pool or (settings.fetch_pool if fetch_only else "prefork")
    if pool in ("gevent", "eventlet"):
        # Celery monkey-patches the standard library only when started as `celery`; patch
        # here, before the app, Redis or httpx open a socket (see bench/fetch.py for why).
        from celery import maybe_patch_concurrency

        maybe_patch_concurrency(["-P", pool])
    if concurrency is None:
        concurrency = (
            settings.fetch_concurrency if fetch_only else (settings.cpu_concurrency or available_cpus())
        )
    names = [settings.fetch_queue if name == "fetch" else settings.cpu_queue for name in chosen]
    from worker.metrics import prepare_metrics

    # After the patching (its server thread is then a greenlet), before the app, the stages and
    # the pool's fork: every metric is then created in multiprocess mode.
    prepare_metrics(settings, metrics_port)
    from worker.app import app

    if "cpu" in chosen and pool == "prefork":
        from worker.warmup import warm_up

        warm_up(settings)  # before the fork: loaded once, shared by the pool's children (preloaded ones)
    argv = [
        # No banner: in JSON mode the stream stays JSON (the settings are in `ingest settings`).
        "--quiet",
        "worker",
        "--queues",
        ",".join(names),
        "--pool",
        pool,
        "--concurrency",
        str(concurrency),
        "--hostname",
        node,
        "--loglevel",
        settings.log_level,
        "--without-mingle",
        "--without-gossip",
        "--task-events",
    ]
    if fetch_only and pool == "gevent":
        # gevent's consumer loop stops reading the queue while every slot is taken and looks
        # again only every 2 s; with a second message reserved per slot, a freed slot starts
        # its next fetch at once (the reserved message waits in the worker, unacked).
        argv += ["--prefetch-multiplier", "2"]
    app.worker_main(argv)


@cli.command()
def extract(
    files: Annotated[list[Path], typer.Argument(help="HTML files (.html or .html.gz).")],
    url: Annotated[
        str | None, typer.Option(help="URL of the page (default: the file's file:// URI).")
    ] = None,
    entities: Annotated[bool, typer.Option(help="Run the entities stage.")] = True,
) -> None:
    """Run language, clean and entities on local pages; print one JSON record per line."""
    from tasks.entities import build_registry
    from tasks.errors import IngestError
    from worker.offline import process_html, read_html_file

    settings = get_settings()
    # Offline: read-only, so no names are learned into (or read from) the deployment's Redis.
    registry = build_registry(settings, learn_names=False) if entities else None
    failures = 0
    for path in files:
        try:
            html = read_html_file(path)
        except OSError as exc:
            err.print(f"[red]error:[/red] cannot read {path}: {exc}")
            failures += 1
            continue
        page_url = url or path.resolve().as_uri()
        try:
            record = process_html(html, page_url, settings, registry)
        except IngestError as exc:
            err.print(f"[yellow]{path}: {exc.reason}: {exc}[/yellow]")
            failures += 1
            continue
        typer.echo(record.model_dump_json())
    if failures == len(files):
        raise typer.Exit(1)


@cli.command()
def schema() -> None:
    """Print the JSON Schema of the article record (and, under $defs, of the dead letter).

    The same document is committed as schema/record.schema.json; see schema/CHANGELOG.md."""
    from tasks.record import json_schema

    typer.echo(json.dumps(json_schema(), indent=2))


@cli.command("settings")
def show_settings(
    markdown: Annotated[bool, typer.Option(help="Print the documented settings table instead.")] = False,
) -> None:
    """Print the settings in force (from INGEST_* variables), or their documentation table."""
    if not markdown:
        typer.echo(get_settings().model_dump_json(indent=2))
        return
    typer.echo("| variable | default | meaning |\n| --- | --- | --- |")
    for name, field in Settings.model_fields.items():
        default = json.dumps(field.default, default=str) if field.default is not None else "unset"
        meaning = (field.description or "").replace("|", "\\|")
        typer.echo(f"| `INGEST_{name.upper()}` | `{default}` | {meaning} |")


# The commands of their own modules, registered on `cli`: run and demo; deliver, retry-dead, replay;
# status, dead-letters, purge; models install.
from worker import cli_discovery, cli_inspect, cli_intake, cli_models, cli_run, cli_stores  # noqa: E402, F401

__all__ = ["cli", "cli_inspect", "cli_run", "cli_stores", "main"]


def main() -> None:
    """Console-script entry point."""
    from pydantic import ValidationError

    from worker.logging import configure_logging

    try:
        settings = get_settings()
    except ValidationError as exc:
        for problem in exc.errors():
            where = ".".join(str(part) for part in problem["loc"])
            name = f"INGEST_{where.upper()}: " if where else ""
            err.print(f"[red]error:[/red] {name}{problem['msg'].removeprefix('Value error, ')}")
        raise SystemExit(2) from None
    configure_logging(settings)
    cli()
