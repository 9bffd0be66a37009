"""The per-host schedule in Redis: unit behaviour, and two real worker processes sharing it."""

from __future__ import annotations

import time
from pathlib import Path

import redis

from config import Settings
from stores.ledger import Ledger
from stores.ratelimit import HostRateLimiter
from stores.redis_client import client_for
from tests.support.hostile_server import serve_hostile
from tests.support.workers import running_workers
from worker.producer import enqueue


def test_slots_are_spaced_by_the_interval(redis_client: redis.Redis, key_prefix: str) -> None:
    limiter = HostRateLimiter(redis_client, key_prefix)
    first = limiter.reserve("example.org", 0.5, horizon=10)
    second = limiter.reserve("Example.org", 0.5, horizon=10)
    third = limiter.reserve("example.org", 0.5, horizon=10)
    other = limiter.reserve("example.net", 0.5, horizon=10)
    assert first.booked and first.wait == 0
    assert second.booked and 0.45 < second.wait <= 0.5
    assert third.booked and 0.95 < third.wait <= 1.0
    assert other.booked and other.wait == 0


def test_slots_past_the_horizon_are_not_booked(redis_client: redis.Redis, key_prefix: str) -> None:
    limiter = HostRateLimiter(redis_client, key_prefix)
    for _ in range(3):
        limiter.reserve("busy.example", 1.0, horizon=1.5)
    full = limiter.reserve("busy.example", 1.0, horizon=1.5)
    assert not full.booked and 1.9 < full.wait <= 2.0
    # Not booking left the schedule as it was.
    again = limiter.reserve("busy.example", 1.0, horizon=1.5)
    assert not again.booked and again.wait <= full.wait


def test_two_workers_share_the_host_rate(settings: Settings, tmp_path: Path) -> None:
    rate, urls = 4.0, 24
    settings = settings.model_copy(update={"host_rate": rate, "fetch_defer_horizon": 2.0})
    with (
        serve_hostile() as server,
        running_workers(
            settings, tmp_path / "logs", queues=("fetch", "fetch"), concurrency={"fetch": 16}
        ) as workers,
    ):
        started = time.monotonic()  # the server stamps arrivals with time.monotonic() too
        batch = enqueue([server.url(f"/page/{index}") for index in range(urls)], settings=settings).batch
        ledger = Ledger(client_for(settings), settings.key_prefix, settings.batch_ttl)
        deadline = time.monotonic() + 90
        while True:
            status = ledger.status(batch)
            assert status is not None
            if status.stages.get("fetch", 0) + status.outcomes.get("dead", 0) >= urls:
                break
            assert all(process.poll() is None for process in workers), "a worker died"
            assert time.monotonic() < deadline, status.as_dict()
            time.sleep(0.2)
        times = server.hit_times("/")  # pages and robots.txt: every request counts
    assert status.stages["fetch"] == urls and not status.reasons
    assert server.hits["/robots.txt"] == 1
    # The shared schedule books the host's slots 1/rate apart, from both processes, and a
    # request can only arrive after its slot: the k-th arrival comes k/rate after the start
    # at the earliest, however loaded the machine (load only delays). Two processes each
    # keeping the rate alone would send twice as fast and break this. Windows of arrivals
    # are not counted: on a busy machine delayed requests can arrive bunched.
    arrivals = sorted(times)
    assert len(arrivals) == urls + 1  # the pages and one robots.txt
    early = [
        (k, round(when - started, 3)) for k, when in enumerate(arrivals) if when - started < k / rate - 0.02
    ]
    assert not early, early
    # Both processes did part of the work (the schedule is what kept them in step).
    logs = [path.read_text() for path in sorted((tmp_path / "logs").glob("*.log"))]
    assert len(logs) == 2 and all('"stage.done"' in text for text in logs)
    assert any('"fetch.deferred"' in text for text in logs)


def test_push_back_pauses_the_host_for_everyone(redis_client: redis.Redis, key_prefix: str) -> None:
    limiter = HostRateLimiter(redis_client, key_prefix)
    limiter.push_back("slow.example", 3.0)
    paused = limiter.reserve("slow.example", 0.1, horizon=10)
    assert paused.booked and 2.8 < paused.wait <= 3.0
    limiter.push_back("slow.example", 1.0)  # a shorter pause never pulls booked slots earlier
    later = limiter.reserve("slow.example", 0.1, horizon=10)
    assert later.booked and later.wait > paused.wait
