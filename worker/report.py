"""How a batch is shown: its table, its last errors, the exit codes, and ``summary.json``.

Shared by ``ingest run``/``demo`` (the summary they print and save at the end) and ``ingest
status`` (live from the ledger, or from the saved summary once the ledger is gone: the
embedded Redis of ``ingest run`` lives only as long as the run).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table

if TYPE_CHECKING:
    from tasks.record import DeadLetter

#: Every URL ended stored (published, duplicate, unchanged or seen): no dead letters.
EXIT_OK = 0
#: The tool itself failed: Redis unreachable, a worker died, the timeout, an unknown batch.
EXIT_FAILED = 1
#: Bad usage: a missing file, a bad option (click's own code for its usage errors too).
EXIT_USAGE = 2
#: Some URLs ended as dead letters (or a store could not take some records); the summary says why.
EXIT_DEAD_LETTERS = 3
#: Interrupted (Ctrl-C): the shell's 128 + SIGINT.
EXIT_INTERRUPTED = 130
#: What each code means for ``ingest run`` and ``ingest demo`` (the README's table is generated from it).
EXIT_CODES = {
    EXIT_OK: "every URL ended stored (`published`, `duplicate`, `unchanged` or `seen`): no dead letters",
    EXIT_DEAD_LETTERS: "some URLs ended as dead letters (or a store gave up on some records); the summary "
    "counts them by reason, `ingest dead-letters BATCH` lists them",
    EXIT_USAGE: "bad usage: a missing URL file, an unknown option or a bad value (click's own code for "
    "its usage errors)",
    EXIT_FAILED: "the tool itself failed: Redis unreachable, a worker process died, `--timeout` passed",
    EXIT_INTERRUPTED: "interrupted (Ctrl-C): the summary so far and how to resume were printed and saved, "
    "the workers stopped",
}

EXIT_CODES_HELP = (
    "Exit codes: 0 every URL ended stored (no dead letters); 3 some URLs ended as dead letters, the "
    "summary counts them by reason; 2 bad usage; 1 the tool failed (Redis unreachable, a worker died, "
    "--timeout, an unknown batch); 130 interrupted (Ctrl-C). `ingest status BATCH`: 0 or 3 by the "
    "batch's dead letters so far."
)

SUMMARY_FILE = "summary.json"
#: Dead letters shown under "last errors".
LAST_ERRORS = 5
_ERROR_CHARS = 160


def duration(seconds: float | None) -> str:
    """``12 ms`` / ``1.84 s``: stage times span five orders of magnitude."""
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def batch_table(row: Mapping[str, Any], queues: Mapping[str, int | None] | None = None) -> Table:
    """One batch as a two-column table: URLs, outcomes, stages passed (with p50/p95 and
    retries), throughput, stores, and (``queues``) the broker's queue depths."""
    from worker.pipeline import STAGES

    table = Table(title=f"batch {row['batch']}", show_header=False, min_width=48)
    table.add_row("URLs", str(row["total"]))
    table.add_row("pending", str(row["pending"]))
    for name, count in row["outcomes"].items():
        table.add_row(name, str(count))
    for reason, count in sorted(row["dead_letter_reasons"].items()):
        table.add_row(f"  dead: {reason}", str(count))
    timings = row.get("stage_seconds", {})
    for stage in STAGES:
        retries = row["retries"].get(stage)
        note = f" ({retries} retries)" if retries else ""
        timing = timings.get(stage)
        if timing:
            note += f", p50 {duration(timing['p50'])}, p95 {duration(timing['p95'])}"
        table.add_row(f"through {stage}", f"{row['stages'].get(stage, 0)}{note}")
    if row.get("urls_per_second") is not None:
        since = "since enqueued" if row["done"] else "so far"
        table.add_row("URLs/s", f"{row['urls_per_second']:.1f} ({row['seconds']:.1f} s {since})")
    for store, counts in row.get("delivery", {}).items():
        failed = f", {counts['failed']} dead letters" if counts["failed"] else ""
        waiting = f", {counts['pending']} waiting" if counts["pending"] else ""
        table.add_row(f"stored in {store}", f"{counts['delivered']} of {row['committed']}{failed}{waiting}")
    for name, depth in (queues or {}).items():
        table.add_row(f"queued for {name}", "unknown" if depth is None else str(depth))
    return table


def last_errors(letters: Iterable[DeadLetter], count: int = LAST_ERRORS) -> list[dict[str, Any]]:
    """The ``count`` most recent dead letters, their error cut short, newest first."""
    newest = sorted(letters, key=lambda letter: letter.failed_at, reverse=True)[:count]
    return [
        {
            "failed_at": letter.failed_at.isoformat(),
            "batch": letter.batch,
            "stage": letter.stage,
            "reason": letter.reason,
            "url": letter.url,
            "error": cut(letter.error),
            **({"store": letter.store} if letter.store else {}),
        }
        for letter in newest
    ]


def cut(text: str, chars: int = _ERROR_CHARS) -> str:
    """``text`` on one line, at most ``chars`` long."""
    line = " ".join(text.split())
    return line if len(line) <= chars else line[: chars - 1] + "…"


def errors_table(errors: list[dict[str, Any]], title: str = "last errors", batches: bool = False) -> Table:
    """Dead letters (as :func:`last_errors` gives them) as a table: when, (batch,) stage, reason,
    URL, error."""
    table = Table("failed at", *(["batch"] if batches else []), "stage", "reason", title=title)
    table.add_column("url", overflow="fold")  # a URL cut short would not say which page failed
    table.add_column("error", overflow="fold")
    for error in errors:
        stage = f"{error['stage']} ({error['store']})" if error.get("store") else error["stage"]
        when = str(error["failed_at"])[:19].replace("T", " ")
        batch = [str(error.get("batch", ""))] if batches else []
        table.add_row(when, *batch, stage, error["reason"], error["url"], error["error"])
    return table


def dead_letter_count(row: Mapping[str, Any]) -> int:
    """URLs of the batch that ended as dead letters, plus records a store gave up on."""
    stores = sum(counts.get("failed", 0) for counts in row.get("delivery", {}).values())
    return int(row["outcomes"].get("dead", 0)) + stores


def outcome_code(row: Mapping[str, Any]) -> int:
    """:data:`EXIT_DEAD_LETTERS` when the batch has dead letters, else :data:`EXIT_OK`."""
    return EXIT_DEAD_LETTERS if dead_letter_count(row) else EXIT_OK


def why_dead(row: Mapping[str, Any]) -> str | None:
    """``2 URLs ended as dead letters: http_error 1, timeout 1``, and the stores' refusals; None if none."""
    parts = []
    dead = int(row["outcomes"].get("dead", 0))
    if dead:
        reasons = ", ".join(f"{reason} {n}" for reason, n in sorted(row["dead_letter_reasons"].items()))
        ended = "1 URL ended as a dead letter" if dead == 1 else f"{dead} URLs ended as dead letters"
        parts.append(f"{ended}: {reasons}")
    for store, counts in row.get("delivery", {}).items():
        if counts.get("failed"):
            parts.append(f"{counts['failed']} records could not be stored in {store}")
    return "; ".join(parts) or None


def write_summary(out: Path, summary: Mapping[str, Any]) -> Path:
    """Write ``<out>/summary.json`` whole or not at all (a temporary file renamed over it)."""
    path = out / SUMMARY_FILE
    temporary = out / f".{SUMMARY_FILE}.{os.getpid()}.tmp"
    temporary.write_text(json.dumps(summary, indent=2, default=str) + "\n", encoding="utf-8")
    os.replace(temporary, path)
    return path


def read_summary(out: Path) -> dict[str, Any] | None:
    """The summary ``ingest run`` saved in ``out``, or None when there is none (or it is unreadable)."""
    try:
        saved = json.loads((out / SUMMARY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return saved if isinstance(saved, dict) and "batch" in saved else None
