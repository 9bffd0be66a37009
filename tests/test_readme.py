"""The README's generated tables match the code, and its quick start names real commands."""

from __future__ import annotations

import re
from pathlib import Path

from worker.readme import README, render

ROOT = Path(__file__).resolve().parent.parent


def test_generated_tables_are_current() -> None:
    text = README.read_text(encoding="utf-8")
    assert render(text) == text, "run `python -m worker.readme` to refresh the README tables"


def test_ci_runs_the_readme_test_command() -> None:
    text = README.read_text(encoding="utf-8")
    quick_start = text.split("## Quick start", 1)[1].split("##", 1)[0]
    test_command = re.search(r"&& (\.venv/bin/pytest)\n", quick_start)
    assert test_command, "the quick start must end its test line with the test command"
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_command.group(1) in ci


def test_commands_table_lists_every_command() -> None:
    import typer.main

    from worker.cli import cli

    text = README.read_text(encoding="utf-8")
    table = text.split("## Commands", 1)[1].split("\n\n", 2)[1]
    listed = set(re.findall(r"^\| `ingest ([a-z-]+)", table, re.MULTILINE))
    registered = set(typer.main.get_group(cli).commands)
    assert listed == registered, {"undocumented": registered - listed, "gone": listed - registered}
