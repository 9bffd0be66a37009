"""Reading every store back in tests: what each one holds, by record id."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import psycopg
import redis

from config import Settings


def jsonl_lines(path: Path) -> list[dict[str, object]]:
    """The JSON objects of one JSONL file ([] if it does not exist)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def jsonl_ids(settings: Settings) -> Counter[str]:
    """Record ids in articles.jsonl, with how often each appears."""
    return Counter(str(line["id"]) for line in jsonl_lines(settings.output_dir / "articles.jsonl"))


def postgres_ids(settings: Settings) -> Counter[str]:
    """Record ids in the PostgreSQL table (a primary key: once each, or missing)."""
    assert settings.postgres_dsn
    with psycopg.connect(settings.postgres_dsn) as conn:
        rows = conn.execute(f"SELECT id FROM {settings.postgres_table}").fetchall()  # type: ignore[arg-type]
    return Counter(str(row[0]) for row in rows)


def stream_ids(settings: Settings, client: redis.Redis) -> Counter[str]:
    """Record ids of the redis_stream store's stream, with how often each appears."""
    entries = client.xrange(settings.stream_name)
    return Counter(fields[b"id"].decode() for _entry_id, fields in entries)


def drop_postgres_table(settings: Settings) -> None:
    """Drop the test's table and its migration table."""
    from psycopg import sql

    assert settings.postgres_dsn
    table = settings.postgres_table
    with psycopg.connect(settings.postgres_dsn, autocommit=True) as conn:
        for name in (table, f"{table}_schema_version"):
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(name)))
