"""The ``ingest`` commands that look at batches: ``status``, ``dead-letters`` and ``purge``.

They read the ledger in Redis and, once it is gone (the embedded Redis of ``ingest run``
lives as long as the run), what the run left in its output directory: ``summary.json``
(:mod:`worker.report`) and the JSONL store's ``dead-letters.jsonl``. Registered on
:data:`worker.cli.cli`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlsplit

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from config import Settings, get_settings
from worker.cli import _check_redis, _ledger, cli, err
from worker.report import (
    EXIT_FAILED,
    EXIT_USAGE,
    SUMMARY_FILE,
    batch_table,
    errors_table,
    last_errors,
    outcome_code,
    read_summary,
    why_dead,
)

if TYPE_CHECKING:
    from tasks.record import DeadLetter

OutOption = Annotated[
    Path | None,
    typer.Option(
        "--out",
        help="Output directory of `ingest run` (default INGEST_OUTPUT_DIR), read when Redis does not "
        "have the batch.",
    ),
]


def _stdout() -> Console:
    """The console of the tables: a pipe or a file gets them whole, not cut to 80 columns."""
    console = Console()
    return console if console.is_terminal else Console(width=200)


def _redis_named(settings: Settings) -> str:
    """``Redis at <url>``, its password masked: error messages end up in logs and tickets."""
    from tasks.redact import redact_url

    return f"Redis at {redact_url(settings.effective_redis_url)}"


def _redis_error(settings: Settings) -> str | None:
    """Why Redis does not answer, or None when it does."""
    import redis

    from stores.redis_client import client_for

    try:
        client_for(settings).ping()
    except redis.RedisError as exc:
        return str(exc)
    return None


@cli.command(
    epilog="Exit codes: 0 the batch has no dead letters (so far); 3 it has some; 1 it is unknown, or "
    "Redis does not answer and no summary.json has it; 2 bad usage."
)
def status(
    batch: Annotated[str | None, typer.Argument(help="Batch id; omit to list recent batches.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    out: OutOption = None,
) -> None:
    """Counts, URLs/s, stage seconds (p50/p95), queue depths and last errors of a batch (or recent ones).

    A batch no longer in Redis (`ingest run` ended; its Redis was embedded) is read from its summary.json.
    """
    from worker.probe import queue_depths

    settings = get_settings()
    problem = _redis_error(settings)
    if batch is None:
        if problem:
            _unreachable(settings, problem, out or settings.output_dir)
        _list_batches(settings, as_json, queue_depths(settings))
        return
    row: dict[str, Any] | None = None
    queues: dict[str, int | None] | None = None
    if problem is None:
        ledger = _ledger(settings)
        found = ledger.status(batch)
        if found is not None:
            queues = queue_depths(settings)
            row = found.as_dict(settings.store_names)
            row |= {"last_errors": last_errors(ledger.dead_letters(batch)), "queues": queues}
    if row is None:
        row = _saved_row(settings, batch, out or settings.output_dir, problem)
    if as_json:
        typer.echo(json.dumps(row, indent=2))
    else:
        console = _stdout()
        console.print(batch_table(row, queues))
        if row.get("last_errors"):
            console.print(errors_table(row["last_errors"]))
        if why := why_dead(row):
            err.print(f"{why}; see `ingest dead-letters {batch}{f' --out {out}' if out else ''}`")
    raise typer.Exit(outcome_code(row))


def _saved_row(settings: Settings, batch: str, out: Path, problem: str | None) -> dict[str, Any]:
    """The batch as the summary.json in ``out`` has it; exit 1 when that is another batch's."""
    where = _redis_named(settings)
    saved = read_summary(out)
    if saved is None or saved["batch"] != batch:
        if problem:
            err.print(f"[red]error:[/red] cannot reach {where}: {escape(problem)}")
        else:
            err.print(f"[red]error:[/red] no batch {batch!r} in {where} (unknown or expired)")
        other = f" (it is batch {saved['batch']}'s)" if saved else ""
        err.print(f"No saved summary of it either: {out / SUMMARY_FILE}{other}; --out names another one.")
        raise typer.Exit(EXIT_FAILED)
    state = "does not answer" if problem else f"does not have {batch}"
    note = ", interrupted" if saved.get("interrupted") else ""
    err.print(
        f"[dim]{where} {state}: reading the summary `ingest run` saved in {out / SUMMARY_FILE}"
        f" (at {saved.get('saved_at', '?')}{note})[/dim]"
    )
    return saved


def _unreachable(settings: Settings, problem: str, out: Path) -> None:
    err.print(f"[red]error:[/red] cannot reach {_redis_named(settings)}: {escape(problem)}")
    saved = read_summary(out)
    if saved:
        command = f"ingest status {saved['batch']} --out {out}"
        err.print(f"The last `ingest run` saved {out / SUMMARY_FILE}: `{command}` reads it.")
    raise typer.Exit(EXIT_FAILED)


def _list_batches(settings: Settings, as_json: bool, queues: dict[str, int | None]) -> None:
    from stores.ledger import OUTCOMES

    ledger = _ledger(settings)
    found = [ledger.status(name) for name in ledger.recent_batches()]
    rows = [item.as_dict(settings.store_names) for item in found if item is not None]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table()
    # The id is what the other commands take: never cut short, however narrow the terminal.
    table.add_column("batch", no_wrap=True, min_width=max((len(row["batch"]) for row in rows), default=5))
    for header in ("URLs", "pending", *OUTCOMES, "not yet stored", "URLs/s"):
        table.add_column(header)
    for row in rows:
        outcomes = row["outcomes"]
        waiting = sum(counts["pending"] for counts in row["delivery"].values())
        rate = row["urls_per_second"]
        table.add_row(
            row["batch"],
            str(row["total"]),
            str(row["pending"]),
            *(str(outcomes[name]) for name in OUTCOMES),
            str(waiting),
            "-" if rate is None else f"{rate:.1f}",
        )
    _stdout().print(table)
    depths = ", ".join(f"{name} {'unknown' if n is None else n}" for name, n in queues.items())
    err.print(f"messages queued: {depths}")


@cli.command("dead-letters", epilog="Exit codes: 0 listed (none, too); 1 the batch is nowhere; 2 bad usage.")
def dead_letters(
    batch_argument: Annotated[
        str | None, typer.Argument(metavar="[BATCH]", help="Only this batch (the same as --batch).")
    ] = None,
    batch: Annotated[str | None, typer.Option(help="Only this batch.")] = None,
    reason: Annotated[str | None, typer.Option(help="Only this reason code (README: the reasons).")] = None,
    stage: Annotated[str | None, typer.Option(help="Only this stage: intake, fetch, ..., deliver.")] = None,
    host: Annotated[str | None, typer.Option(help="Only URLs of this host (or its subdomains).")] = None,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many, newest first.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
    out: OutOption = None,
) -> None:
    """List dead letters, newest first: of BATCH, or of the recent batches in Redis.

    Without Redis, or once the batch left it, they are read from dead-letters.jsonl in --out.

    That file also holds the records a store could not take (stage deliver).
    """
    from tasks.errors import REASONS
    from worker.pipeline import STAGES

    if batch_argument and batch and batch_argument != batch:
        err.print(f"[red]error:[/red] BATCH {batch_argument!r} and --batch {batch!r} differ")
        raise typer.Exit(EXIT_USAGE)
    batch = batch or batch_argument
    stages = ("intake", *STAGES, "deliver")
    for name, value, choices in (("--reason", reason, tuple(REASONS)), ("--stage", stage, stages)):
        if value is not None and value not in choices:
            err.print(f"[red]error:[/red] {name} {value!r}: choose from {', '.join(choices)}")
            raise typer.Exit(EXIT_USAGE)
    settings = get_settings()
    letters = _find_letters(settings, batch, out or settings.output_dir)
    wanted = [
        letter
        for letter in letters
        if (reason is None or letter.reason == reason)
        and (stage is None or letter.stage == stage)
        and (host is None or _on_host(letter.url, host))
    ]
    wanted.sort(key=lambda letter: letter.failed_at, reverse=True)
    shown = wanted[:limit]
    if as_json:
        for letter in shown:
            typer.echo(letter.model_dump_json())
    elif shown:
        several = len({letter.batch for letter in shown}) > 1
        _stdout().print(errors_table(last_errors(shown, len(shown)), "dead letters", batches=several))
    if not wanted:
        err.print("no matching dead letters")
    elif len(wanted) > len(shown):
        err.print(f"showing {len(shown)} of {len(wanted)} (newest first; --limit shows more)")


def _on_host(url: str, host: str) -> bool:
    try:
        name = (urlsplit(url).hostname or "").lower()
    except ValueError:
        return False
    wanted = host.lower().strip(".")
    return name == wanted or name.endswith("." + wanted)


def _find_letters(settings: Settings, batch: str | None, out: Path) -> list[DeadLetter]:
    """From the ledger when it has the batch (or, with no batch, recent batches); else the file."""
    problem = _redis_error(settings)
    where = _redis_named(settings)
    if problem is None:
        ledger = _ledger(settings)
        if batch is not None and ledger.status(batch) is not None:
            return ledger.dead_letters(batch)
        recent = [] if batch else ledger.recent_batches()
        if recent:
            return [letter for name in recent for letter in ledger.dead_letters(name)]
    from stores.jsonl import DEAD_LETTERS_FILE, read_dead_letters

    letters, files = read_dead_letters(out)
    if batch is not None:
        letters = [letter for letter in letters if letter.batch == batch]
        saved = read_summary(out)
        if not letters and not (saved and saved["batch"] == batch):
            state = f"cannot reach {where} ({problem})" if problem else f"no batch {batch!r} in {where}"
            err.print(f"[red]error:[/red] {escape(state)}, nor in {out / DEAD_LETTERS_FILE}")
            raise typer.Exit(EXIT_FAILED)
    state = "has no batches" if batch is None else f"does not have {batch}"
    state = "does not answer" if problem else state
    err.print(f"[dim]{where} {state}: reading {', '.join(map(str, files)) or out / DEAD_LETTERS_FILE}[/dim]")
    return letters


@cli.command(
    epilog="Exit codes: 0 deleted; 1 unknown batch, the answer was no, or Redis does not answer; "
    "2 no --yes and no terminal to ask on, or bad usage."
)
def purge(
    batch: Annotated[str, typer.Argument(help="The batch id.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete a batch's ledger: every <prefix>:batch:<id>* key, and its entry in <prefix>:batches.

    Counts, outcomes, dead letters and stage times go; the stores and the outbox keep everything.

    Asks first; --yes skips the question, and is required when stdin is not a terminal.
    """
    if not yes and not sys.stdin.isatty():
        err.print("[red]error:[/red] not purging without confirmation: stdin is not a terminal; add --yes")
        raise typer.Exit(EXIT_USAGE)
    settings = get_settings()
    _check_redis(settings)
    ledger = _ledger(settings)
    keys = ledger.batch_keys(batch)
    if not keys and not ledger.is_listed(batch):
        err.print(f"[red]error:[/red] no batch {batch!r} in {_redis_named(settings)}")
        raise typer.Exit(EXIT_FAILED)
    found = ledger.status(batch)
    pending = f", {found.total - found.accounted} of its {found.total} URLs still pending" if found else ""
    question = f"Delete the {len(keys)} ledger keys of batch {batch}{pending}? The stores keep their data"
    if not yes and not typer.confirm(question, default=False, err=True):
        err.print("nothing deleted")
        raise typer.Exit(EXIT_FAILED)
    deleted, listed = ledger.purge(batch)
    typer.echo(f"deleted {len(deleted)} keys of batch {batch}:")
    for key in deleted:
        typer.echo(f"  {key}")
    if listed:
        typer.echo(f"and its entry in {settings.key('batches')}")
    err.print("[dim]the stores (articles.jsonl, PostgreSQL, ...) and the outbox were not touched[/dim]")
