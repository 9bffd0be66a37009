"""The shared Redis client keeps one connection pool per thread, and works from many threads.

Real Redis: the client of :func:`stores.redis_client.client_for` is shared by every thread of
a fetch worker, each thread borrowing from its own pool. Commands, pipelines and Lua scripts
must all work from many threads at once, and each thread keeps to its own connection.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import redis

from config import Settings
from stores.redis_client import PerThreadPoolRedis, client_for

THREADS = 20
ROUNDS = 200


def _in_threads(count: int, work: Callable[[int], None]) -> None:
    """Run ``work(index)`` in ``count`` threads started together; re-raise the first error."""
    errors: list[BaseException] = []
    start = threading.Barrier(count)

    def run(index: int) -> None:
        try:
            start.wait(timeout=10)
            work(index)
        except BaseException as exc:  # reported to the test below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a thread is stuck"
    if errors:
        raise errors[0]


def test_one_shared_client_per_url(settings: Settings) -> None:
    client = client_for(settings)
    assert isinstance(client, PerThreadPoolRedis)
    assert client_for(settings.model_copy(update={"fetch_concurrency": 3})) is client


def test_each_thread_has_its_own_pool(settings: Settings) -> None:
    client = client_for(settings)
    main_pool = client.connection_pool
    assert client.connection_pool is main_pool
    # Both threads stay alive until both have looked (a finished thread's pool could be
    # collected and its id reused); the pool objects themselves are kept for the asserts.
    both_looked = threading.Barrier(2)
    seen: dict[int, tuple[redis.ConnectionPool, redis.ConnectionPool]] = {}

    def look(index: int) -> None:
        first = client.connection_pool
        client.ping()
        seen[index] = (first, client.connection_pool)
        both_looked.wait(timeout=10)

    _in_threads(2, look)
    (a_first, a_again), (b_first, b_again) = seen[0], seen[1]
    assert a_first is a_again and b_first is b_again  # the same pool within a thread
    assert a_first is not b_first  # another pool in another thread
    assert main_pool is not a_first and main_pool is not b_first
    assert client.connection_pool is main_pool  # the main thread's pool is untouched


def test_commands_pipelines_and_scripts_from_many_threads(settings: Settings) -> None:
    client = client_for(settings)
    plain, piped, scripted = (settings.key("threads", name) for name in ("plain", "piped", "scripted"))
    # A script text new to the server, so that its first calls go through NOSCRIPT + load.
    script = client.register_script(
        f"-- {settings.key_prefix}\nreturn redis.call('INCRBY', KEYS[1], ARGV[1])"
    )
    connection_ids: dict[int, set[int]] = {}

    def hammer(index: int) -> None:
        own_list = settings.key("threads", "list", str(index))
        ids = connection_ids.setdefault(index, set())
        for round_ in range(ROUNDS):
            client.incr(plain)
            pipe = client.pipeline()
            pipe.incr(piped)
            pipe.rpush(own_list, round_)
            total, length = pipe.execute()
            assert total >= 1 and length == round_ + 1
            assert int(script(keys=[scripted], args=[1])) >= 1
            if round_ % 50 == 0:
                ids.add(int(client.client_id()))

    _in_threads(THREADS, hammer)

    expected = THREADS * ROUNDS
    assert [int(client.get(key) or 0) for key in (plain, piped, scripted)] == [expected] * 3
    for index in range(THREADS):
        values = client.lrange(settings.key("threads", "list", str(index)), 0, -1)
        assert [int(value) for value in values] == list(range(ROUNDS))
    # Each thread kept one connection of its own for all its commands, pipelines and scripts.
    assert all(len(ids) == 1 for ids in connection_ids.values())
    assert len(set().union(*connection_ids.values())) == THREADS


def test_a_channel_whose_connection_was_closed_raises_a_connection_error() -> None:
    """Kombu closes the connection under a channel when Redis goes away; restoring the unacked
    messages then builds a client: that must be a connection error (ignored, the consumer
    reconnects), not an AttributeError that stops the worker."""
    import kombu
    import pytest
    import redis as redis_lib

    import worker.app  # noqa: F401  (registers worker.broker's transport)
    from worker.broker import Channel

    with kombu.Connection("redis://127.0.0.1:6379/15") as connection:
        channel = connection.default_channel
        assert isinstance(channel, Channel)
        channel._pool = None
        channel._sync_client = None
        channel.connection.client = None  # what kombu leaves after closing the connection
        with pytest.raises(redis_lib.ConnectionError):
            channel._create_client()
