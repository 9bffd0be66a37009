"""The PostgreSQL store: one row per article, upserted by ``id``.

The upsert makes publishing idempotent: a task redelivered after a crash rewrites the same
row instead of adding one. The whole record is kept as ``jsonb`` beside a few columns worth
indexing.
"""

from __future__ import annotations

import threading
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from tasks.errors import TransientError
from tasks.record import ArticleRecord

SCHEMA = """
CREATE TABLE IF NOT EXISTS {table} (
    id            text PRIMARY KEY,
    url           text NOT NULL,
    final_url     text,
    title         text,
    language      text,
    published_at  text,
    content_hash  text,
    duplicate_of  text,
    fetched_at    timestamptz,
    record        jsonb NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS {table}_content_hash_idx ON {table} (content_hash);
"""

UPSERT = """
INSERT INTO {table} (id, url, final_url, title, language, published_at, content_hash,
                     duplicate_of, fetched_at, record)
VALUES (%(id)s, %(url)s, %(final_url)s, %(title)s, %(language)s, %(published_at)s,
        %(content_hash)s, %(duplicate_of)s, %(fetched_at)s, %(record)s)
ON CONFLICT (id) DO UPDATE SET
    url = EXCLUDED.url, final_url = EXCLUDED.final_url, title = EXCLUDED.title,
    language = EXCLUDED.language, published_at = EXCLUDED.published_at,
    content_hash = EXCLUDED.content_hash, duplicate_of = EXCLUDED.duplicate_of,
    fetched_at = EXCLUDED.fetched_at, record = EXCLUDED.record, updated_at = now()
"""


class PostgresStore:
    """Upserts article records into ``table``; one connection per thread, created lazily."""

    def __init__(self, dsn: str, table: str = "articles") -> None:
        if not table.isidentifier():
            raise ValueError(f"invalid table name {table!r}")
        self._dsn = dsn
        self.table = table
        self._local = threading.local()
        self._schema_ready = False

    def _connection(self) -> psycopg.Connection[Any]:
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = psycopg.connect(self._dsn, autocommit=True, connect_timeout=10)
            self._local.conn = conn
        if not self._schema_ready:
            # Many workers start at once: serialise the CREATE TABLE IF NOT EXISTS, which
            # is not safe against itself (pg_type unique violation) without a lock.
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (self.table,))
                conn.execute(SCHEMA.format(table=self.table))
            self._schema_ready = True
        return conn

    def upsert(self, record: ArticleRecord) -> None:
        """Insert the record, or replace the row with the same id."""
        params = {
            "id": record.id,
            "url": record.url,
            "final_url": record.final_url,
            "title": record.title,
            "language": record.language,
            "published_at": record.published_at,
            "content_hash": record.content_hash,
            "duplicate_of": record.duplicate_of,
            "fetched_at": record.fetched_at,
            "record": Jsonb(record.model_dump(mode="json")),
        }
        try:
            self._connection().execute(UPSERT.format(table=self.table), params)
        except psycopg.OperationalError as exc:
            self.close()
            raise TransientError(f"PostgreSQL unavailable: {exc}", reason="store_error") from exc

    def close(self) -> None:
        """Close this thread's connection."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
