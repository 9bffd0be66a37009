"""``ingest run`` and ``ingest demo``: the whole job on one machine.

Start Redis (embedded unless ``INGEST_REDIS_URL`` is set), a fetch worker, a CPU worker and a
delivery process; enqueue; show progress, saying what it waits for (workers starting, the
CPU worker loading a language model, the URLs themselves), until every URL has its outcome
and every store has its records; print the summary, save it as ``summary.json`` and exit
with :mod:`worker.report`'s codes. Ctrl-C prints the summary so far and how to resume, stops
the workers and exits 130. Registered on :data:`worker.cli.cli`.

The CPU worker loads a spaCy pipeline on the first article in its language
(``INGEST_PRELOAD_MODELS=none``) unless ``INGEST_PRELOAD_MODELS`` is set: a run need not wait
for pipelines of languages it never sees, and its first articles start at once.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import redis
import typer

from config import Settings, get_settings
from worker.cli import _check_redis, _enqueue_summary, _ledger, _read_urls, cli, err
from worker.cpu_quota import available_cpus
from worker.processes import spawn_worker, stop_workers
from worker.report import (
    EXIT_CODES_HELP,
    EXIT_DEAD_LETTERS,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    batch_table,
    errors_table,
    last_errors,
    outcome_code,
    why_dead,
    write_summary,
)
from worker.watch import wait_for_batch

if TYPE_CHECKING:
    from stores.jsonl import JsonlStore
    from worker.intake import IntakeUrl

OUT_HELP = "Directory for articles.jsonl, dead-letters.jsonl, workers.log and summary.json."
#: Seconds the workers get to finish their running tasks after a Ctrl-C (30 at a normal end).
INTERRUPT_GRACE = 10.0


@dataclass(frozen=True)
class RunPlan:
    """How to run one job, and how to say it again."""

    out: Path
    cpu_workers: int | None = None
    fetch_concurrency: int | None = None
    timeout: float | None = None
    worker_env: dict[str, str] = field(default_factory=dict)
    again: str = ""
    """The command that runs the same job again (the resume hint after a Ctrl-C)."""
    again_note: str = ""
    """What running it again does that the reader would not guess, if anything."""


@cli.command(epilog=EXIT_CODES_HELP)
def run(
    urls_file: Annotated[str, typer.Argument(help="File with one URL per line, or - for stdin.")],
    out: Annotated[Path, typer.Option(help=OUT_HELP)] = Path("ingest-output"),
    cpu_workers: Annotated[
        int | None,
        typer.Option(help="CPU worker processes (default: INGEST_CPU_CONCURRENCY, else one per core)."),
    ] = None,
    fetch_concurrency: Annotated[
        int | None,
        typer.Option(help="Requests in flight in the fetch worker (default: INGEST_FETCH_CONCURRENCY)."),
    ] = None,
    timeout: Annotated[float | None, typer.Option(help="Give up (exit 1) after this many seconds.")] = None,
) -> None:
    """Ingest every URL of URLS_FILE with local workers; wait until each is accounted for and stored.

    Appends to the files of --out, never empties them, and saves the batch's summary.json there.

    `ingest status BATCH` reads that summary once the run's Redis is gone (an embedded one is).

    Ctrl-C prints the summary so far and how to resume, stops the workers and exits 130.
    """
    again = f"ingest run {shlex.quote(urls_file)} --out {shlex.quote(str(out))}"
    if urls_file == "-":
        again = f"the same URLs on stdin again: ... | {again}"
    plan = RunPlan(out, cpu_workers, fetch_concurrency, timeout, again=again)
    _run_job(_read_urls(urls_file), plan)


@cli.command(epilog=EXIT_CODES_HELP)
def demo(
    out: Annotated[Path, typer.Option(help=OUT_HELP)] = Path("ingest-output"),
) -> None:
    """`ingest run` on the bundled sample pages, served from 127.0.0.1 (works offline).

    Writes articles.jsonl, dead-letters.jsonl, workers.log and summary.json in --out.
    """
    from worker.demo import serve_examples

    with serve_examples() as urls:
        err.print(f"[dim]serving {len(urls)} sample pages on 127.0.0.1 (loopback fetches allowed)[/dim]")
        plan = RunPlan(
            out,
            timeout=600,
            worker_env={"INGEST_FETCH_ALLOW_PRIVATE": "true"},
            again=f"ingest demo --out {shlex.quote(str(out))}",
            again_note="The sample pages get a new port each time: every page is fetched and written "
            "again, under its new URL.",
        )
        _run_job(urls, plan)


def preload_default(settings: Settings) -> dict[str, str]:
    """``INGEST_PRELOAD_MODELS=none`` for the run's workers, unless it is set (environment, .env).

    The CPU worker then takes the first article at once and loads a language's pipeline on its
    first article in that language (the progress line says so), instead of every pipeline
    first: a run on a few URLs need not wait for pipelines of languages it never sees.
    """
    return {} if "preload_models" in settings.model_fields_set else {"INGEST_PRELOAD_MODELS": "none"}


def _run_job(urls: Sequence[str | IntakeUrl], plan: RunPlan) -> None:
    """Start Redis (embedded unless configured) and workers, enqueue, wait, summarise; exit with
    the code of :mod:`worker.report`."""
    if not urls:
        err.print("[yellow]no URLs to ingest[/yellow]")
        raise typer.Exit(0)
    plan.out.mkdir(parents=True, exist_ok=True)
    from stores.jsonl import JsonlStore

    store = JsonlStore(plan.out)
    for path in (store.articles_path, store.dead_letters_path):
        path.touch()  # both files exist after a run, even when one stays empty; never emptied
    try:
        code = _supervise(urls, plan, store)
    except KeyboardInterrupt:  # while starting up, or a second Ctrl-C while the workers stop
        err.print("[yellow]interrupted[/yellow]")
        code = EXIT_INTERRUPTED
    raise typer.Exit(code)


def _supervise(urls: Sequence[str | IntakeUrl], plan: RunPlan, store: JsonlStore) -> int:
    """The job between its start and its summary; the exit code. Leaving stops the workers
    (then the embedded Redis)."""
    from worker.producer import enqueue, new_batch_id

    base = get_settings()
    with ExitStack() as stack:
        redis_url = base.redis_url
        if redis_url is None:
            from worker.embedded import embedded_redis

            redis_url = stack.enter_context(embedded_redis())
            err.print("[dim]started an embedded Redis (set INGEST_REDIS_URL to use your own)[/dim]")
        settings = base.model_copy(update={"redis_url": redis_url, "output_dir": plan.out.resolve()})
        _check_redis(settings)
        env = {
            **os.environ,
            **plan.worker_env,
            "INGEST_REDIS_URL": redis_url,
            "INGEST_OUTPUT_DIR": str(plan.out.resolve()),
        }
        env.update(preload_default(base))
        log_path = plan.out / "workers.log"
        log_file = stack.enter_context(log_path.open("ab"))
        workers: list[subprocess.Popen[bytes]] = []
        grace = [30.0]  # shortened after a Ctrl-C
        stack.callback(lambda: stop_workers(workers, grace=grace[0]))  # registered before any starts
        fetch = plan.fetch_concurrency or settings.fetch_concurrency
        cpu = plan.cpu_workers or settings.cpu_concurrency or available_cpus()
        for offset, (role, concurrency) in enumerate((("fetch", fetch), ("cpu", cpu), ("deliver", None))):
            # One /metrics port per process: INGEST_METRICS_PORT, +1 and +2.
            port = settings.metrics_port
            own = {"INGEST_METRICS_PORT": str(port + offset)} if port else {}
            workers.append(spawn_worker(role, {**env, **own}, log_file, concurrency))
        if settings.metrics_port:
            ports = range(settings.metrics_port, settings.metrics_port + 3)
            err.print(f"[dim]metrics: fetch, cpu and deliver on ports {', '.join(map(str, ports))}[/dim]")
        started = time.monotonic()
        batch = new_batch_id()  # known before enqueue returns: a Ctrl-C inside it still has a batch
        failure: str | None = None
        interrupted = False
        try:
            result = enqueue(urls, settings=settings, batch=batch)
            err.print(f"batch [bold]{batch}[/bold]: {_enqueue_summary(result)}")
            failure = wait_for_batch(settings, batch, workers, plan.timeout, log_path, err)
        except KeyboardInterrupt:
            interrupted = True
            grace[0] = INTERRUPT_GRACE
        except redis.RedisError as exc:
            failure = f"lost Redis at {settings.effective_redis_url}: {exc}"
            err.print(f"[red]error:[/red] {failure}")
        elapsed = time.monotonic() - started
        code = _finish(settings, batch, plan, store, elapsed, failure, interrupted)
        if interrupted:
            err.print(f"[dim]stopping the workers (running tasks get {INTERRUPT_GRACE:.0f} s)[/dim]")
        return code


def _finish(
    settings: Settings,
    batch: str,
    plan: RunPlan,
    store: JsonlStore,
    elapsed: float,
    failure: str | None,
    interrupted: bool,
) -> int:
    """Print the batch's summary and save it as summary.json; the exit code."""
    from tasks.redact import redact_url

    ledger = _ledger(settings)
    stopped = EXIT_INTERRUPTED if interrupted else EXIT_FAILED
    try:
        status = ledger.status(batch)
        letters = ledger.dead_letters(batch) if status else []
    except redis.RedisError as exc:
        err.print(f"[red]error:[/red] cannot read batch {batch} from Redis: {exc}")
        return stopped
    if status is None:
        gone = "was enqueued: nothing was sent" if interrupted else "could be read: Redis lost it"
        err.print(f"[red]error:[/red] batch {batch} ended before it {gone}")
        return stopped
    row = status.as_dict(settings.store_names)
    code = stopped if interrupted or failure else outcome_code(row)
    embedded = get_settings().redis_url is None
    summary = {
        **row,
        "last_errors": last_errors(letters),
        "elapsed": round(elapsed, 3),
        "rate": round(row["accounted"] / elapsed, 2) if elapsed > 0 else None,
        "exit_code": code,
        "interrupted": interrupted,
        "failure": failure,
        "redis": "embedded" if embedded else redact_url(settings.effective_redis_url),
        "files": {
            "articles": str(store.articles_path),
            "dead_letters": str(store.dead_letters_path),
            "workers_log": str(plan.out / "workers.log"),
        },
        "saved_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    path = write_summary(plan.out, summary)
    _print_summary(summary, path)
    why = why_dead(row)
    if interrupted:
        _print_resume(plan, batch, row, embedded)
        return code
    if why:
        hint = f"ingest dead-letters {batch} --out {shlex.quote(str(plan.out))}"
        err.print(f"[yellow]{why}[/yellow] (`{hint}` lists them)")
    if failure:  # said when it happened; said again under the table that scrolled it away
        err.print(f"[red]failed:[/red] {failure}")
    elif code == EXIT_OK:
        err.print("[green]every URL accounted for and stored[/green]")
    return code


def _print_summary(summary: dict[str, Any], path: Path) -> None:
    table = batch_table(summary)
    elapsed, rate = summary["elapsed"], summary["rate"] or 0.0
    # Workers start while the batch is enqueued, so their start-up (models) is included.
    end = "stored" if summary["exit_code"] in (EXIT_OK, EXIT_DEAD_LETTERS) else "the end"
    table.add_row(f"seconds, enqueue to {end}", f"{elapsed:.1f} ({rate:.1f} URLs/s)")
    table.add_row("articles", summary["files"]["articles"])
    table.add_row("dead letters", summary["files"]["dead_letters"])
    table.add_row("workers' log", summary["files"]["workers_log"])
    table.add_row("summary", str(path))
    err.print(table)
    if summary["last_errors"]:
        err.print(errors_table(summary["last_errors"]))


def _print_resume(plan: RunPlan, batch: str, row: dict[str, Any], embedded: bool) -> None:
    """How to finish the job, saying truly what running it again does."""
    err.print(f"[yellow]interrupted[/yellow]: {row['accounted']} of {row['total']} URLs have their outcome.")
    err.print(f"To resume, run it again: [bold]{plan.again}[/bold]")
    if plan.again_note:
        note = plan.again_note
    elif embedded:
        note = (
            "The embedded Redis stops with this run, so every URL is fetched again; articles.jsonl "
            "keeps each article once (those stored already are not written twice) and dead-letters.jsonl "
            "gets the new run's dead letters too."
        )
    else:
        note = (
            "URLs this batch already published end as `seen` in the new one, not fetched again "
            f"(INGEST_SEEN_TTL); the messages of batch {batch} still queued stay in Redis, and the next "
            "workers take them (`ingest worker` and `ingest deliver` alone would finish it too)."
        )
    err.print(note)
