"""The ``redis_stream`` store on a real Redis: each record appended once per content."""

from __future__ import annotations

import json

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from config import Settings
from stores.base import Delivery, StoreUnavailable
from stores.redis_stream import RedisStreamStore, content_hash_of
from tasks.record import ArticleRecord


def _delivery(index: int, content_hash: str | None = "h0", text: str = "text", seq: int = 0) -> Delivery:
    record = ArticleRecord(
        id=f"rec{index:05d}", url=f"https://example.org/{index}", text=text, content_hash=content_hash
    )
    return Delivery(
        entry_id=f"1700000000000-{seq * 100_000 + index}",
        kind="record",
        record_id=record.id,
        batch="b1",
        payload=record.model_dump_json(),
    )


def _fields(redis_client: redis.Redis, stream: str) -> list[dict[bytes, bytes]]:
    entries: list[tuple[bytes, dict[bytes, bytes]]] = redis_client.xrange(stream)  # type: ignore[assignment]
    return [fields for _, fields in entries]


def test_batch_lands_once_with_id_and_record(redis_client: redis.Redis, key_prefix: str) -> None:
    stream = f"{key_prefix}:articles"
    store = RedisStreamStore(redis_client, stream, maxlen=0, marker_ttl=600)
    deliveries = [_delivery(i, text="Sergueï Lavrov, 東京 " * i) for i in range(5)]

    result = store.write(deliveries)

    assert result.written == [d.entry_id for d in deliveries]
    assert result.rejected == {} and result.retry_after is None
    entries = _fields(redis_client, stream)
    assert [e[b"id"].decode() for e in entries] == [d.record_id for d in deliveries]
    assert [e[b"record"].decode("utf-8") for e in entries] == [d.payload for d in deliveries]
    assert json.loads(entries[3][b"record"])["text"] == "Sergueï Lavrov, 東京 " * 3
    marker = f"{stream}:delivered:{deliveries[0].record_id}:h0"
    assert 0 < redis_client.ttl(marker) <= 600


def test_redelivery_adds_nothing_and_changed_text_adds(redis_client: redis.Redis, key_prefix: str) -> None:
    stream = f"{key_prefix}:articles"
    store = RedisStreamStore(redis_client, stream, maxlen=0, marker_ttl=600)
    deliveries = [_delivery(i) for i in range(10)]
    store.write(deliveries)

    again = store.write(deliveries)  # the outbox hands the batch over again after a crash

    assert again.written == [d.entry_id for d in deliveries]  # already there counts as written
    assert redis_client.xlen(stream) == 10
    assert store.added == 10

    republished = [_delivery(2, content_hash="h1", text="new text", seq=1), _delivery(3, seq=1)]
    result = store.write(republished)

    assert result.written == [d.entry_id for d in republished]
    assert redis_client.xlen(stream) == 11  # record 2's new text added; record 3 unchanged
    last = _fields(redis_client, stream)[-1]
    assert last[b"id"] == b"rec00002" and json.loads(last[b"record"])["text"] == "new text"


def test_missing_content_hash_is_its_own_marker(redis_client: redis.Redis, key_prefix: str) -> None:
    stream = f"{key_prefix}:articles"
    store = RedisStreamStore(redis_client, stream, maxlen=0, marker_ttl=600)
    store.write([_delivery(1, content_hash=None)])
    store.write([_delivery(1, content_hash=None)])
    assert redis_client.xlen(stream) == 1
    assert redis_client.exists(f"{stream}:delivered:rec00001:")


def test_content_hash_is_read_like_the_parsed_record() -> None:
    tricky = 'a quoted "content_hash":"nope" in the text'
    record = ArticleRecord(id="r", url="https://example.org/", text=tricky, content_hash="ab12")
    payloads = [
        record.model_dump_json(),
        json.dumps(record.model_dump(mode="json")),  # other spacing
        record.model_copy(update={"content_hash": None}).model_dump_json(),
        json.dumps({"id": "r", "pipeline": {"content_hash": "nested"}, "content_hash": "cd34"}),
        json.dumps({"id": "r", "content_hash": "not a hex / id value"}),
        json.dumps({"id": "r"}),
    ]
    for payload in payloads:
        assert content_hash_of(payload) == (json.loads(payload).get("content_hash") or "")


def test_dead_letter_entries_are_acknowledged_unwritten(redis_client: redis.Redis, key_prefix: str) -> None:
    stream = f"{key_prefix}:articles"
    store = RedisStreamStore(redis_client, stream, maxlen=0, marker_ttl=600)
    letter = Delivery(entry_id="1700000000001-0", kind="dead_letter", record_id="x", batch="b1", payload="{}")
    assert store.write([letter, _delivery(1)]).written == [letter.entry_id, "1700000000000-1"]
    assert redis_client.xlen(stream) == 1


def test_maxlen_trims_approximately(redis_client: redis.Redis, key_prefix: str) -> None:
    stream = f"{key_prefix}:articles"
    store = RedisStreamStore(redis_client, stream, maxlen=100, marker_ttl=600)
    deliveries = [_delivery(i) for i in range(2000)]

    result = store.write(deliveries)  # several script calls in one pipeline

    assert len(result.written) == 2000 and store.added == 2000
    assert 100 <= redis_client.xlen(stream) < 500
    last = _fields(redis_client, stream)[-1]
    assert last[b"id"] == b"rec01999"


def test_redis_down_is_store_unavailable() -> None:
    # No retries: redis-py's default ones back off for ~4 s before giving up.
    client = redis.Redis(port=1, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
    store = RedisStreamStore(client, "test-down:articles", maxlen=0, marker_ttl=600)
    with pytest.raises(StoreUnavailable) as caught:
        store.write([_delivery(1)])
    assert caught.value.reason == "store_error"
    assert store.write([]).written == []  # nothing to write needs no Redis


def test_from_settings_uses_stream_name_and_outbox_retention(
    settings: Settings, redis_client: redis.Redis
) -> None:
    store = RedisStreamStore.from_settings(settings)
    assert store.stream == f"{settings.key_prefix}:articles"
    assert store.maxlen == settings.redis_stream_maxlen
    assert store.marker_ttl >= settings.outbox_retention
    store.write([_delivery(1)])
    assert redis_client.xlen(store.stream) == 1
    store.close()
