"""The JSONL store: ``articles.jsonl`` and ``dead-letters.jsonl`` in one directory.

Files are only ever appended to (optionally rotated by size or by the hour), never emptied.
Each batch of lines goes out in one ``write`` under an exclusive ``flock`` of a lock file
beside them, then ``fsync``, before its entries are acknowledged, so several delivery
processes can share the directory and lines never interleave.

A record id appears at most once per file, even under redelivery: under the lock the writer
first reads whatever other processes appended since it last looked (a file's ids are
indexed once per process, incrementally) and skips ids already there. A dead letter's key is
its batch, id and store. A crash mid-write can leave a half line at the end of the file: the
next writer cuts it off (its entry was never acknowledged and comes again).
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from stores.base import Delivery, WriteResult
from tasks.record import DeadLetter

ARTICLES_FILE = "articles.jsonl"
DEAD_LETTERS_FILE = "dead-letters.jsonl"
_ID_MARK = b'"id":"'


@dataclass
class _FileIndex:
    """The keys of one file as far as this process has read it."""

    inode: int = -1
    offset: int = 0
    keys: set[str] = field(default_factory=set)


def read_dead_letters(directory: Path) -> tuple[list[DeadLetter], list[Path]]:
    """Every dead letter in ``directory`` (its rotated files too), and the files read.

    For ``ingest dead-letters`` once Redis no longer has a batch. A line that does not parse (a
    half line a crash left, a line of a later schema) is skipped: the rest still tells.
    """
    from pydantic import ValidationError

    stem = DEAD_LETTERS_FILE.removesuffix(".jsonl")
    files = sorted(directory.glob(f"{stem}*.jsonl"))
    letters = []
    for path in files:
        with path.open("rb") as handle:
            for line in handle:
                try:
                    letters.append(DeadLetter.model_validate_json(line))
                except ValidationError:
                    continue
    return letters, files


def line_key(line: bytes, dead_letter: bool) -> str:
    """The dedup key of one line: the record id, or batch:id:store for a dead letter."""
    if not dead_letter:
        start = line.find(_ID_MARK)  # the first "id" of a record (schema_version comes first)
        if start >= 0:
            end = line.find(b'"', start + len(_ID_MARK))
            return line[start + len(_ID_MARK) : end].decode("utf-8", "replace")
    document = json.loads(line)
    if dead_letter:
        return f"{document.get('batch')}:{document.get('id') or document.get('url')}:{document.get('store')}"
    return str(document.get("id"))


class JsonlStore:
    """Appends records and dead letters as JSON lines under ``directory``."""

    name = "jsonl"
    takes_dead_letters = True

    def __init__(
        self, directory: Path, rotate_bytes: int = 0, rotate_hourly: bool = False, fsync: bool = True
    ) -> None:
        self.directory = directory
        self.rotate_bytes = rotate_bytes
        self.rotate_hourly = rotate_hourly
        self.fsync = fsync
        self._indexes: dict[str, _FileIndex] = {}

    @property
    def articles_path(self) -> Path:
        """The records file being written now."""
        return self._current(ARTICLES_FILE)

    @property
    def dead_letters_path(self) -> Path:
        """The dead-letters file being written now."""
        return self._current(DEAD_LETTERS_FILE)

    def _current(self, name: str) -> Path:
        if self.rotate_hourly:
            stem = name.removesuffix(".jsonl")
            return self.directory / f"{stem}-{time.strftime('%Y%m%dT%H', time.gmtime())}.jsonl"
        return self.directory / name

    def write(self, deliveries: Sequence[Delivery]) -> WriteResult:
        """Append the entries not yet in their file; all of them count as written."""
        records = [d for d in deliveries if d.kind == "record"]
        letters = [d for d in deliveries if d.kind == "dead_letter"]
        if records:
            self._append(self.articles_path, records, dead_letter=False)
        if letters:
            self._append(self.dead_letters_path, letters, dead_letter=True)
        return WriteResult.all_written(deliveries)

    def close(self) -> None:
        """Nothing stays open between writes."""

    def _append(self, path: Path, deliveries: Sequence[Delivery], *, dead_letter: bool) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        with self._locked(path):
            if self.rotate_bytes and path.exists() and path.stat().st_size >= self.rotate_bytes:
                stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"-{time.time_ns() % 10**9:09d}"
                path.rename(path.with_name(f"{path.name.removesuffix('.jsonl')}-{stamp}.jsonl"))
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                index = self._sync_index(path, fd, dead_letter)
                chunks = []
                for delivery in deliveries:
                    line = delivery.payload.encode("utf-8")
                    key = line_key(line, dead_letter)
                    if key in index.keys:
                        continue
                    index.keys.add(key)
                    chunks.append(line + b"\n")
                if chunks:
                    data = b"".join(chunks)
                    written = os.write(fd, data)
                    while written < len(data):  # a short write: finish it before unlocking
                        written += os.write(fd, data[written:])
                    if self.fsync:
                        os.fsync(fd)
                    index.offset += len(data)
            finally:
                os.close(fd)

    @contextmanager
    def _locked(self, path: Path) -> Iterator[None]:
        """An exclusive lock of the file's name (a lock file, so rotation keeps it)."""
        lock_fd = os.open(path.with_name(f".{path.name}.lock"), os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(lock_fd)  # closing releases the lock

    def _sync_index(self, path: Path, fd: int, dead_letter: bool) -> _FileIndex:
        """Read what was appended since this process last looked; cut a half last line."""
        stat = os.fstat(fd)
        index = self._indexes.get(str(path))
        if index is None or index.inode != stat.st_ino or index.offset > stat.st_size:
            index = self._indexes[str(path)] = _FileIndex(inode=stat.st_ino)
        if stat.st_size == index.offset:
            return index
        with open(fd, "rb", closefd=False) as handle:
            handle.seek(index.offset)
            tail = handle.read()
        complete = tail.rfind(b"\n") + 1
        if complete < len(tail):  # a writer died mid-line: its entry was never acknowledged
            os.ftruncate(fd, index.offset + complete)
            tail = tail[:complete]
        for line in tail.splitlines():
            if line.strip():
                index.keys.add(line_key(line, dead_letter))
        index.offset += complete
        return index

    def ids(self) -> list[str]:
        """Record ids of the current articles file, in file order (for tests and tools)."""
        if not self.articles_path.exists():
            return []
        lines = self.articles_path.read_bytes().splitlines()
        return [line_key(line, False) for line in lines if line.strip()]
