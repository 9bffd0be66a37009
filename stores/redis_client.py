"""One Redis client per process, from the settings in force; one connection pool per thread."""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import Any

import redis

from config import Settings

#: Connections one thread may hold at once (it normally holds one, for one command).
_CONNECTIONS_PER_THREAD = 4


class PerThreadPoolRedis(redis.Redis):
    """A ``redis.Redis`` whose connection pool is the calling thread's own.

    A fetch worker runs 200 threads. With one shared ``ConnectionPool`` they queued on the
    pool's lock, which redis-py holds while it records metrics and dispatches events: a
    thread preempted inside it (the GIL switches every 5 ms) stalls every other thread's
    next command. ``py-spy --idle`` on ``bench/fetch.py`` showed fetch threads spending 95% of
    their time waiting to take or give back a connection, and 2% waiting for the web.
    With a pool per thread no lock is shared, and each thread keeps its connection open.
    Every redis-py operation (commands, pipelines, scripts, pub/sub) goes through
    ``connection_pool``, so this one property is the whole change.
    """

    def __init__(self, url: str, **pool_kwargs: Any) -> None:
        self._url = url
        self._pool_kwargs = pool_kwargs
        self._local = threading.local()
        super().__init__(connection_pool=self._new_pool())

    def _new_pool(self) -> redis.ConnectionPool:
        return redis.ConnectionPool.from_url(self._url, **self._pool_kwargs)

    @property
    def connection_pool(self) -> redis.ConnectionPool:
        """This thread's pool, created on its first command."""
        pool: redis.ConnectionPool | None = getattr(self._local, "pool", None)
        if pool is None:
            pool = self._local.pool = self._new_pool()
        return pool

    @connection_pool.setter
    def connection_pool(self, pool: redis.ConnectionPool) -> None:
        self._local.pool = pool


@lru_cache(maxsize=8)
def redis_client(url: str) -> redis.Redis:
    """The client for ``url`` (``redis://``, ``rediss://`` or ``unix://``), shared by threads.

    In a gevent-patched process (``INGEST_FETCH_POOL=gevent``) ``threading.local`` is per
    greenlet and Celery starts a greenlet per task, so a pool per "thread" would be a new
    connection per task; greenlets do not preempt each other inside the pool's lock, so
    there they share one pool.
    """
    options: dict[str, Any] = {"health_check_interval": 30, "socket_timeout": 30}
    if _gevent_patched():
        return redis.Redis.from_url(url, **options)
    return PerThreadPoolRedis(url, max_connections=_CONNECTIONS_PER_THREAD, **options)


def _gevent_patched() -> bool:
    """True when gevent has patched ``threading`` in this process."""
    try:
        from gevent import monkey
    except ImportError:
        return False
    return bool(monkey.is_module_patched("threading"))


def client_for(settings: Settings) -> redis.Redis:
    """The client of the Redis these settings point at."""
    return redis_client(settings.effective_redis_url)


def as_bytes(value: object) -> bytes:
    """A Redis reply as bytes (clients here never set ``decode_responses``)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8")
    raise TypeError(f"unexpected Redis reply {type(value).__name__}")


def as_text(value: object, errors: str = "strict") -> str:
    """A Redis reply decoded as UTF-8."""
    return as_bytes(value).decode("utf-8", errors)
