"""Page bodies in Redis (the store adapters have their own files: tests/test_store_*.py)."""

from __future__ import annotations

import pytest
import redis

from config import Settings
from stores.bodies import BodyStore
from tasks.errors import PermanentError


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
