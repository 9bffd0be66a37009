"""The JSONL store on a real filesystem: append-only, one line per id per file, no half lines."""

from __future__ import annotations

import json
import multiprocessing
import time
from datetime import UTC, datetime
from pathlib import Path

from stores.base import Delivery
from stores.jsonl import JsonlStore
from tasks.record import ArticleRecord, DeadLetter


def _record(index: int, text: str = "x" * 500) -> Delivery:
    record = ArticleRecord(id=f"r{index:05d}", url=f"https://example.org/{index}", text=text)
    return Delivery(f"{1_700_000_000_000 + index}-0", "record", record.id, "b1", record.model_dump_json())


def _letter(record_id: str, store: str | None = None) -> Delivery:
    letter = DeadLetter(
        id=record_id,
        url=f"https://example.org/{record_id}",
        batch="b1",
        stage="fetch" if store is None else "deliver",
        reason="http_error" if store is None else "store_rejected",
        error="HTTP 404",
        attempts=1,
        failed_at=datetime.now(UTC),
        store=store,
    )
    return Delivery("1700000000000-9", "dead_letter", record_id, "b1", letter.model_dump_json())


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_appends_and_never_truncates(tmp_path: Path) -> None:
    (tmp_path / "articles.jsonl").write_text(_record(0).payload + "\n")
    store = JsonlStore(tmp_path)
    result = store.write([_record(1), _record(2)])
    assert sorted(result.written) == sorted([_record(1).entry_id, _record(2).entry_id])
    assert [line["id"] for line in _lines(store.articles_path)] == ["r00000", "r00001", "r00002"]
    JsonlStore(tmp_path).write([_record(3)])  # a new process (a second `ingest run`) appends too
    assert len(_lines(store.articles_path)) == 4


def test_an_id_appears_once_per_file_even_when_redelivered(tmp_path: Path) -> None:
    store = JsonlStore(tmp_path)
    batch = [_record(index) for index in range(10)]
    store.write(batch)
    store.write(batch[3:7])  # redelivered to the same process
    JsonlStore(tmp_path).write(batch)  # and to another one, which has not read the file yet
    assert [line["id"] for line in _lines(store.articles_path)] == [f"r{i:05d}" for i in range(10)]


def test_dead_letters_go_to_their_own_file_keyed_by_store(tmp_path: Path) -> None:
    store = JsonlStore(tmp_path)
    store.write([_letter("a"), _letter("a"), _letter("a", store="webhook"), _record(1)])
    letters = _lines(store.dead_letters_path)
    assert [(letter["id"], letter["store"]) for letter in letters] == [("a", None), ("a", "webhook")]
    assert len(_lines(store.articles_path)) == 1


def test_a_half_line_left_by_a_crash_is_cut_and_its_entry_written_again(tmp_path: Path) -> None:
    path = tmp_path / "articles.jsonl"
    whole, torn = _record(1).payload, _record(2).payload
    path.write_text(whole + "\n" + torn[: len(torn) // 2])  # died mid-write: entry 2 never acked
    JsonlStore(tmp_path).write([_record(2), _record(3)])
    assert [line["id"] for line in _lines(path)] == ["r00001", "r00002", "r00003"]


def _write_range(directory: str, start: int) -> None:
    store = JsonlStore(Path(directory), fsync=False)
    for index in range(start, start + 300, 20):
        store.write([_record(i % 400, text="y" * 3000) for i in range(index, index + 20)])


def test_processes_sharing_the_file_never_interleave_or_repeat(tmp_path: Path) -> None:
    # Four writers over overlapping id ranges (0-299, 100-399, ...): each id once in all.
    processes = [
        multiprocessing.Process(target=_write_range, args=(str(tmp_path), n * 100)) for n in range(4)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join()
    ids = [line["id"] for line in _lines(tmp_path / "articles.jsonl")]
    assert sorted(ids) == [f"r{i:05d}" for i in range(400)]


def test_rotation_by_size_starts_a_new_file_and_keeps_the_old(tmp_path: Path) -> None:
    store = JsonlStore(tmp_path, rotate_bytes=2_000)
    for index in range(12):
        store.write([_record(index)])  # about 1 kB each
    files = sorted(tmp_path.glob("articles*.jsonl"))
    assert len(files) >= 3
    ids = [line["id"] for path in files for line in _lines(path)]
    assert sorted(ids) == [f"r{i:05d}" for i in range(12)]
    line = len(_record(0).payload) + 1
    assert all(path.stat().st_size < 2_000 + line for path in files)  # rotated at the first line past


def test_hourly_rotation_names_the_file_by_the_hour(tmp_path: Path) -> None:
    store = JsonlStore(tmp_path, rotate_hourly=True)
    store.write([_record(1), _letter("a")])
    before = time.strftime("%Y%m%dT%H", time.gmtime())
    names = {path.name for path in tmp_path.glob("*.jsonl")}
    hour = store.articles_path.name.removeprefix("articles-").removesuffix(".jsonl")
    assert hour[:8] == before[:8]
    assert names == {f"articles-{hour}.jsonl", f"dead-letters-{hour}.jsonl"}
