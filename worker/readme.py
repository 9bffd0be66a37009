"""Regenerate the README's generated tables (settings, dead-letter reasons, exit codes) from the code.

``python -m worker.readme`` rewrites them in place; ``tests/test_readme.py`` fails when the
README and the code disagree, so the documentation cannot drift.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from config import Settings
from tasks.errors import REASONS

README = Path(__file__).resolve().parent.parent / "README.md"


def settings_table() -> str:
    """Every setting with its variable name, default and description."""
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        default = "unset" if field.default is None else f"`{json.dumps(field.default, default=str)}`"
        meaning = (field.description or "").replace("|", "\\|")
        rows.append(f"| `INGEST_{name.upper()}` | {default} | {meaning} |")
    return "\n".join(rows)


def reasons_table() -> str:
    """The closed list of dead-letter reasons."""
    rows = ["| reason | meaning |", "| --- | --- |"]
    rows += [f"| `{code}` | {meaning} |" for code, meaning in REASONS.items()]
    return "\n".join(rows)


def exit_codes_table() -> str:
    """The exit codes of ``ingest run`` and ``ingest demo``."""
    from worker.report import EXIT_CODES

    rows = ["| code | meaning |", "| --- | --- |"]
    rows += [f"| `{code}` | {meaning} |" for code, meaning in EXIT_CODES.items()]
    return "\n".join(rows)


def render(text: str) -> str:
    """``text`` with every generated section replaced by its current content."""
    for name, table in (
        ("settings", settings_table()),
        ("reasons", reasons_table()),
        ("exit-codes", exit_codes_table()),
    ):
        text = _replace_block(text, f"<!-- {name}:start -->\n", f"<!-- {name}:end -->", f"{table}\n")
    return text


def _replace_block(text: str, start: str, end: str, body: str) -> str:
    head, found, rest = text.partition(start)
    if not found:
        raise ValueError(f"README lacks the marker {start.strip()}")
    _old, found, tail = rest.partition(end)
    if not found:
        raise ValueError(f"README lacks the marker {end}")
    return f"{head}{start}{body}{end}{tail}"


def main() -> int:
    """Rewrite the README in place; exit 1 if it changed (useful in CI)."""
    current = README.read_text(encoding="utf-8")
    updated = render(current)
    if updated != current:
        README.write_text(updated, encoding="utf-8")
        print(f"updated {README}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
