"""The JSONL store: ``articles.jsonl`` and ``dead-letters.jsonl`` in one directory.

Several worker processes append to the same files, so each line is written with one
``write`` under an exclusive ``flock``: lines never interleave. The ledger's outcome claim
decides who writes, so a redelivered task never adds a second line.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from pydantic import BaseModel

ARTICLES_FILE = "articles.jsonl"
DEAD_LETTERS_FILE = "dead-letters.jsonl"


class JsonlStore:
    """Appends records and dead letters as JSON lines under ``directory``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @property
    def articles_path(self) -> Path:
        """The records file."""
        return self.directory / ARTICLES_FILE

    @property
    def dead_letters_path(self) -> Path:
        """The dead-letters file."""
        return self.directory / DEAD_LETTERS_FILE

    def write_article(self, record: BaseModel) -> None:
        """Append one article record."""
        self._append(self.articles_path, record.model_dump_json())

    def write_dead_letter(self, letter: BaseModel) -> None:
        """Append one dead letter."""
        self._append(self.dead_letters_path, letter.model_dump_json())

    def _append(self, path: Path, line: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = (line + "\n").encode("utf-8")
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, data)
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
