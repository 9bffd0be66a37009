"""Watching one batch for ``ingest run``: the progress bar, and what the run is waiting for.

A run waits first for its workers to start, then for the CPU worker's warm-up (the language
detectors and the pipelines of ``INGEST_PRELOAD_MODELS``, before it takes any task:
:mod:`worker.warmup`), then for the URLs. Which of those it is comes from the workers
themselves (they answer Celery's ``active_queues`` once their consumer runs:
:func:`worker.probe.consumed_queues`) or from the ledger (a URL went through fetch, through
language), never from a clock, so a slow machine shows the same phases, only longer. A
pipeline loaded on first use (while ingesting) is shown too, from the board the registry
keeps (:mod:`stores.model_loads`): a line when it starts, and on the bar while it loads.
"""

from __future__ import annotations

import subprocess
import time
from contextlib import closing
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from config import Settings

#: The phases of a run, with the line printed when one begins.
PHASES = {
    "starting workers": "starting workers",
    "loading language models": "loading language models (the CPU worker loads INGEST_PRELOAD_MODELS "
    "before it takes tasks)",
    "ingesting": "ingesting",
}
#: The stage a URL passes only once that worker's consumer runs.
_FIRST_STAGE = {"fetch": "fetch", "cpu": "language"}


def phase(ready: set[str]) -> str:
    """The phase, given which workers (``fetch``, ``cpu``) consume their queue."""
    if {"fetch", "cpu"} <= ready:
        return "ingesting"
    return "loading language models" if "fetch" in ready else "starting workers"


def wait_for_batch(
    settings: Settings,
    batch: str,
    workers: list[subprocess.Popen[bytes]],
    timeout: float | None,
    log_path: Path,
    err: Console,
) -> str | None:
    """Show progress on ``err`` until the batch is done and in every store; what went wrong, or None."""
    from stores.ledger import OUTCOMES, Ledger
    from stores.model_loads import ModelLoadBoard
    from stores.redis_client import client_for
    from worker.probe import consumed_queues, control_app

    ledger = Ledger(client_for(settings), settings.key_prefix, settings.batch_ttl)
    loads = ModelLoadBoard(client_for(settings), settings.key_prefix)
    announced: set[str] = set()
    started = time.monotonic()
    columns = (
        TextColumn("[bold]{task.fields[phase]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
    )
    ready: set[str] = set()
    shown = ""
    control = control_app(settings)
    with closing(control), Progress(*columns, console=err, transient=False) as progress:
        status = ledger.status(batch)
        assert status is not None
        task = progress.add_task("ingest", total=status.total, detail="", phase="starting workers")
        while True:
            status = ledger.status(batch)
            assert status is not None
            if not {"fetch", "cpu"} <= ready:
                ready |= {name for name, stage in _FIRST_STAGE.items() if status.stages.get(stage)}
                ready |= consumed_queues(settings, control)  # waits up to 0.5 s for answers
            if phase(ready) != shown:
                shown = phase(ready)
                progress.console.print(f"[dim]{PHASES[shown]}[/dim]")
            outcomes = status.outcomes
            detail = " ".join(f"{name}={outcomes.get(name, 0)}" for name in OUTCOMES if outcomes.get(name))
            loading = loads.current()
            for language in sorted(set(loading) - announced):
                announced.add(language)
                progress.console.print(
                    f"[dim]loading the {language} language model for its first articles"
                    f" (INGEST_PRELOAD_MODELS={language} would load it at start-up)[/dim]"
                )
            if loading:
                models = ", ".join(
                    f"{language} {seconds:.0f}s" for language, seconds in sorted(loading.items())
                )
                detail = f"loading model: {models} {detail}".rstrip()
            waiting = {name: status.undelivered(name) for name in settings.store_names}
            if status.done and any(waiting.values()):
                detail += " delivering: " + " ".join(f"{n}={c}" for n, c in waiting.items() if c)
            progress.update(task, completed=status.accounted, detail=detail, phase=shown)
            if status.delivered_to(settings.store_names):
                return None
            dead = [process for process in workers if process.poll() is not None]
            if dead:
                failure = f"a worker process exited (code {dead[0].returncode}); see {log_path}"
                err.print(f"[red]error:[/red] {failure}")
                return failure
            if timeout is not None and time.monotonic() - started > timeout:
                pending = status.total - status.accounted
                failure = f"timed out after {timeout:.0f}s with {pending} URLs pending"
                err.print(f"[red]error:[/red] {failure}")
                return failure
            time.sleep(0.25)
