"""The PostgreSQL store: one row per article, upserted by ``id`` in batches.

Idempotent: a batch handed over again after a crash rewrites nothing, since the upsert's
``WHERE content_hash IS DISTINCT FROM`` leaves a record with unchanged text (row, ``updated_at``,
``xmin``) alone; a changed text replaces the row. Migrated, not recreated: ``{table}_schema_version``
lists the steps of :func:`migrations` applied, each once, in order, under
``pg_advisory_xact_lock(hashtext(table))`` (the old code's lock). Step 1 is the schema the
store used to create, so an existing table is recognised and converted in place.

Typed columns, to query: ``published_at``/``modified_at timestamptz`` (from the record's ISO
8601, naive = UTC, unparseable = NULL; the raw strings stay in ``record``), ``authors text[]``,
``entities jsonb`` (GIN ``jsonb_path_ops``: ``entities @> '[{"key": "..."}]'``) and ``tsv``, a
generated ``tsvector`` of title (A), description (B) and text (C) in ``ts_config``, the
text-search configuration of the record's language or ``simple``: ``tsv @@ to_tsquery(ts_config, ...)``.
Where the URL came from (step 3): ``source text`` with ``discovered_at timestamptz`` (indexed
together: a source's articles by discovery time) and ``labels jsonb`` (GIN:
``labels @> '{"section": "politics"}'``).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql

from stores.base import Delivery, StoreUnavailable, WriteResult

#: ISO 639-1 code -> PostgreSQL text-search configuration (used only where the server has it).
TS_CONFIGS = {
    "ar": "arabic", "ca": "catalan", "da": "danish", "de": "german", "el": "greek", "en": "english",
    "es": "spanish", "eu": "basque", "fi": "finnish", "fr": "french", "ga": "irish", "hi": "hindi",
    "hu": "hungarian", "hy": "armenian", "id": "indonesian", "it": "italian", "lt": "lithuanian",
    "ne": "nepali", "nl": "dutch", "no": "norwegian", "nb": "norwegian", "pt": "portuguese",
    "ro": "romanian", "ru": "russian", "sr": "serbian", "sv": "swedish", "ta": "tamil", "tr": "turkish",
    "yi": "yiddish",
}  # fmt: skip

#: Step 1: exactly the schema the store created before it had migrations.
SCHEMA_V1 = """
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
CREATE INDEX IF NOT EXISTS {content_hash_idx} ON {table} (content_hash);
"""

#: A text date as timestamptz, NULL when it does not parse (steps 2 and 3 create and drop it).
_TIMESTAMPTZ_FUNCTION = """
SET LOCAL timezone = 'UTC';
CREATE OR REPLACE FUNCTION pg_temp.ingest_timestamptz(value text) RETURNS timestamptz
LANGUAGE plpgsql AS $$
BEGIN
    IF value !~ '^\\s*\\d\\d\\d\\d-\\d\\d-\\d\\d' THEN RETURN NULL; END IF;
    RETURN value::timestamptz;
EXCEPTION WHEN others THEN RETURN NULL;
END $$;
"""

#: Step 2: typed columns. Text dates that do not parse become NULL (the exception block).
SCHEMA_V2 = _TIMESTAMPTZ_FUNCTION + """\
ALTER TABLE {table}
    ALTER COLUMN published_at TYPE timestamptz USING pg_temp.ingest_timestamptz(published_at),
    ADD COLUMN modified_at timestamptz,
    ADD COLUMN authors text[] NOT NULL DEFAULT ARRAY[]::text[],
    ADD COLUMN entities jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN ts_config regconfig NOT NULL DEFAULT 'simple',
    ADD COLUMN tsv tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector(ts_config, coalesce(title, '')), 'A')
        || setweight(to_tsvector(ts_config, coalesce(record->>'description', '')), 'B')
        || setweight(to_tsvector(ts_config, left(coalesce(record->>'text', ''), 200000)), 'C'))
        STORED;
UPDATE {table} SET
    modified_at = pg_temp.ingest_timestamptz(record->>'modified_at'),
    authors = ARRAY(SELECT jsonb_array_elements_text(CASE jsonb_typeof(record->'authors')
                    WHEN 'array' THEN record->'authors' ELSE '[]' END)),
    entities = CASE jsonb_typeof(record->'entities') WHEN 'array' THEN record->'entities' ELSE '[]' END,
    ts_config = coalesce((SELECT c.oid::regconfig FROM (VALUES {configs}) AS m (lang, cfg)
                          JOIN pg_ts_config c ON c.cfgname = m.cfg
                          AND c.cfgnamespace = 'pg_catalog'::regnamespace
                          WHERE m.lang = lower(split_part({table}.language, '-', 1))), 'simple');
CREATE INDEX {entities_idx} ON {table} USING gin (entities jsonb_path_ops);
CREATE INDEX {tsv_idx} ON {table} USING gin (tsv);
CREATE INDEX {published_at_idx} ON {table} (published_at);
DROP FUNCTION pg_temp.ingest_timestamptz(text);
"""

#: Step 3: where the URL came from (the intake stream's source, its labels, when it was found).
SCHEMA_V3 = _TIMESTAMPTZ_FUNCTION + """\
ALTER TABLE {table}
    ADD COLUMN source text,
    ADD COLUMN labels jsonb NOT NULL DEFAULT '{{}}',
    ADD COLUMN discovered_at timestamptz;
UPDATE {table} SET
    source = record->>'source',
    labels = CASE jsonb_typeof(record->'labels') WHEN 'object' THEN record->'labels' ELSE '{{}}' END,
    discovered_at = pg_temp.ingest_timestamptz(record->>'discovered_at')
WHERE record ?| ARRAY['source', 'labels', 'discovered_at'];
CREATE INDEX {source_idx} ON {table} (source, discovered_at);
CREATE INDEX {labels_idx} ON {table} USING gin (labels jsonb_path_ops);
DROP FUNCTION pg_temp.ingest_timestamptz(text);
"""

COLUMNS = ("id", "url", "final_url", "title", "language", "published_at", "modified_at", "authors",
           "content_hash", "duplicate_of", "fetched_at", "entities", "ts_config", "record",
           "source", "labels", "discovered_at")  # fmt: skip

#: Rows are COPYed into this session's staging table (its columns are COLUMNS), then upserted.
STAGE = """
CREATE TEMP TABLE IF NOT EXISTS {stage} (id text, url text, final_url text, title text, language text,
    published_at timestamptz, modified_at timestamptz, authors text[], content_hash text,
    duplicate_of text, fetched_at timestamptz, entities jsonb, ts_config regconfig, record jsonb,
    source text, labels jsonb, discovered_at timestamptz)
ON COMMIT DELETE ROWS
"""

VERSIONS = """
CREATE TABLE IF NOT EXISTS {versions} (version integer PRIMARY KEY, description text NOT NULL,
                                       applied_at timestamptz NOT NULL DEFAULT now())
"""

#: The NOT EXISTS skips unchanged rows early (their tsvector is never computed); the
#: ON CONFLICT ... WHERE is what guarantees an unchanged row is never rewritten.
UPSERT = """
INSERT INTO {table} ({columns}) SELECT {columns} FROM {stage} AS s
WHERE NOT EXISTS (SELECT FROM {table} AS t
                  WHERE t.id = s.id AND t.content_hash IS NOT DISTINCT FROM s.content_hash)
ON CONFLICT (id) DO UPDATE SET {updates}, updated_at = now()
WHERE {table}.content_hash IS DISTINCT FROM EXCLUDED.content_hash
"""


def migrations(table: str) -> list[tuple[str, sql.Composed]]:
    """The ordered schema steps of ``table``: (description, SQL). Append only, never edit."""
    suffixes = ("content_hash", "entities", "tsv", "published_at", "source", "labels")
    names = {f"{suffix}_idx": sql.Identifier(f"{table}_{suffix}_idx") for suffix in suffixes}
    configs = sql.SQL(", ").join(sql.SQL("({}, {})").format(lang, cfg) for lang, cfg in TS_CONFIGS.items())
    ident = sql.Identifier(table)
    return [
        ("initial schema (published_at text)", sql.SQL(SCHEMA_V1).format(table=ident, **names)),
        ("typed dates, authors, entities, full-text search",
         sql.SQL(SCHEMA_V2).format(table=ident, configs=configs, **names)),
        ("source, labels and discovered_at from the intake", sql.SQL(SCHEMA_V3).format(table=ident, **names)),
    ]  # fmt: skip


def _text(value: Any) -> str | None:
    """A text column's value: None or str as they are, anything else as JSON."""
    return value if value is None or isinstance(value, str) else json.dumps(value)


def _labels(value: Any) -> dict[str, str]:
    """The record's labels as a JSON object of strings (anything else: none)."""
    if not isinstance(value, dict):
        return {}
    return {str(name): text if isinstance(text, str) else json.dumps(text) for name, text in value.items()}


def parse_moment(value: Any) -> datetime | None:
    """An ISO 8601 date or date-time as an aware datetime (naive: UTC), else None."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


class PostgresStore:
    """Writes article records into ``table``; one connection per thread, created lazily."""

    name = "postgres"
    takes_dead_letters = False

    def __init__(self, dsn: str, table: str = "articles") -> None:
        if not (re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", table) and len(table) <= 40):
            raise ValueError(f"invalid table name {table!r}: letters, digits, _ (at most 40)")
        self._dsn = dsn
        self.table = table.lower()  # what PostgreSQL made of the old code's unquoted name
        self._ident = sql.Identifier(self.table)
        self._versions = sql.Identifier(f"{self.table}_schema_version")
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: set[psycopg.Connection[Any]] = set()
        self._schema_ready = False
        stage = sql.Identifier("pg_temp", f"{self.table}_stage")
        columns = sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
        self._stage = sql.SQL(STAGE).format(stage=stage)
        self._copy = sql.SQL("COPY {} ({}) FROM STDIN").format(stage, columns)
        self._upsert = sql.SQL(UPSERT).format(
            table=self._ident,
            stage=stage,
            columns=columns,
            updates=sql.SQL(", ").join(
                sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(column)) for column in COLUMNS[1:]
            ),
        )

    def write(self, deliveries: Sequence[Delivery]) -> WriteResult:
        """Upsert the batch in one transaction; on a data error, record by record."""
        if not deliveries:
            return WriteResult()
        conn = self._connection()
        rows: dict[str, tuple[Any, ...]] = {}  # by id, the last delivery wins
        rejected: dict[str, str] = {}
        for delivery in deliveries:
            try:
                rows[delivery.record_id] = self._row(delivery)
            except (ValueError, TypeError, AttributeError) as exc:
                rejected[delivery.entry_id] = f"unreadable record: {exc}"
        try:
            self._execute(conn, list(rows.values()))
        except psycopg.Error as exc:
            self._raise_unless_record_level(conn, exc)
            failed = self._one_by_one(conn, rows)
            rejected.update({d.entry_id: failed[d.record_id] for d in deliveries if d.record_id in failed})
        written = [delivery.entry_id for delivery in deliveries if delivery.entry_id not in rejected]
        return WriteResult(written=written, rejected=rejected)

    def _one_by_one(self, conn: psycopg.Connection[Any], rows: dict[str, tuple[Any, ...]]) -> dict[str, str]:
        failed: dict[str, str] = {}
        for record_id, row in rows.items():
            try:
                self._execute(conn, [row])
            except psycopg.Error as exc:
                self._raise_unless_record_level(conn, exc)
                failed[record_id] = f"PostgreSQL refused the record: {type(exc).__name__}: {exc}"
        return failed

    def _execute(self, conn: psycopg.Connection[Any], rows: list[tuple[Any, ...]]) -> None:
        """COPY the rows into the session's staging table, upsert from it, in one transaction."""
        if rows:
            with conn.transaction(), conn.cursor() as cursor:
                with cursor.copy(self._copy) as copy:
                    for row in rows:
                        copy.write_row(row)
                cursor.execute(self._upsert)

    def _row(self, delivery: Delivery) -> tuple[Any, ...]:
        doc = delivery.document
        language = _text(doc.get("language"))
        code = re.split(r"[-_]", language)[0].lower() if language else ""
        authors = doc.get("authors")
        return (
            delivery.record_id, _text(doc.get("url")), _text(doc.get("final_url")), _text(doc.get("title")),
            language, parse_moment(doc.get("published_at")), parse_moment(doc.get("modified_at")),
            [str(author) for author in authors] if isinstance(authors, list) else [],
            _text(doc.get("content_hash")), _text(doc.get("duplicate_of")),
            parse_moment(doc.get("fetched_at")),
            json.dumps(doc.get("entities") or [], ensure_ascii=False),
            self._local.configs.get(code, "simple"), delivery.payload,
            _text(doc.get("source")), json.dumps(_labels(doc.get("labels")), ensure_ascii=False),
            parse_moment(doc.get("discovered_at")),
        )  # fmt: skip

    def _raise_unless_record_level(self, conn: psycopg.Connection[Any], exc: psycopg.Error) -> None:
        """Raise StoreUnavailable (the batch is retried) unless one record is to blame: a
        DataError, an IntegrityError (no url), a program limit (class 54). Anything else is the
        store's: connection lost, table dropped, privilege missing (the next connection migrates)."""
        record_level = isinstance(exc, psycopg.DataError | psycopg.IntegrityError) or (
            exc.sqlstate or ""
        ).startswith("54")
        if record_level and not conn.broken and not conn.closed:
            return
        self._drop()
        self._schema_ready = False
        raise StoreUnavailable(f"PostgreSQL unavailable: {type(exc).__name__}: {exc}") from exc

    def _connection(self) -> psycopg.Connection[Any]:
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        self._drop()
        try:
            conn = psycopg.connect(self._dsn, autocommit=True, connect_timeout=10)
        except psycopg.Error as exc:
            raise StoreUnavailable(f"PostgreSQL unavailable: {exc}") from exc
        self._local.conn = conn
        with self._lock:
            self._connections.add(conn)
        try:
            if not self._schema_ready:
                self._migrate(conn)
                self._schema_ready = True
            names = {row[0] for row in conn.execute("SELECT cfgname::text FROM pg_ts_config")}
            conn.execute(self._stage)
        except psycopg.Error as exc:  # a migration that cannot run: nothing can be written yet
            self._drop()
            raise StoreUnavailable(f"PostgreSQL schema not ready: {type(exc).__name__}: {exc}") from exc
        self._local.configs = {code: cfg for code, cfg in TS_CONFIGS.items() if cfg in names}
        return conn

    def _migrate(self, conn: psycopg.Connection[Any]) -> None:
        """Apply the steps not yet applied, once, while holding the table's advisory lock."""
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (self.table,))
            conn.execute(sql.SQL(VERSIONS).format(versions=self._versions))
            row = conn.execute(
                sql.SQL("SELECT max(version), to_regclass(%s) IS NULL FROM {}").format(self._versions),
                (self.table,),
            ).fetchone()
            applied = (row[0] if row else None) or 0
            if applied and row and row[1]:  # the table was dropped, its version rows were not
                conn.execute(sql.SQL("DELETE FROM {}").format(self._versions))
                applied = 0
            for version, (description, step) in enumerate(migrations(self.table), start=1):
                if version > applied:
                    conn.execute(step)
                    insert = sql.SQL("INSERT INTO {} (version, description) VALUES (%s, %s)")
                    conn.execute(insert.format(self._versions), (version, description))

    def schema_version(self) -> int:
        """The latest migration applied to the table (after migrating it if needed)."""
        return int(self._scalar(sql.SQL("SELECT max(version) FROM {}").format(self._versions)) or 0)

    def count(self) -> int:
        """Rows in the table (for tests and benchmarks)."""
        return int(self._scalar(sql.SQL("SELECT count(*) FROM {}").format(self._ident)))

    def _scalar(self, query: sql.Composed) -> Any:
        row = self._connection().execute(query).fetchone()
        return row[0] if row else None

    def _drop(self) -> None:
        """Forget (and close) this thread's connection."""
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            with self._lock:
                self._connections.discard(conn)
            conn.close()

    def close(self) -> None:
        """Close every thread's connection; a later write reconnects."""
        with self._lock:
            connections, self._connections = self._connections, set()
        for conn in connections:
            conn.close()
        self._local.conn = None
