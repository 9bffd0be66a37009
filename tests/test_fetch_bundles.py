"""Fetch bundles: several URLs per fetch message, each URL still ending exactly once.

The pure helpers (:func:`worker.pipeline.bundle_size`, :func:`worker.pipeline.bundle_jobs`)
are checked directly; the rest on real parts: real Redis queues, real ``ingest worker``
processes, real loopback HTTP servers on several loopback addresses (one host each).
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis

from config import Settings
from stores.ledger import Ledger
from stores.redis_client import client_for
from stores.registry import build_store
from tasks.record import ArticleRecord, Job
from tests.support.hostile_server import HostileServer, serve_hostile
from tests.support.workers import running_workers, settings_env, wait_for_batch
from worker.app import app
from worker.delivery import StoreConsumer
from worker.pipeline import bundle_jobs, bundle_size
from worker.producer import enqueue, new_job
from worker.stage import outbox_for

ROOT = Path(__file__).resolve().parents[1]
#: One loopback test server per address: bundles are dealt by host name, not by port.
HOSTS = ("127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4")


# --- bundle_size --------------------------------------------------------------------------------
def _sized(concurrency: int, bundle: int) -> Settings:
    return Settings(fetch_concurrency=concurrency, fetch_bundle_size=bundle, _env_file=None)  # type: ignore[call-arg]


def test_bundle_size_is_one_until_every_pool_slot_can_have_a_bundle() -> None:
    settings = _sized(200, 8)
    assert [bundle_size(total, settings) for total in (0, 1, 10, 199, 200, 399)] == [1] * 6
    assert bundle_size(400, settings) == 2
    assert bundle_size(1000, settings) == 5


def test_bundle_size_is_capped_by_fetch_bundle_size() -> None:
    settings = _sized(200, 8)
    assert bundle_size(1600, settings) == 8
    assert bundle_size(1_000_000, settings) == 8
    assert bundle_size(20, _sized(2, 4)) == 4


def test_fetch_bundle_size_one_turns_bundling_off() -> None:
    settings = _sized(2, 1)
    assert [bundle_size(total, settings) for total in (1, 4, 1000, 1_000_000)] == [1] * 4


# --- bundle_jobs --------------------------------------------------------------------------------
def _jobs(urls: list[str]) -> list[Job]:
    return [
        Job(batch="b-unit", record=ArticleRecord(id=f"r{index}", url=url)) for index, url in enumerate(urls)
    ]


def _host(job: Job) -> str | None:
    return urlsplit(job.record.url).hostname


def test_bundle_jobs_deals_hosts_round_robin() -> None:
    # Given grouped by host (as a feed of one site after another would be), unevenly.
    counts = {"a.example": 3, "b.example": 3, "c.example": 2, "d.example": 2, "e.example": 2}
    urls = [f"https://{host}/story/{n}" for host, count in counts.items() for n in range(count)]
    jobs = _jobs(urls)

    bundles = bundle_jobs(jobs, 4)

    assert [len(bundle) for bundle in bundles] == [4, 4, 4]
    dealt = [job for bundle in bundles for job in bundle]
    assert Counter(job.record.id for job in dealt) == Counter(job.record.id for job in jobs)
    for bundle in bundles:  # 5 hosts >= 4 per bundle: no host twice in a bundle
        assert len({_host(job) for job in bundle}) == len(bundle), [job.record.url for job in bundle]
    for host in counts:  # a host's URLs keep their order
        assert [job.record.url for job in dealt if _host(job) == host] == [
            url for url in urls if urlsplit(url).hostname == host
        ]
    assert [job.record.url for job in bundles[0]] == [f"https://{host}/story/0" for host in list(counts)[:4]]


def test_bundle_jobs_keeps_order_within_host_when_input_is_interleaved() -> None:
    urls = [
        "https://a.example/1",
        "https://b.example/1",
        "https://a.example/2",
        "https://a.example/3",
        "https://c.example/1",
        "https://b.example/2",
        "https://A.EXAMPLE/4",  # the same host, spelled in capitals
    ]
    bundles = bundle_jobs(_jobs(urls), 3)
    dealt = [job.record.url for bundle in bundles for job in bundle]
    assert sorted(dealt) == sorted(urls)
    assert [url for url in dealt if url.lower().startswith("https://a.example")] == [
        "https://a.example/1",
        "https://a.example/2",
        "https://a.example/3",
        "https://A.EXAMPLE/4",
    ]
    assert [len(bundle) for bundle in bundles] == [3, 3, 1]
    assert len({urlsplit(url).hostname for url in dealt[:3]}) == 3


def test_bundle_jobs_sizes_one_and_larger_than_the_batch() -> None:
    jobs = _jobs([f"https://h{n % 3}.example/{n}" for n in range(7)])
    singles = bundle_jobs(jobs, 1)
    assert [len(bundle) for bundle in singles] == [1] * 7
    assert sorted(bundle[0].record.id for bundle in singles) == sorted(job.record.id for job in jobs)
    whole = bundle_jobs(jobs, 50)
    assert len(whole) == 1 and sorted(job.record.id for job in whole[0]) == sorted(j.record.id for j in jobs)
    assert bundle_jobs([], 4) == []


def test_bundle_jobs_takes_urls_without_a_host() -> None:
    urls = [
        "not a url",
        "",
        "http://[::1",  # urlsplit raises ValueError on it
        "ftp://",
        "mailto:someone@example.org",
        "https://ok.example/a",
        "https://ok.example/b",
        "http://[fe80::1%25eth0]:99999/",  # bad port: only .port would raise
    ]
    jobs = _jobs(urls)
    bundles = bundle_jobs(jobs, 2)
    dealt = [job for bundle in bundles for job in bundle]
    assert Counter(job.record.id for job in dealt) == Counter(job.record.id for job in jobs)
    assert all(1 <= len(bundle) <= 2 for bundle in bundles)


# --- helpers for the real-worker tests -----------------------------------------------------------
@dataclass(frozen=True)
class QueuedFetch:
    """One ``ingest.fetch`` message waiting in the Redis fetch queue."""

    task_id: str
    retries: int
    jobs: list[dict[str, Any]]
    errbacks: list[str]

    @property
    def urls(self) -> list[str]:
        return [job["record"]["url"] for job in self.jobs]


def _queued_fetches(client: redis.Redis, queue: str) -> list[QueuedFetch]:
    """The fetch messages in ``queue``, decoded from kombu's envelope (oldest first)."""
    found = []
    for raw in reversed(client.lrange(queue, 0, -1)):  # kombu LPUSHes
        message = json.loads(raw)
        assert message["headers"]["task"] == "ingest.fetch"
        args, _kwargs, embed = json.loads(base64.b64decode(message["body"]))
        found.append(
            QueuedFetch(
                task_id=message["headers"]["id"],
                retries=int(message["headers"]["retries"]),
                jobs=args[0],
                errbacks=[errback["task"] for errback in embed.get("errbacks") or []],
            )
        )
    return found


def _leftovers(client: redis.Redis, settings: Settings, timeout: float = 15.0) -> list[str]:
    """Messages of this test's queues still queued or unacked once they had ``timeout`` to drain."""
    queues = (settings.fetch_queue, settings.cpu_queue)
    deadline = time.monotonic() + timeout
    while True:
        left = [f"{queue}: {count} queued" for queue in queues if (count := client.llen(queue))]
        for value in client.hvals("unacked"):  # kombu's (global) hash of delivered, unacked messages
            message, _exchange, routing_key = json.loads(value)
            if routing_key in queues:
                left.append(f"{routing_key}: unacked {message['headers']['task']}")
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def _log_events(log_dir: Path) -> list[dict[str, Any]]:
    """The JSON lines the workers logged, in order (Celery's own banner lines skipped)."""
    events = []
    for path in sorted(log_dir.glob("worker-*.log")):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    events.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
    return events


def _fetch_urls_by_task(events: list[dict[str, Any]]) -> dict[str, set[str]]:
    """Task id -> the URLs the fetch stage logged about under it (done, retry, deferral, dead letter)."""
    found: dict[str, set[str]] = defaultdict(set)
    for event in events:
        if event.get("stage") == "fetch" and event.get("task_id") and event.get("url"):
            found[event["task_id"]].add(event["url"])
    return found


def _articles(settings: Settings) -> list[dict[str, Any]]:
    path = settings.output_dir / "articles.jsonl"
    return (
        [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []
    )


@contextmanager
def _servers(count: int) -> Iterator[list[HostileServer]]:
    with ExitStack() as stack:
        yield [stack.enter_context(serve_hostile(host)) for host in HOSTS[:count]]


@pytest.fixture
def bundle_settings(settings: Settings) -> Settings:
    """Small pools and bundles, so a batch of 20 goes as 5 bundles of 4; fast retries;
    no NER model to load (entities are not the subject here)."""
    return settings.model_copy(
        update={
            "fetch_concurrency": 2,
            "fetch_bundle_size": 4,
            "max_retries": 3,
            "retry_backoff_base": 0.1,
            "fetch_connect_timeout": 2.0,
            "fetch_read_timeout": 2.0,
            "fetch_deadline": 5.0,
            "spacy_models": {},
            "entities_fallback": False,
        }
    )


# --- a batch in bundles, on real workers ---------------------------------------------------------
@pytest.mark.integration
def test_bundled_batch_ends_each_url_once(
    bundle_settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    settings = bundle_settings
    with _servers(4) as servers:
        first, second, third, fourth = servers
        paths = {
            first: ["/page/h1-0", "/page/h1-1", "/page/h1-2", "/nothing-here"],
            second: ["/page/h2-0", "/page/h2-1", "/page/h2-2", "/page/h2-3", "/503"],
            third: ["/page/h3-0", "/page/h3-1", "/page/h3-2", "/page/h3-3", "/fake.pdf"],
            fourth: ["/page/h4-0", "/page/h4-1", "/page/h4-2", "/page/h4-3", "/page/h4-4"],
        }
        # One site after another, as a feed list would give them; one URL twice.
        # Nothing listens on port 1 of the first host: refused on every try.
        unreachable = f"http://{HOSTS[0]}:1/page/h1-3"
        urls = [server.url(path) for server, server_paths in paths.items() for path in server_paths]
        urls.insert(4, unreachable)
        repeated = third.url("/page/h3-0")
        flaky = second.url("/503")
        dead = {
            first.url("/nothing-here"): ("http_error", 1),
            unreachable: ("connect_error", settings.max_retries + 1),
            third.url("/fake.pdf"): ("not_html", 1),
        }
        published = [url for url in urls if url not in dead]

        result = enqueue([*urls, repeated], settings=settings)
        assert (result.total, result.repeated, result.seen) == (20, 1, 0)

        queued = _queued_fetches(redis_client, settings.fetch_queue)
        assert [len(message.jobs) for message in queued] == [4] * 5
        assert sorted(url for message in queued for url in message.urls) == sorted(urls)
        for message in queued:  # dealt host by host: four hosts in every bundle
            assert len({urlsplit(url).hostname for url in message.urls}) == 4, message.urls
            assert message.errbacks == ["ingest.task_failed"] and message.retries == 0

        with running_workers(settings, tmp_path / "logs", concurrency={"fetch": 2, "cpu": 2}) as workers:
            status = wait_for_batch(settings, result.batch, timeout=60)
            leftovers = _leftovers(redis_client, settings)
            alive = [process.poll() is None for process in workers]
        hits = {server.base_url: dict(server.hits) for server in servers}

    assert all(alive)
    assert leftovers == []
    assert status["accounted"] == status["total"] == 20
    assert status["outcomes"] == {"published": 17, "duplicate": 0, "unchanged": 0, "seen": 0, "dead": 3}
    # 503, 503, then 200; and the unreachable URL's max_retries, counted across its re-sends.
    assert status["retries"] == {"fetch": 2 + settings.max_retries}

    articles = _articles(settings)
    assert sorted(article["url"] for article in articles) == sorted(published)
    assert len({article["id"] for article in articles}) == len(articles)
    assert all(article["http_status"] == 200 for article in articles)
    letters = Ledger(client_for(settings), settings.key_prefix, settings.batch_ttl).dead_letters(result.batch)
    assert sorted((letter.url, letter.reason, letter.stage, letter.attempts) for letter in letters) == sorted(
        (url, reason, "fetch", attempts) for url, (reason, attempts) in dead.items()
    )

    # Every page was asked for once (the repeated URL too), the flaky one until it answered.
    for server, server_paths in paths.items():
        asked = {path: count for path, count in hits[server.base_url].items() if path != "/robots.txt"}
        assert asked == {path: 3 if path == "/503" else 1 for path in server_paths}, server.base_url

    # The worker ran the bundles as sent: each bundle's task id covers its four URLs...
    events = _log_events(tmp_path / "logs")
    by_task = _fetch_urls_by_task(events)
    for message in queued:
        assert by_task[message.task_id] == set(message.urls)
    # ... and the transient failure went back alone: its retries ran under task ids of its own.
    flaky_tasks = [
        event["task_id"]
        for event in events
        if event.get("stage") == "fetch" and event.get("url") == flaky
        if event.get("event") in {"stage.retry", "stage.done"}
    ]
    assert len(flaky_tasks) == 3 and len(set(flaky_tasks)) == 3
    assert flaky_tasks[0] in {message.task_id for message in queued}
    assert [by_task[task_id] for task_id in flaky_tasks[1:]] == [{flaky}, {flaky}]


def _send_bundle(settings: Settings, jobs: list[Job], task_id: str, **options: Any) -> None:
    """One fetch message carrying ``jobs``, under a task id the test chose."""
    with app.connection_for_write(settings.effective_broker_url) as connection:
        app.send_task(
            "ingest.fetch",
            args=([job.model_dump(mode="json") for job in jobs],),
            task_id=task_id,
            queue=settings.fetch_queue,
            connection=connection,
            **options,
        )


def _fetched_under(events: list[dict[str, Any]]) -> dict[str, str]:
    """URL -> id of the task whose fetch stage completed it, from the worker logs."""
    return {
        event["url"]: event["task_id"]
        for event in events
        if event.get("stage") == "fetch" and event.get("event") == "stage.done"
    }


# --- a redelivered bundle is split ---------------------------------------------------------------
@pytest.mark.integration
def test_redelivered_bundle_is_split_and_each_url_ends_once(
    bundle_settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    settings = bundle_settings
    batch = f"b-split-{uuid.uuid4().hex[:8]}"
    ledger = Ledger(client_for(settings), settings.key_prefix, settings.batch_ttl)
    task_id = str(uuid.uuid4())
    with _servers(3) as servers:
        jobs = [new_job(server.url(f"/page/split-{index}"), batch) for index, server in enumerate(servers)]
        urls = [job.record.url for job in jobs]
        ledger.open_batch(batch, len(jobs))
        # As if this message had been delivered once already, to a worker that died with it.
        assert ledger.count_delivery(task_id, 0) == 1
        _send_bundle(settings, jobs, task_id)
        assert [message.task_id for message in _queued_fetches(redis_client, settings.fetch_queue)] == [
            task_id
        ]

        with running_workers(settings, tmp_path / "logs", concurrency={"fetch": 2, "cpu": 1}):
            status = wait_for_batch(settings, batch, timeout=60)
            leftovers = _leftovers(redis_client, settings)
        hits = [dict(server.hits) for server in servers]

    assert leftovers == []
    assert status["accounted"] == status["total"] == 3
    assert status["outcomes"] == {"published": 3, "duplicate": 0, "unchanged": 0, "seen": 0, "dead": 0}
    assert sorted(article["url"] for article in _articles(settings)) == sorted(urls)
    assert [server_hits.get(f"/page/split-{index}") for index, server_hits in enumerate(hits)] == [1, 1, 1]
    # The redelivery was seen once (the split message is not delivered again)...
    assert redis_client.get(f"{settings.key_prefix}:delivery:{task_id}:0") == b"2"
    events = _log_events(tmp_path / "logs")
    splits = [event for event in events if event.get("event") == "fetch.bundle_split"]
    assert [(event["urls"], event["deliveries"]) for event in splits] == [(3, 2)]
    # ... and each URL was fetched by a message of its own, none under the redelivered id.
    done = _fetched_under(events)
    assert sorted(done) == sorted(urls)
    assert len(set(done.values())) == 3 and task_id not in done.values()
    assert task_id not in _fetch_urls_by_task(events)


@pytest.mark.integration
def test_bundle_whose_task_crashes_goes_back_one_url_per_message(
    bundle_settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """The real errback path: Celery calls ``task_failed`` with the crashed bundle's request."""
    settings = bundle_settings
    batch = f"b-crash-{uuid.uuid4().hex[:8]}"
    ledger = Ledger(client_for(settings), settings.key_prefix, settings.batch_ttl)
    task_id = str(uuid.uuid4())
    with _servers(3) as servers:
        jobs = [new_job(server.url(f"/page/crash-{index}"), batch) for index, server in enumerate(servers)]
        urls = [job.record.url for job in jobs]
        ledger.open_batch(batch, len(jobs))
        # A slot_until that is not a time makes the task itself raise before any URL is
        # fetched: a crash no stage handler sees, so only the errback can save the URLs.
        _send_bundle(
            settings,
            jobs,
            task_id,
            kwargs={"slot_until": "not a time"},
            link_error=[dict(app.signature("ingest.task_failed"))],
        )
        with running_workers(settings, tmp_path / "logs", concurrency={"fetch": 2, "cpu": 1}):
            status = wait_for_batch(settings, batch, timeout=15)
            leftovers = _leftovers(redis_client, settings)
        hits = [dict(server.hits) for server in servers]

    assert leftovers == []
    assert status["outcomes"] == {"published": 3, "duplicate": 0, "unchanged": 0, "seen": 0, "dead": 0}
    assert sorted(article["url"] for article in _articles(settings)) == sorted(urls)
    assert [server_hits.get(f"/page/crash-{index}") for index, server_hits in enumerate(hits)] == [1, 1, 1]
    events = _log_events(tmp_path / "logs")
    splits = [event for event in events if event.get("event") == "failure.bundle_split"]
    assert [event["urls"] for event in splits] == [3]
    assert "TypeError" in splits[0]["error"]
    done = _fetched_under(events)
    assert sorted(done) == sorted(urls)
    assert len(set(done.values())) == 3 and task_id not in done.values()


@pytest.mark.integration
def test_a_state_error_requeues_the_url_and_its_errback_writes_no_dead_letter(
    bundle_settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """Celery calls the error callback, in the pool child, for a task that failed on a Redis
    error too, and Redis may be back by then: the URL must be requeued, not dead-lettered.

    The state error is made deterministic: the task's delivery counter is a key of the wrong
    type, so Redis refuses the first command of the task until the test deletes the key.
    """
    settings = bundle_settings
    batch = f"b-state-{uuid.uuid4().hex[:8]}"
    ledger = Ledger(client_for(settings), settings.key_prefix, settings.batch_ttl)
    task_id = str(uuid.uuid4())
    counter_key = f"{settings.key_prefix}:delivery:{task_id}:0"
    redis_client.rpush(counter_key, "not a counter")  # INCR on it: WRONGTYPE (a RedisError)
    with _servers(1) as servers:
        job = new_job(servers[0].url("/page/state-error"), batch)
        ledger.open_batch(batch, 1)
        _send_bundle(settings, [job], task_id, link_error=[dict(app.signature("ingest.task_failed"))])
        with running_workers(settings, tmp_path / "logs", concurrency={"fetch": 1, "cpu": 1}):
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:  # two failed runs, each with its errback called
                events = _log_events(tmp_path / "logs")
                if sum(event.get("event") == "failure.requeued_not_failed" for event in events) >= 2:
                    break
                time.sleep(0.2)
            early = ledger.status(batch)
            redis_client.delete(counter_key)
            status = wait_for_batch(settings, batch, timeout=60)
            leftovers = _leftovers(redis_client, settings)

    events = _log_events(tmp_path / "logs")
    assert sum(event.get("event") == "failure.requeued_not_failed" for event in events) >= 2
    assert sum(event.get("event") == "stage.requeued" for event in events) >= 2
    assert early is not None and early.as_dict()["accounted"] == 0, early  # nothing ended meanwhile
    assert leftovers == []
    assert status["outcomes"] == {"published": 1, "duplicate": 0, "unchanged": 0, "seen": 0, "dead": 0}
    assert ledger.dead_letters(batch) == []
    assert [article["url"] for article in _articles(settings)] == [job.record.url]


@pytest.mark.integration
def test_a_one_job_message_of_the_earlier_format_still_ends_right(
    bundle_settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """A fetch message queued before bundles (its argument one job, not a list) is fetched."""
    settings = bundle_settings
    batch = f"b-old-{uuid.uuid4().hex[:8]}"
    ledger = Ledger(client_for(settings), settings.key_prefix, settings.batch_ttl)
    with _servers(1) as servers:
        job = new_job(servers[0].url("/page/old-format"), batch)
        ledger.open_batch(batch, 1)
        with app.connection_for_write(settings.effective_broker_url) as connection:
            app.send_task(
                "ingest.fetch",
                args=(job.model_dump(mode="json"),),
                queue=settings.fetch_queue,
                connection=connection,
            )
        with running_workers(settings, tmp_path / "logs", concurrency={"fetch": 2, "cpu": 1}):
            status = wait_for_batch(settings, batch, timeout=60)
            leftovers = _leftovers(redis_client, settings)
    assert leftovers == []
    assert status["outcomes"]["published"] == 1
    assert [article["url"] for article in _articles(settings)] == [job.record.url]


# --- the errback: task_failed --------------------------------------------------------------------
#: Calls ``task_failed``'s body as Celery's worker would call the errback, in a process whose
#: settings (queue names, key prefix, broker) are the test's.
_CALL_TASK_FAILED = """
import json, sys
from types import SimpleNamespace
from worker.failures import task_failed
for call in json.loads(sys.argv[1]):
    request = SimpleNamespace(args=call["args"], task=call["task"], retries=call["retries"])
    task_failed.run(request, RuntimeError("boom"), None)
"""


def _call_task_failed(settings: Settings, calls: list[dict[str, Any]]) -> None:
    command = [sys.executable, "-c", _CALL_TASK_FAILED, json.dumps(calls)]
    subprocess.run(command, env=settings_env(settings), cwd=ROOT, check=True, timeout=120)


def _unit_jobs(batch: str, count: int) -> list[Job]:
    return [new_job(f"https://site{index}.example/story-{index}", batch) for index in range(count)]


def test_task_failed_sends_each_job_of_a_bundle_alone(settings: Settings, redis_client: redis.Redis) -> None:
    batch = "b-errback-bundle"
    jobs = _unit_jobs(batch, 3)
    Ledger(client_for(settings), settings.key_prefix, settings.batch_ttl).open_batch(batch, 3)
    payload = [job.model_dump(mode="json") for job in jobs]

    _call_task_failed(settings, [{"args": [payload], "task": "ingest.fetch", "retries": 1}])

    queued = _queued_fetches(redis_client, settings.fetch_queue)
    assert [len(message.jobs) for message in queued] == [1, 1, 1]
    assert sorted(message.urls[0] for message in queued) == sorted(job.record.url for job in jobs)
    assert [Job.model_validate(message.jobs[0]) for message in queued] == jobs  # nothing lost on the way
    assert len({message.task_id for message in queued}) == 3
    assert all(message.retries == 1 for message in queued)  # the retry count goes with them
    assert all(message.errbacks == ["ingest.task_failed"] for message in queued)
    ledger = Ledger(client_for(settings), settings.key_prefix, settings.batch_ttl)
    assert ledger.dead_letters(batch) == []
    assert not (settings.output_dir / "dead-letters.jsonl").exists()


def test_task_failed_dead_letters_a_single_job(settings: Settings, redis_client: redis.Redis) -> None:
    batch = "b-errback-single"
    fetched, cleaned = _unit_jobs(batch, 2)
    Ledger(client_for(settings), settings.key_prefix, settings.batch_ttl).open_batch(batch, 2)

    _call_task_failed(
        settings,
        [
            # A fetch bundle of one job ...
            {"args": [[fetched.model_dump(mode="json")]], "task": "ingest.fetch", "retries": 0},
            # ... and a CPU stage message, whose argument is the job itself.
            {"args": [cleaned.model_dump(mode="json")], "task": "ingest.clean", "retries": 2},
        ],
    )

    assert redis_client.llen(settings.fetch_queue) == 0
    ledger = Ledger(client_for(settings), settings.key_prefix, settings.batch_ttl)
    letters = {letter.url: letter for letter in ledger.dead_letters(batch)}
    assert sorted(letters) == sorted([fetched.record.url, cleaned.record.url])
    assert (letters[fetched.record.url].stage, letters[fetched.record.url].reason) == (
        "fetch",
        "internal_error",
    )
    assert letters[fetched.record.url].attempts == 1
    assert (letters[cleaned.record.url].stage, letters[cleaned.record.url].reason) == (
        "clean",
        "internal_error",
    )
    assert letters[cleaned.record.url].attempts == 3
    assert all(letter.error == "RuntimeError: boom" for letter in letters.values())
    status = ledger.status(batch)
    assert status is not None and status.outcomes == {"dead": 2} and status.reasons == {"internal_error": 2}
    # Committed to the outbox with the outcome: the JSONL store's consumer writes them.
    consumer = StoreConsumer(build_store("jsonl", settings), outbox_for(settings, ledger), settings, "test")
    consumer.outbox.ensure_groups(["jsonl"])
    for _ in range(3):
        consumer.step(0)
    lines = (settings.output_dir / "dead-letters.jsonl").read_text(encoding="utf-8").splitlines()
    assert sorted(json.loads(line)["url"] for line in lines) == sorted(letters)
