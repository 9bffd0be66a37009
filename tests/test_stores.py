"""Stores on real services: page bodies in Redis, JSONL files, PostgreSQL upserts."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import psycopg
import pytest
import redis

from config import Settings
from stores.bodies import BodyStore
from stores.jsonl import JsonlStore
from stores.postgres import PostgresStore
from tasks.errors import PermanentError
from tasks.record import ArticleRecord, DeadLetter


def test_body_round_trip_and_expiry(settings: Settings, redis_client: redis.Redis) -> None:
    store = BodyStore(redis_client, settings.key_prefix, ttl=60)
    html = "<html><body><p>Sergueï Lavrov, Qaïda, 東京</p></body></html>" * 200
    key = store.put("b1", "abc", html)
    assert store.get(key) == html
    assert len(redis_client.get(key) or b"") < len(html.encode()) / 5  # stored compressed
    assert 0 < redis_client.ttl(key) <= 60
    store.delete(key)
    with pytest.raises(PermanentError) as caught:
        store.get(key)
    assert caught.value.reason == "body_expired"


def _append_many(directory: str, worker: int) -> None:
    store = JsonlStore(Path(directory))
    for index in range(200):
        record = ArticleRecord(id=f"{worker}-{index}", url="https://example.org/", text="x" * 5000)
        store.write_article(record)


def test_jsonl_appends_from_processes_never_interleave(tmp_path: Path) -> None:
    processes = [multiprocessing.Process(target=_append_many, args=(str(tmp_path), n)) for n in range(4)]
    for process in processes:
        process.start()
    for process in processes:
        process.join()
    lines = (tmp_path / "articles.jsonl").read_text().splitlines()
    ids = {json.loads(line)["id"] for line in lines}
    assert len(lines) == len(ids) == 800


def test_dead_letter_lines_are_valid_json(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    store = JsonlStore(tmp_path)
    letter = DeadLetter(
        id="a",
        url="u",
        batch="b",
        stage="fetch",
        reason="timeout",
        error="e\nmore",
        attempts=4,
        failed_at=datetime.now(UTC),
    )
    store.write_dead_letter(letter)
    assert DeadLetter.model_validate_json(store.dead_letters_path.read_text()) == letter


def test_postgres_upsert_is_idempotent(postgres_dsn: str, key_prefix: str) -> None:
    table = "articles_" + key_prefix.replace("-", "_")
    store = PostgresStore(postgres_dsn, table)
    try:
        first = ArticleRecord(id="r1", url="https://example.org/a", title="Old", text="one")
        store.upsert(first)
        store.upsert(first)
        store.upsert(first.model_copy(update={"title": "New", "duplicate_of": "r0"}))
        with psycopg.connect(postgres_dsn) as conn:
            rows = conn.execute(f"SELECT id, title, duplicate_of, record->>'title' FROM {table}").fetchall()  # type: ignore[arg-type]
        assert rows == [("r1", "New", "r0", "New")]
    finally:
        store.close()
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {table}")  # type: ignore[arg-type]


def test_postgres_table_name_is_checked() -> None:
    with pytest.raises(ValueError):
        PostgresStore("postgresql://localhost/test", "articles; DROP TABLE x")
