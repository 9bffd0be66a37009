"""The PostgreSQL store on a real server: migrations, typed columns, idempotent batch upserts."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from stores.base import Delivery, StoreUnavailable
from stores.postgres import SCHEMA_V1, PostgresStore, migrations, parse_moment
from tasks.record import ArticleRecord, Entity


@pytest.fixture
def table(postgres_dsn: str, key_prefix: str) -> Iterator[str]:
    """A private table name; the table and its version table are dropped afterwards."""
    name = "articles_" + key_prefix.replace("-", "_")
    yield name
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {name}, {name}_schema_version")


@pytest.fixture
def store(postgres_dsn: str, table: str) -> Iterator[PostgresStore]:
    store = PostgresStore(postgres_dsn, table)
    yield store
    store.close()


def query(dsn: str, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql, params or None).fetchall()


def record(n: int, **update: Any) -> ArticleRecord:
    fields: dict[str, Any] = {
        "id": f"r{n}",
        "url": f"https://example.org/{n}",
        "title": f"Article {n}",
        "language": "en",
        "text": f"Text number {n} about the summit.",
        "content_hash": f"h{n}",
        "authors": ["Jane Doe"],
        "published_at": "2024-11-22",
        "fetched_at": datetime(2024, 11, 22, 12, tzinfo=UTC),
        **update,
    }
    return ArticleRecord(**fields)


def delivery(rec: ArticleRecord, seq: int = 0) -> Delivery:
    return Delivery(
        entry_id=f"1700000000000-{seq}", kind="record", record_id=rec.id, batch="b1",
        payload=rec.model_dump_json(),
    )  # fmt: skip


def deliveries(*records: ArticleRecord) -> list[Delivery]:
    return [delivery(rec, seq) for seq, rec in enumerate(records)]


def test_batch_write_creates_the_migrated_schema(store: PostgresStore, postgres_dsn: str, table: str) -> None:
    entity = Entity(text="Paris", label="LOC", count=2, first_offset=0, method="rule", key="geonames:2988507")
    batch = deliveries(
        record(1, published_at="2024-11-22T10:30:00+02:00", modified_at="2024-11-23", entities=[entity]),
        record(2, published_at="2024-11-22T10:30:00", authors=[]),
        record(3, published_at="yesterday", modified_at=None),
    )
    assert store.write(batch).written == [d.entry_id for d in batch]
    assert store.count() == 3
    types = dict(query(postgres_dsn, "SELECT column_name, data_type FROM information_schema.columns "
                       "WHERE table_name = %s", table))  # fmt: skip
    assert types["published_at"] == types["modified_at"] == "timestamp with time zone"
    assert (types["authors"], types["entities"], types["tsv"]) == ("ARRAY", "jsonb", "tsvector")
    assert types["ts_config"] == "regconfig"
    indexes = dict(query(postgres_dsn, "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s",
                         table))  # fmt: skip
    assert "USING gin (tsv)" in indexes[f"{table}_tsv_idx"]
    assert "USING gin (entities jsonb_path_ops)" in indexes[f"{table}_entities_idx"]
    assert f"{table}_content_hash_idx" in indexes
    versions = query(postgres_dsn, f"SELECT version FROM {table}_schema_version ORDER BY version")
    assert [v for (v,) in versions] == list(range(1, len(migrations(table)) + 1))
    assert store.schema_version() == len(migrations(table)) == 3
    rows = query(postgres_dsn, f"SELECT id, published_at, modified_at, authors, fetched_at, "
                 f"record->>'published_at' FROM {table} ORDER BY id")  # fmt: skip
    assert rows == [
        ("r1", datetime(2024, 11, 22, 8, 30, tzinfo=UTC), datetime(2024, 11, 23, tzinfo=UTC), ["Jane Doe"],
         datetime(2024, 11, 22, 12, tzinfo=UTC), "2024-11-22T10:30:00+02:00"),
        ("r2", datetime(2024, 11, 22, 10, 30, tzinfo=UTC), None, [], datetime(2024, 11, 22, 12, tzinfo=UTC),
         "2024-11-22T10:30:00"),
        ("r3", None, None, ["Jane Doe"], datetime(2024, 11, 22, 12, tzinfo=UTC), "yesterday"),
    ]  # fmt: skip
    found = query(postgres_dsn, f"SELECT id FROM {table} WHERE entities @> %s::jsonb",
                  '[{"key": "geonames:2988507"}]')  # fmt: skip
    assert found == [("r1",)]


def test_source_labels_and_discovery_time_are_typed_columns(
    store: PostgresStore, postgres_dsn: str, table: str
) -> None:
    found = datetime(2024, 11, 22, 9, 15, tzinfo=UTC)
    batch = deliveries(
        record(1, source="lemonde-politique", labels={"section": "politique", "country": "fr"},
               discovered_at=found),
        record(2),
    )  # fmt: skip
    assert store.write(batch).written == [d.entry_id for d in batch]
    types = dict(query(postgres_dsn, "SELECT column_name, data_type FROM information_schema.columns "
                       "WHERE table_name = %s", table))  # fmt: skip
    assert (types["source"], types["labels"], types["discovered_at"]) == (
        "text", "jsonb", "timestamp with time zone",
    )  # fmt: skip
    rows = query(postgres_dsn, f"SELECT id, source, labels, discovered_at FROM {table} ORDER BY id")
    assert rows == [
        ("r1", "lemonde-politique", {"section": "politique", "country": "fr"}, found),
        ("r2", None, {}, None),
    ]
    by_label = query(postgres_dsn, f"SELECT id FROM {table} WHERE labels @> %s::jsonb", '{"country": "fr"}')
    assert by_label == [("r1",)]
    indexes = dict(query(postgres_dsn, "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s",
                         table))  # fmt: skip
    assert "(source, discovered_at)" in indexes[f"{table}_source_idx"]
    assert "USING gin (labels jsonb_path_ops)" in indexes[f"{table}_labels_idx"]


def test_parse_moment() -> None:
    assert parse_moment("2024-11-22") == datetime(2024, 11, 22, tzinfo=UTC)
    assert parse_moment("2024-11-22T10:00:00Z") == datetime(2024, 11, 22, 10, tzinfo=UTC)
    assert parse_moment("2024-11-22T10:00:00-05:00") == datetime(2024, 11, 22, 15, tzinfo=UTC)
    assert parse_moment("22/11/2024") is None
    assert parse_moment(None) is None


def test_text_search_configuration_follows_the_language(
    store: PostgresStore, postgres_dsn: str, table: str
) -> None:
    french = record(1, language="fr", title="Le scrutin", text="Les élections municipales ont eu lieu.",
                    description="Une élection disputée")  # fmt: skip
    japanese = record(2, language="ja", text="東京 election results")
    unknown = record(3, language=None, text="Elections everywhere")
    regional = record(4, language="pt-BR", text="As eleições presidenciais")
    assert not store.write(deliveries(french, japanese, unknown, regional)).rejected
    configs = query(postgres_dsn, f"SELECT id, ts_config::text FROM {table} ORDER BY id")
    assert configs == [("r1", "french"), ("r2", "simple"), ("r3", "simple"), ("r4", "portuguese")]
    matches = query(postgres_dsn, f"SELECT id FROM {table} WHERE tsv @@ to_tsquery('french', 'élections')")
    assert matches == [("r1",)]
    weights = query(postgres_dsn, f"SELECT ts_rank(tsv, to_tsquery('french', 'scrutin')) > "
                    f"ts_rank(tsv, to_tsquery('french', 'municipales')) "
                    f"FROM {table} WHERE id = 'r1'")  # fmt: skip
    assert weights == [(True,)]  # the title weighs more than the text
    assert query(postgres_dsn, f"SELECT id FROM {table} WHERE tsv @@ to_tsquery('simple', 'election')") == [
        ("r2",)
    ]


def test_same_batch_twice_writes_nothing_new(store: PostgresStore, postgres_dsn: str, table: str) -> None:
    batch = deliveries(record(1), record(2), record(3))
    store.write(batch)
    snapshot = f"SELECT id, xmin::text, updated_at, title FROM {table} ORDER BY id"
    before = query(postgres_dsn, snapshot)
    again = store.write(batch)  # redelivered after a crash
    assert again.written == [d.entry_id for d in batch] and not again.rejected
    republished = record(2, title="Same text, new fetch", fetched_at=datetime.now(UTC))
    store.write(deliveries(republished))  # same content_hash: nothing changes
    assert query(postgres_dsn, snapshot) == before
    changed = record(3, title="Corrected", text="A corrected text.", content_hash="h3-v2")
    store.write(deliveries(changed))
    after = query(postgres_dsn, snapshot)
    assert after[:2] == before[:2]
    assert after[2][1] != before[2][1] and after[2][2] > before[2][2] and after[2][3] == "Corrected"
    assert store.count() == 3


def test_one_id_twice_in_a_batch_last_wins(store: PostgresStore, postgres_dsn: str, table: str) -> None:
    batch = deliveries(record(1, title="First"), record(2), record(1, title="Last", content_hash="h1-v2"))
    result = store.write(batch)
    assert result.written == [d.entry_id for d in batch]
    rows = query(postgres_dsn, f"SELECT id, title FROM {table} ORDER BY id")
    assert rows == [("r1", "Last"), ("r2", "Article 2")]


def test_a_bad_record_is_rejected_alone(store: PostgresStore, postgres_dsn: str, table: str) -> None:
    batch = deliveries(
        record(1), record(2, text="NUL \x00 inside"), record(3, title="Nul \x00 title"), record(4)
    )
    result = store.write(batch)
    assert result.written == [batch[0].entry_id, batch[3].entry_id]
    assert set(result.rejected) == {batch[1].entry_id, batch[2].entry_id}
    assert "DataError" in result.rejected[batch[2].entry_id] or "NUL" in result.rejected[batch[2].entry_id]
    assert query(postgres_dsn, f"SELECT id FROM {table} ORDER BY id") == [("r1",), ("r4",)]
    assert store.write(deliveries(record(5))).written  # the connection is still good


def test_old_schema_table_is_migrated_in_place(postgres_dsn: str, table: str) -> None:
    old_record = record(1, language="fr", text="Des élections anticipées", published_at="2024-11-22")
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(SCHEMA_V1.format(table=table, content_hash_idx=f"{table}_content_hash_idx"))
        insert = (
            f"INSERT INTO {table} (id, url, language, published_at, content_hash, record) "
            "VALUES (%s, %s, %s, %s, %s, %s)"
        )
        conn.execute(insert, ("r1", old_record.url, "fr", "2024-11-22", "h1", old_record.model_dump_json()))
        conn.execute(insert, ("r2", "https://example.org/2", None, "not a date", "h2", '{"id": "r2"}'))
        conn.execute(insert, ("r3", "https://example.org/3", None, "2024-02-30", "h3", '{"id": "r3"}'))
    store = PostgresStore(postgres_dsn, table)
    try:
        assert store.count() == 3
        assert store.schema_version() == 3
        rows = query(
            postgres_dsn, f"SELECT id, published_at, authors, ts_config::text FROM {table} ORDER BY id"
        )
        assert rows == [
            ("r1", datetime(2024, 11, 22, tzinfo=UTC), ["Jane Doe"], "french"),
            ("r2", None, [], "simple"),
            ("r3", None, [], "simple"),
        ]
        found = query(postgres_dsn, f"SELECT id FROM {table} WHERE tsv @@ to_tsquery('french', 'élection')")
        assert found == [("r1",)]
        store.write(deliveries(record(4)))
        assert store.count() == 4
    finally:
        store.close()


def test_migration_fills_the_intake_columns_from_the_records(postgres_dsn: str, table: str) -> None:
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(SCHEMA_V1.format(table=table, content_hash_idx=f"{table}_content_hash_idx"))
        insert = f"INSERT INTO {table} (id, url, content_hash, record) VALUES (%s, %s, %s, %s)"
        found = {"id": "r1", "source": "feed-a", "labels": {"k": "v"}, "discovered_at": "2024-11-22T08:00Z"}
        broken = {"id": "r2", "labels": [], "discovered_at": "soon"}
        conn.execute(insert, ("r1", "https://example.org/1", "h1", json.dumps(found)))
        conn.execute(insert, ("r2", "https://example.org/2", "h2", json.dumps(broken)))
    store = PostgresStore(postgres_dsn, table)
    try:
        assert store.schema_version() == 3
        rows = query(postgres_dsn, f"SELECT id, source, labels, discovered_at FROM {table} ORDER BY id")
        assert rows == [
            ("r1", "feed-a", {"k": "v"}, datetime(2024, 11, 22, 8, tzinfo=UTC)),
            ("r2", None, {}, None),
        ]
    finally:
        store.close()


def test_many_workers_migrating_at_once(postgres_dsn: str, table: str) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def worker(n: int) -> None:
        store = PostgresStore(postgres_dsn, table)
        try:
            start.wait()
            store.write(deliveries(record(n)))
        except BaseException as exc:
            errors.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert query(postgres_dsn, f"SELECT count(*) FROM {table}") == [(6,)]
    assert query(postgres_dsn, f"SELECT count(*), max(version) FROM {table}_schema_version") == [(3, 3)]


def test_unreachable_server_is_unavailable(table: str) -> None:
    store = PostgresStore("postgresql://postgres@127.0.0.1:1/test?connect_timeout=1", table)
    with pytest.raises(StoreUnavailable) as caught:
        store.write(deliveries(record(1)))
    assert caught.value.reason == "store_error"
    store.close()


def test_lost_connection_is_unavailable_then_reconnects(
    store: PostgresStore, postgres_dsn: str, table: str
) -> None:
    store.write(deliveries(record(1)))
    backend = store._local.conn.info.backend_pid  # the server kills the store's session
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (backend,))
    with pytest.raises(StoreUnavailable):
        store.write(deliveries(record(2)))
    assert store.write(deliveries(record(2))).written
    assert store.count() == 2


def test_table_name_is_checked() -> None:
    for bad in ("articles; DROP TABLE x", "1articles", "art-icles", "a" * 41, ""):
        with pytest.raises(ValueError):
            PostgresStore("postgresql://localhost/test", bad)
    assert PostgresStore("postgresql://localhost/test", "Articles_2").table == "articles_2"


def test_a_dropped_table_is_created_again(postgres_dsn: str, table: str) -> None:
    first = PostgresStore(postgres_dsn, table)
    first.write(deliveries(record(1)))
    first.close()
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f"DROP TABLE {table}")  # the version table stays behind
    second = PostgresStore(postgres_dsn, table)
    try:
        assert second.write(deliveries(record(2))).written
        assert second.count() == 1 and second.schema_version() == 3
    finally:
        second.close()
