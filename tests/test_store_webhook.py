"""The ``webhook`` store against a real receiver on loopback: signatures, retries, refusals."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest

from stores.base import Delivery, StoreUnavailable
from stores.webhook import MAX_RETRY_AFTER, WebhookStore, retry_after, sign
from tasks.record import ArticleRecord
from tests.support.webhook_receiver import Behaviour, WebhookReceiver, always, fail_first, serve_webhook

SECRET = "s3cret-ключ"

#: ``make_store(url, concurrency=4, timeout=5.0)``: a store closed after the test.
MakeStore = Callable[..., WebhookStore]


def _deliveries(count: int) -> list[Delivery]:
    out = []
    for index in range(count):
        record = ArticleRecord(
            id=f"rec{index:04d}",
            url=f"https://example.org/{index}",
            text=f"Sergueï Lavrov à 東京, article {index}",
            content_hash=f"h{index}",
        )
        out.append(
            Delivery(
                entry_id=f"1700000000000-{index}",
                kind="record",
                record_id=record.id,
                batch="b1",
                payload=record.model_dump_json(),
            )
        )
    return out


@pytest.fixture
def make_store() -> Iterator[MakeStore]:
    stores: list[WebhookStore] = []

    def make(url: str, concurrency: int = 4, timeout: float = 5.0) -> WebhookStore:
        store = WebhookStore(
            url, SECRET, concurrency=concurrency, timeout=timeout, user_agent="ingest-test/1"
        )
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_all_accepted_with_valid_signatures(make_store: MakeStore) -> None:
    deliveries = _deliveries(6)
    with serve_webhook(SECRET) as receiver:
        result = make_store(receiver.url).write(deliveries)

    assert sorted(result.written) == sorted(d.entry_id for d in deliveries)
    assert result.rejected == {} and result.retry_after is None
    assert receiver.accepted == {d.record_id: json.loads(d.payload) for d in deliveries}
    posts = receiver.posts
    assert len(posts) == 6 and all(post.signature_ok and post.status == 200 for post in posts)
    post = posts[0]
    assert post.headers["content-type"] == "application/json"
    assert post.headers["user-agent"] == "ingest-test/1"
    payload = next(d.payload for d in deliveries if d.record_id == post.key)
    assert post.headers["x-ingest-signature"] == sign(SECRET, payload.encode("utf-8"))


def test_a_wrong_secret_is_refused_by_the_receiver(make_store: MakeStore) -> None:
    with serve_webhook("another secret") as receiver:
        result = make_store(receiver.url).write(_deliveries(2))
    assert result.written == [] and set(result.rejected.values()) == {'HTTP 401: {"status": 401}'}
    assert not any(post.signature_ok for post in receiver.posts)


def test_first_attempt_503_is_retried_then_written(make_store: MakeStore) -> None:
    deliveries = _deliveries(5)
    with serve_webhook(SECRET, behaviour=fail_first(503)) as receiver:
        store = make_store(receiver.url)
        first = store.write(deliveries)
        assert first.written == [] and first.rejected == {} and first.retry_after is None
        second = store.write(deliveries)
        assert sorted(second.written) == sorted(d.entry_id for d in deliveries)
        assert set(receiver.accepted) == {d.record_id for d in deliveries}

        third = store.write(deliveries)  # a redelivery after the acknowledgement was lost
        assert len(third.written) == 5
        assert len(receiver.accepted) == 5 and len(receiver.posts) == 15
        assert sorted(p.status for p in receiver.posts) == [200] * 10 + [503] * 5


@pytest.mark.parametrize("status", [429, 408, 500, 502])
def test_retryable_statuses_are_left_over(make_store: MakeStore, status: int) -> None:
    with serve_webhook(SECRET, behaviour=always(status)) as receiver:
        result = make_store(receiver.url).write(_deliveries(3))
    assert result.written == [] and result.rejected == {} and result.retry_after is None


def test_retry_after_is_the_largest_hint(make_store: MakeStore) -> None:
    hints = {"rec0000": 7, "rec0001": 3}
    with serve_webhook(SECRET, behaviour=lambda key, attempt: (429, hints.get(key, 1))) as receiver:
        result = make_store(receiver.url).write(_deliveries(3))
    assert result.retry_after == 7
    assert result.written == [] and result.rejected == {}


def test_retry_after_forms() -> None:
    now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    assert retry_after("7") == 7
    assert retry_after(format_datetime(now + timedelta(seconds=120), usegmt=True), now) == 120
    assert retry_after(format_datetime(now - timedelta(seconds=5), usegmt=True), now) == 0
    assert retry_after("999999") == MAX_RETRY_AFTER
    assert retry_after(format_datetime(now + timedelta(days=2), usegmt=True), now) == MAX_RETRY_AFTER
    assert retry_after("soon") is None and retry_after(None) is None


def test_4xx_and_3xx_are_rejected_with_the_status(make_store: MakeStore) -> None:
    statuses = {"rec0000": 400, "rec0001": 302, "rec0002": 200}
    deliveries = _deliveries(3)
    with serve_webhook(SECRET, behaviour=lambda key, attempt: statuses[key]) as receiver:
        result = make_store(receiver.url).write(deliveries)
    assert result.written == [deliveries[2].entry_id]
    assert set(result.rejected) == {deliveries[0].entry_id, deliveries[1].entry_id}
    assert result.rejected[deliveries[0].entry_id].startswith("HTTP 400: ")
    assert result.rejected[deliveries[1].entry_id].startswith("HTTP 302: ")
    assert len(receiver.posts) == 3  # the redirect was not followed


def test_receiver_not_listening_is_store_unavailable(make_store: MakeStore) -> None:
    store = make_store(f"http://127.0.0.1:{_closed_port()}/hook")
    with pytest.raises(StoreUnavailable) as caught:
        store.write(_deliveries(3))
    assert caught.value.reason == "store_error"


def test_timeouts_everywhere_are_unavailable_some_are_retried(make_store: MakeStore) -> None:
    def slow_for(keys: set[str]) -> Behaviour:
        def behaviour(key: str, attempt: int) -> int:
            if key in keys:
                time.sleep(1.0)
            return 200

        return behaviour

    deliveries = _deliveries(3)
    everyone = slow_for({"rec0000", "rec0001", "rec0002"})
    with serve_webhook(SECRET, behaviour=everyone) as receiver, pytest.raises(StoreUnavailable):
        make_store(receiver.url, timeout=0.3).write(deliveries)
    with serve_webhook(SECRET, behaviour=slow_for({"rec0001"})) as receiver:
        result = make_store(receiver.url, timeout=0.3).write(deliveries)
    assert sorted(result.written) == [deliveries[0].entry_id, deliveries[2].entry_id]
    assert result.rejected == {}


def test_requests_run_concurrently(make_store: MakeStore) -> None:
    def slow(key: str, attempt: int) -> int:
        time.sleep(0.3)
        return 200

    deliveries = _deliveries(16)
    with serve_webhook(SECRET, behaviour=slow) as receiver:
        result = make_store(receiver.url, concurrency=8).write(deliveries)
    assert len(result.written) == 16 and len(receiver.accepted) == 16
    assert 2 <= receiver.max_in_flight <= 8


def test_dead_letters_are_acknowledged_unposted(make_store: MakeStore) -> None:
    letter = Delivery(entry_id="1700000000001-0", kind="dead_letter", record_id="x", batch="b1", payload="{}")
    with serve_webhook(SECRET) as receiver:
        result = make_store(receiver.url).write([letter])
    assert result.written == [letter.entry_id] and receiver.posts == []


def test_bad_configuration_fails_at_construction() -> None:
    with pytest.raises(ValueError):
        WebhookStore("ftp://example.org/", SECRET, concurrency=1, timeout=1, user_agent="x")
    with pytest.raises(ValueError):
        WebhookStore("http://127.0.0.1/hook", "", concurrency=1, timeout=1, user_agent="x")


def test_connections_are_kept_alive_and_reopened_once_closed(
    make_store: MakeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    accepted: list[socket.socket] = []
    get_request = WebhookReceiver.get_request

    def counting_get_request(self: WebhookReceiver) -> tuple[socket.socket, Any]:
        connection, address = get_request(self)
        accepted.append(connection)
        return connection, address

    monkeypatch.setattr(WebhookReceiver, "get_request", counting_get_request)
    deliveries = _deliveries(60)
    with serve_webhook(SECRET) as receiver:
        store = make_store(receiver.url, concurrency=4)
        for start in range(0, 40, 10):
            assert len(store.write(deliveries[start : start + 10]).written) == 10
        assert 1 <= len(accepted) <= 4  # one connection per worker thread, kept from batch to batch
        kept = len(accepted)
        for connection in accepted:  # the receiver drops its idle connections
            connection.shutdown(socket.SHUT_RDWR)
        time.sleep(0.1)
        result = store.write(deliveries[40:])
    assert len(result.written) == 20 and result.rejected == {}  # reopened, not failed
    assert len(receiver.accepted) == 60 and len(receiver.posts) == 60
    assert kept < len(accepted) <= kept + 4
