"""``ingest run`` and ``ingest demo``: the whole job on one machine.

Start Redis (embedded unless ``INGEST_REDIS_URL`` is set), a fetch worker, a CPU worker and a
delivery process; enqueue; show progress until every URL has its outcome and every store
has its records; print the summary. Registered on :data:`worker.cli.cli`.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from config import Settings, get_settings
from worker.cli import (
    _batch_table,
    _check_redis,
    _enqueue_summary,
    _ledger,
    _read_urls,
    cli,
    err,
)
from worker.processes import spawn_worker, stop_workers

if TYPE_CHECKING:
    from stores.jsonl import JsonlStore
    from worker.intake import IntakeUrl


@cli.command()
def run(
    urls_file: Annotated[str, typer.Argument(help="File with one URL per line, or - for stdin.")],
    out: Annotated[Path, typer.Option(help="Directory for articles.jsonl and dead-letters.jsonl.")] = Path(
        "ingest-output"
    ),
    cpu_workers: Annotated[
        int | None, typer.Option(help="CPU worker processes (default: one per core).")
    ] = None,
    fetch_concurrency: Annotated[int | None, typer.Option(help="Requests in flight.")] = None,
    timeout: Annotated[float | None, typer.Option(help="Give up after this many seconds.")] = None,
) -> None:
    """Ingest every URL of URLS_FILE with local workers and wait until each is accounted for."""
    _run_job(_read_urls(urls_file), out, cpu_workers, fetch_concurrency, timeout, {})


@cli.command()
def demo(
    out: Annotated[Path, typer.Option(help="Directory for articles.jsonl and dead-letters.jsonl.")] = Path(
        "ingest-output"
    ),
) -> None:
    """`ingest run` on the bundled sample pages, served from 127.0.0.1 (works offline)."""
    from worker.demo import serve_examples

    with serve_examples() as urls:
        err.print(f"[dim]serving {len(urls)} sample pages on 127.0.0.1 (loopback fetches allowed)[/dim]")
        _run_job(urls, out, None, None, 600, {"INGEST_FETCH_ALLOW_PRIVATE": "true"})


def _run_job(
    urls: Sequence[str | IntakeUrl],
    out: Path,
    cpu_workers: int | None,
    fetch_concurrency: int | None,
    timeout: float | None,
    worker_env: dict[str, str],
) -> None:
    """Start Redis (embedded unless configured) and workers, enqueue, wait, summarise."""
    if not urls:
        err.print("[yellow]no URLs to ingest[/yellow]")
        raise typer.Exit(0)
    base = get_settings()
    out.mkdir(parents=True, exist_ok=True)
    from stores.jsonl import JsonlStore

    store = JsonlStore(out)
    for path in (store.articles_path, store.dead_letters_path):
        path.touch()  # both files exist after a run, even when one stays empty; never emptied
    with ExitStack() as stack:
        redis_url = base.redis_url
        if redis_url is None:
            from worker.embedded import embedded_redis

            redis_url = stack.enter_context(embedded_redis())
            err.print("[dim]started an embedded Redis (set INGEST_REDIS_URL to use your own)[/dim]")
        settings = base.model_copy(update={"redis_url": redis_url, "output_dir": out.resolve()})
        _check_redis(settings)
        env = {
            **os.environ,
            **worker_env,
            "INGEST_REDIS_URL": redis_url,
            "INGEST_OUTPUT_DIR": str(out.resolve()),
        }
        log_path = out / "workers.log"
        log_file = stack.enter_context(log_path.open("ab"))
        workers = [
            spawn_worker("fetch", env, log_file, fetch_concurrency or settings.fetch_concurrency),
            spawn_worker(
                "cpu", env, log_file, cpu_workers or settings.cpu_concurrency or os.cpu_count() or 1
            ),
            spawn_worker("deliver", env, log_file),
        ]
        stack.callback(stop_workers, workers)
        from worker.producer import enqueue

        started = time.monotonic()
        result = enqueue(urls, settings=settings)
        err.print(f"batch [bold]{result.batch}[/bold]: {_enqueue_summary(result)}")
        status = _wait_for_batch(settings, result.batch, workers, timeout, log_path)
        elapsed = time.monotonic() - started
    _print_summary(status.as_dict(settings.store_names), store, elapsed)
    if not status.delivered_to(settings.store_names):
        raise typer.Exit(1)


def _wait_for_batch(
    settings: Settings,
    batch: str,
    workers: list[subprocess.Popen[bytes]],
    timeout: float | None,
    log_path: Path,
):
    from stores.ledger import OUTCOMES

    ledger = _ledger(settings)
    started = time.monotonic()
    columns = (
        TextColumn("[bold]ingesting"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, transient=False) as progress:
        status = ledger.status(batch)
        assert status is not None
        task = progress.add_task("ingest", total=status.total, detail="")
        while True:
            status = ledger.status(batch)
            assert status is not None
            outcomes = status.outcomes
            detail = " ".join(f"{name}={outcomes.get(name, 0)}" for name in OUTCOMES if outcomes.get(name))
            waiting = {name: status.undelivered(name) for name in settings.store_names}
            if status.done and any(waiting.values()):
                detail += " delivering: " + " ".join(f"{n}={c}" for n, c in waiting.items() if c)
            progress.update(task, completed=status.accounted, detail=detail)
            if status.delivered_to(settings.store_names):
                return status
            dead = [process for process in workers if process.poll() is not None]
            if dead:
                err.print(
                    f"[red]error:[/red] a worker process exited (code {dead[0].returncode}); see {log_path}"
                )
                return status
            if timeout is not None and time.monotonic() - started > timeout:
                err.print(
                    f"[red]error:[/red] timed out after {timeout:.0f}s"
                    f" with {status.total - status.accounted} URLs pending"
                )
                return status
            time.sleep(0.25)


def _print_summary(row: dict[str, Any], store: JsonlStore, elapsed: float) -> None:
    table = _batch_table(row)
    rate = row["total"] / elapsed if elapsed > 0 else 0.0
    # Workers start while the batch is enqueued, so their start-up (models) is included.
    table.add_row("seconds, enqueue to end", f"{elapsed:.1f} ({rate:.1f} URLs/s)")
    table.add_row("articles", str(store.articles_path))
    table.add_row("dead letters", str(store.dead_letters_path))
    err.print(table)
