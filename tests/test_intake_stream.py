"""The Redis intake stream and its bridge (``ingest intake``): entries become pipeline jobs in
rolling batches, each entry enqueued once, whichever bridge takes it and whichever dies.

The entry format and the bridge's steps are checked in-process on a real Redis, reading what
reached the fetch queue; two bridges at once, and a bridge killed with SIGKILL mid-stream, as
``ingest intake`` subprocesses, the second with real workers and stores.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from config import Settings
from stores.intake_stream import GROUP, IntakeStream, add_to_intake, entry_time, intake_key, parse_entry
from stores.ledger import Ledger
from stores.redis_client import client_for
from tests.support.faults import serve_slow_pages, wait_for
from tests.support.workers import running_workers, settings_env, wait_for_batch
from worker.intake_bridge import Bridge, rolling_batch_id

INGEST = [sys.executable, "-m", "worker"]


def _ledger(settings: Settings) -> Ledger:
    return Ledger(client_for(settings), settings.key_prefix, settings.batch_ttl)


def _stream(settings: Settings, claim_idle: float = 30.0) -> IntakeStream:
    return IntakeStream(client_for(settings), settings.key_prefix, _ledger(settings), claim_idle)


def queued_jobs(client: redis.Redis, settings: Settings) -> list[dict[str, Any]]:
    """Every job waiting in the fetch queue (no worker runs), as the fetch task will get it."""
    jobs = []
    for raw in client.lrange(settings.fetch_queue, 0, -1):
        message = json.loads(raw)
        args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        jobs += args[0]
    return jobs


def intake_batches(settings: Settings) -> dict[str, dict[str, Any]]:
    """Every batch of this test's prefix: its status, and its URLs by record id."""
    ledger = _ledger(settings)
    client = client_for(settings)
    found = {}
    for batch in ledger.recent_batches(limit=1000):
        status = ledger.status(batch)
        assert status is not None
        urls = {
            key.decode(): value.decode()
            for key, value in client.hgetall(ledger.batch_key(batch, "urls")).items()
        }
        found[batch] = {"status": status, "urls": urls}
    return found


# --- the entry format ------------------------------------------------------------------------------
def test_add_to_intake_writes_the_documented_entry(settings: Settings, redis_client: redis.Redis) -> None:
    found = datetime(2026, 12, 2, 10, 30, tzinfo=UTC)
    entry_id = add_to_intake(
        redis_client, settings.key_prefix, "https://example.org/a", source="feed-a", batch="b-mine",
        discovered_at=found, labels={"section": "politique", "pays": "France"},
    )  # fmt: skip
    assert intake_key(settings.key_prefix) == f"{settings.key_prefix}:intake"
    [(read_id, fields)] = redis_client.xrange(f"{settings.key_prefix}:intake")
    assert read_id.decode() == entry_id
    assert {key.decode(): value.decode() for key, value in fields.items()} == {
        "url": "https://example.org/a",
        "source": "feed-a",
        "batch": "b-mine",
        "discovered_at": "2026-12-02T10:30:00+00:00",
        "labels": '{"section":"politique","pays":"France"}',
    }
    bare = add_to_intake(redis_client, settings.key_prefix, "https://example.org/b")
    assert redis_client.xrange(f"{settings.key_prefix}:intake", bare, bare)[0][1] == {
        b"url": b"https://example.org/b"
    }


def test_an_entry_is_read_field_by_field_and_a_bad_field_is_dropped_alone() -> None:
    entry = parse_entry(
        "1764671400000-3",
        {
            b"url": b" https://example.org/a ",
            b"source": b"feed-a",
            b"batch": b"b-20261202-mine",
            b"discovered_at": b"2026-12-02T12:30:00+02:00",
            b"labels": '{"pays": "España"}'.encode(),
            b"other": b"ignored",
        },
    )
    assert (entry.url, entry.source, entry.batch, entry.labels, entry.dropped) == (
        " https://example.org/a ", "feed-a", "b-20261202-mine", {"pays": "España"}, (),
    )  # fmt: skip
    assert entry.discovered_at == datetime(2026, 12, 2, 10, 30, tzinfo=UTC)
    naive = parse_entry("1-0", {"url": "u", "discovered_at": "2026-12-02T10:30:00"})
    assert naive.discovered_at == datetime(2026, 12, 2, 10, 30, tzinfo=UTC)
    bad = parse_entry(
        "1764671400000-0",
        {b"url": b"https://example.org/caf\xe9", b"labels": b'{"n": 1}', b"discovered_at": b"yesterday",
         b"batch": b"has space", b"source": b"\xff"},
    )  # fmt: skip
    assert bad.url == "https://example.org/caf\\xe9" and bad.url_problem == "not UTF-8 (byte 0xe9 at byte 24)"
    assert bad.labels == {} and bad.batch is None and bad.source is None
    assert bad.discovered_at == entry_time("1764671400000-0") == datetime.fromtimestamp(1764671400, UTC)
    assert [problem.split(" ")[0].rstrip(":") for problem in bad.dropped] == [
        "source", "batch", "discovered_at", "labels",
    ]  # fmt: skip
    assert parse_entry("1-0", {"labels": "[1]"}).url is None
    assert parse_entry("1-0", {"url": "u", "labels": "[1]"}).dropped == (
        "labels: not a JSON object of string to string",
    )
    assert rolling_batch_id("Le Monde / Politique", now=0).startswith("b-19700101-000000-le-monde-politique-")
    assert rolling_batch_id(None, now=0).startswith("b-19700101-000000-intake-")


# --- the bridge, in-process --------------------------------------------------------------------------
def test_entries_become_jobs_in_rolling_batches_with_their_source(
    settings: Settings, redis_client: redis.Redis
) -> None:
    prefix = settings.key_prefix
    found = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
    ids = {
        "a1": add_to_intake(redis_client, prefix, "https://a.example/1?utm_source=x", source="feed-a",
                            labels={"section": "world"}, discovered_at=found),
        "a2": add_to_intake(redis_client, prefix, "https://a.example/2", source="feed-a",
                            labels={"section": "world"}),
        "a1-again": add_to_intake(redis_client, prefix, "https://a.example/1", source="feed-a"),
        "b1": add_to_intake(redis_client, prefix, "https://b.example/1", source="feed-b"),
        "none": add_to_intake(redis_client, prefix, "https://c.example/1"),
        "own": add_to_intake(redis_client, prefix, "https://d.example/1", source="feed-a",
                             batch="b-own-batch"),
        "bad": add_to_intake(redis_client, prefix, "not a url at all", source="feed-b"),
        "ftp": add_to_intake(redis_client, prefix, "ftp://e.example/file", source="feed-b"),
    }  # fmt: skip
    no_url = redis_client.xadd(f"{prefix}:intake", {"link": "https://f.example/"}).decode()
    bridge = Bridge(settings, consumer="test-bridge")
    bridge.prepare()
    step = bridge.step()
    assert (step.entries, step.counted, step.sent, step.bad, step.repeated) == (9, 8, 5, 3, 1)
    assert len(step.batches) == 4  # feed-a, feed-b, no source, the entry's own

    jobs = queued_jobs(redis_client, settings)
    assert sorted(job["record"]["url"] for job in jobs) == [
        "https://a.example/1?utm_source=x", "https://a.example/2", "https://b.example/1",
        "https://c.example/1", "https://d.example/1",
    ]  # fmt: skip
    by_url = {job["record"]["url"]: job for job in jobs}
    first = by_url["https://a.example/1?utm_source=x"]
    assert first["record"]["source"] == "feed-a" and first["record"]["labels"] == {"section": "world"}
    assert first["record"]["discovered_at"] == "2026-12-02T08:00:00Z"
    no_time = by_url["https://c.example/1"]["record"]
    assert no_time["source"] is None and no_time["labels"] == {}
    assert no_time["discovered_at"] == entry_time(ids["none"]).isoformat().replace("+00:00", "Z")
    assert by_url["https://d.example/1"]["batch"] == "b-own-batch"
    feed_a = first["batch"]
    assert by_url["https://a.example/2"]["batch"] == feed_a and "-feed-a-" in feed_a
    assert by_url["https://b.example/1"]["batch"] != feed_a

    batches = intake_batches(settings)
    assert {batch: info["status"].total for batch, info in batches.items()} == {
        feed_a: 2, by_url["https://b.example/1"]["batch"]: 3, by_url["https://c.example/1"]["batch"]: 2,
        "b-own-batch": 1,
    }  # fmt: skip
    letters = {letter.url: letter for batch in batches for letter in _ledger(settings).dead_letters(batch)}
    assert set(letters) == {"not a url at all", "ftp://e.example/file", ""}
    assert {letter.reason for letter in letters.values()} == {"bad_url"}
    assert {letter.stage for letter in letters.values()} == {"intake"}
    assert letters[""].error == f"intake stream entry {no_url}: the entry has no url field"
    assert letters["ftp://e.example/file"].error.startswith(f"intake stream entry {ids['ftp']}: ")
    # Everything acknowledged, every marker says sent (or repeated), nothing left to read.
    assert bridge.stream.backlog() == (0, 0)
    assert bridge.step().entries == 0
    assert redis_client.get(f"{prefix}:intake:done:{ids['a1']}") == f"s {feed_a}".encode()
    # The reconciler would send a lost URL again with its fields (the ledger keeps them).
    kept = _ledger(settings).record_fields(feed_a, [first["record"]["id"]])
    assert kept[first["record"]["id"]] == {"source": "feed-a", "labels": {"section": "world"},
                                           "discovered_at": "2026-12-02T08:00:00Z"}  # fmt: skip


def test_a_rolling_batch_closes_when_full_or_when_its_window_ends(
    settings: Settings, redis_client: redis.Redis
) -> None:
    settings = settings.model_copy(update={"intake_batch_max": 3, "intake_batch_window": 1.0})
    prefix = settings.key_prefix
    for n in range(7):
        add_to_intake(redis_client, prefix, f"https://a.example/{n}", source="feed-a")
    bridge = Bridge(settings, consumer="test-bridge")
    bridge.prepare()
    assert sorted(bridge.step().batches.values()) == [1, 3, 3]
    add_to_intake(redis_client, prefix, "https://a.example/7", source="feed-a")
    assert list(bridge.step().batches.values()) == [1]  # joins the open batch of one
    time.sleep(1.2)  # the window of that batch ends
    add_to_intake(redis_client, prefix, "https://a.example/8", source="feed-a")
    step = bridge.step()
    totals = sorted(info["status"].total for info in intake_batches(settings).values())
    assert totals == [1, 2, 3, 3] and len(step.batches) == 1


def test_a_dead_bridges_entries_are_enqueued_once_by_another(
    settings: Settings, redis_client: redis.Redis
) -> None:
    """The three places a bridge can die, each left as a kill leaves it, then a second bridge:
    (1) it had read the entries only; (2) it had counted them into their batch (step 1) and
    sent nothing; (3) it had sent them too (step 2) and died before acknowledging (step 3)."""
    settings = settings.model_copy(update={"intake_claim_idle": 0.2})
    prefix = settings.key_prefix
    dead = Bridge(settings, consumer="dead-bridge")
    dead.prepare()
    read_only = [add_to_intake(redis_client, prefix, f"https://a.example/read/{n}") for n in range(3)]
    assert len(dead.stream.read_new("dead-bridge", 100, 0)) == 3  # (1)
    claimed = [
        add_to_intake(redis_client, prefix, f"https://a.example/claimed/{n}", source="s") for n in range(3)
    ]
    plan = dead.claim(dead.stream.read_new("dead-bridge", 100, 0))  # (2)
    assert plan.step.entries == 3 and sum(len(jobs) for jobs in plan.fresh.values()) == 3
    [claimed_batch] = plan.fresh
    sent = [add_to_intake(redis_client, prefix, f"https://a.example/sent/{n}") for n in range(3)]
    dead.send(dead.claim(dead.stream.read_new("dead-bridge", 100, 0)))  # (3)
    assert len(queued_jobs(redis_client, settings)) == 3
    pending = redis_client.xpending(f"{prefix}:intake", GROUP)
    assert pending["pending"] == 9
    assert {c["name"]: c["pending"] for c in pending["consumers"]} == {b"dead-bridge": 9}

    time.sleep(0.3)  # idle past intake_claim_idle
    second = Bridge(settings, consumer="second-bridge")
    second.prepare()
    step = second.step()
    assert (step.entries, step.counted, step.resent) == (9, 3, 6)
    assert second.stream.backlog() == (0, 0)
    jobs = queued_jobs(redis_client, settings)
    urls = Counter(job["record"]["url"] for job in jobs)
    # (1) and (2): once each. (3): its first send had reached the queue, so it is there twice,
    # in the same batch under the same record id: the batch claims one outcome per record id
    # (tests/test_ledger.py), and it counted the URL once.
    kinds = ("read", "claimed", "sent")
    assert [urls[f"https://a.example/{kind}/{n}"] for kind in kinds for n in range(3)] == [1] * 6 + [2] * 3
    claimed_jobs = [job for job in jobs if "/claimed/" in job["record"]["url"]]
    assert {job["batch"] for job in claimed_jobs} == {claimed_batch}
    assert {job["record"]["source"] for job in claimed_jobs} == {"s"}
    sent_jobs = [job for job in jobs if "/sent/" in job["record"]["url"]]
    assert len({(job["batch"], job["record"]["id"]) for job in sent_jobs}) == 3
    totals = {batch: info["status"].total for batch, info in intake_batches(settings).items()}
    assert sum(totals.values()) == 9  # every entry counted once
    assert sum(info["status"].resent for info in intake_batches(settings).values()) == 6
    # Every marker says sent: a bridge still holding any of them (it took them over from one it
    # thought dead) acknowledges them without sending anything.
    for entry_id in read_only + claimed + sent:
        assert redis_client.get(f"{prefix}:intake:done:{entry_id}").startswith(b"s ")
    redis_client.delete(settings.fetch_queue)
    again = second.process(
        [(entry_id.decode(), fields) for entry_id, fields in redis_client.xrange(f"{prefix}:intake")]
    )
    assert (again.entries, again.sent, again.done_before) == (9, 0, 9)
    assert queued_jobs(redis_client, settings) == []


def test_a_started_job_is_not_sent_again(settings: Settings, redis_client: redis.Redis) -> None:
    """A dead bridge's counted entry whose job a worker already took (it went through a stage)
    is acknowledged, not sent again."""
    settings = settings.model_copy(update={"intake_claim_idle": 0.2})
    dead = Bridge(settings, consumer="dead-bridge")
    dead.prepare()
    for n in range(2):
        add_to_intake(redis_client, settings.key_prefix, f"https://a.example/{n}")
    plan = dead.claim(dead.stream.read_new("dead-bridge", 100, 0))
    dead.send(plan)
    [(_, batch), _] = plan.done
    started = queued_jobs(redis_client, settings)[0]["record"]["id"]
    _ledger(settings).stage_done(batch, "fetch", started, 0)  # a worker fetched the first
    redis_client.delete(settings.fetch_queue)
    time.sleep(0.3)
    step = Bridge(settings, consumer="second-bridge").step()
    assert (step.entries, step.resent) == (2, 1)
    assert [job["record"]["id"] for job in queued_jobs(redis_client, settings)] != [started]
    assert len(queued_jobs(redis_client, settings)) == 1


# --- ingest intake, as processes ---------------------------------------------------------------------
@contextmanager
def bridge_process(settings: Settings, log: Path, consumer: str) -> Iterator[subprocess.Popen[bytes]]:
    """``ingest intake --consumer CONSUMER`` in its own session; stopped (SIGTERM, then kill) at the end."""
    with log.open("ab") as handle:
        process = subprocess.Popen(
            [*INGEST, "intake", "--consumer", consumer],
            env=settings_env(settings),
            stdout=handle,
            stderr=handle,
            start_new_session=True,
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    with suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
                    process.wait()


def consumers(client: redis.Redis, settings: Settings) -> dict[str, int]:
    """Consumer name -> entries it holds unacknowledged, in the bridges' group."""
    try:
        infos = client.xinfo_consumers(intake_key(settings.key_prefix), GROUP)
    except redis.ResponseError:
        return {}
    return {info["name"].decode(): int(info["pending"]) for info in infos}


def wait_until_reading(client: redis.Redis, settings: Settings, *names: str) -> None:
    wait_for(lambda: set(names) <= set(consumers(client, settings)), timeout=60)


def wait_until_drained(settings: Settings, timeout: float = 60.0) -> None:
    """Every entry of the stream read and acknowledged."""
    stream = _stream(settings)
    wait_for(lambda: stream.backlog() == (0, 0), timeout=timeout)


def log_events(log: Path, event: str) -> list[dict[str, Any]]:
    lines = [
        json.loads(line) for line in log.read_text(encoding="utf-8").splitlines() if line.startswith("{")
    ]
    return [line for line in lines if line.get("event") == event]


@pytest.mark.integration
def test_two_bridges_at_once_never_enqueue_an_entry_twice(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    settings = settings.model_copy(update={"intake_read_count": 5, "intake_batch_max": 50})
    urls = [f"https://site{n % 7}.example/story/{n}" for n in range(300)]
    logs = {name: tmp_path / f"{name}.log" for name in ("bridge-a", "bridge-b")}
    with bridge_process(settings, logs["bridge-a"], "bridge-a") as first, \
            bridge_process(settings, logs["bridge-b"], "bridge-b") as second:  # fmt: skip
        wait_until_reading(redis_client, settings, "bridge-a", "bridge-b")
        for start in range(0, len(urls), 10):
            pipe = redis_client.pipeline(transaction=False)
            for url in urls[start : start + 10]:
                pipe.xadd(intake_key(settings.key_prefix), {"url": url, "source": "feed-a"})
            pipe.execute()
            time.sleep(0.01)
        wait_until_drained(settings)
        first.send_signal(signal.SIGTERM)
        second.send_signal(signal.SIGTERM)
        assert first.wait(timeout=30) == 0 and second.wait(timeout=30) == 0  # a graceful stop
    queued = Counter(job["record"]["url"] for job in queued_jobs(redis_client, settings))
    assert queued == Counter(urls), {"twice": [url for url, n in queued.items() if n > 1]}
    batches = intake_batches(settings)
    assert sum(info["status"].total for info in batches.values()) == len(urls)
    assert all(info["status"].total <= 50 for info in batches.values())
    record_ids = Counter(rid for info in batches.values() for rid in info["urls"])
    assert len(record_ids) == len(urls) and set(record_ids.values()) == {1}  # each in one batch
    shares = {
        name: sum(line["entries"] for line in log_events(log, "intake.enqueued"))
        for name, log in logs.items()
    }
    assert sum(shares.values()) == len(urls) and all(shares.values()), shares  # both did some
    # Both bridges filled the same rolling batches of the source: no batch per bridge.
    per_bridge = {
        name: {line["batch"] for line in log_events(log, "intake.enqueued")} for name, log in logs.items()
    }
    assert per_bridge["bridge-a"] & per_bridge["bridge-b"]
    assert all(log_events(log, "intake.stopped") for log in logs.values())


@pytest.mark.integration
def test_a_bridge_killed_mid_stream_loses_nothing_and_enqueues_nothing_twice(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    settings = settings.model_copy(
        update={
            "intake_claim_idle": 2.0,
            "intake_batch_window": 1.0,
            "intake_batch_max": 10,
            "intake_read_count": 5,
        }
    )
    prefix = settings.key_prefix
    found = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)
    logs = tmp_path / "logs"
    logs.mkdir()
    expected: dict[str, dict[str, Any]] = {}

    def push(server: Any, n: int, client: Any = redis_client) -> None:
        """Entry ``n``, XADDed as any program would (to ``client``: a transaction to push several
        at once)."""
        url = server.url(f"/slow/0/intake-{n}")
        source = ("feed-a", "feed-b")[n % 2]
        labels = {"n": str(n), "feed": source}
        moment = found + timedelta(seconds=n)
        fields = {"url": url, "source": source, "labels": json.dumps(labels)}
        fields["discovered_at"] = moment.isoformat()
        client.xadd(intake_key(prefix), fields)
        expected[url] = {"source": source, "labels": labels, "discovered_at": moment}

    with serve_slow_pages() as server, running_workers(settings, logs, concurrency={"fetch": 4, "cpu": 1}):
        with bridge_process(settings, logs / "bridge-a.log", "bridge-a") as victim:
            wait_until_reading(redis_client, settings, "bridge-a")
            for n in range(15):
                push(server, n)
            add_to_intake(redis_client, prefix, "this is not a URL", source="feed-a")
            wait_until_drained(settings)
            # Freeze it while it waits for entries: Redis hands it the next ones, it never enqueues them.
            next_n = 15
            for _attempt in range(5):
                os.kill(victim.pid, signal.SIGSTOP)
                together = redis_client.pipeline(transaction=True)
                for n in range(next_n, next_n + 5):
                    push(server, n, together)
                together.execute()  # handed to the frozen bridge's read at once (it reads 5 at a time)
                next_n += 5
                with suppress(TimeoutError):
                    wait_for(lambda: consumers(redis_client, settings).get("bridge-a", 0) > 0, timeout=2)
                if consumers(redis_client, settings).get("bridge-a", 0):
                    break
                os.kill(victim.pid, signal.SIGCONT)  # it was not waiting: let it catch up, try again
                wait_until_drained(settings)
            held = consumers(redis_client, settings)["bridge-a"]
            assert held > 0
            os.killpg(victim.pid, signal.SIGKILL)
            victim.wait()
        assert victim.returncode == -signal.SIGKILL
        for n in range(next_n, 40):
            push(server, n)
        with bridge_process(settings, logs / "bridge-b.log", "bridge-b"):
            wait_until_drained(settings, timeout=60)
            batches = list(intake_batches(settings))
            for batch in batches:
                wait_for_batch(settings, batch, timeout=240)
        hits = dict(server.hits)

    assert consumers(redis_client, settings).get("bridge-a", 0) == 0  # its entries were taken over
    assert log_events(logs / "bridge-b.log", "intake.claimed")
    info = intake_batches(settings)
    assert sum(item["status"].total for item in info.values()) == 41  # every entry counted once
    record_ids = Counter(rid for item in info.values() for rid in item["urls"])
    assert len(record_ids) == 41 and set(record_ids.values()) == {1}
    outcomes = Counter()  # type: Counter[str]
    for item in info.values():
        outcomes.update(item["status"].outcomes)
    assert outcomes["published"] + outcomes["duplicate"] == 40 and outcomes["dead"] == 1
    # The stores: each URL is one record (or, the bad one, one dead letter), with where it came from.
    from tests.support.faults import assert_each_url_ended_once

    assert_each_url_ended_once(settings, [*expected, "this is not a URL"])
    articles = [
        json.loads(line) for line in (settings.output_dir / "articles.jsonl").read_text().splitlines()
    ]
    for article in articles:
        want = expected[article["url"]]
        assert (article["source"], article["labels"]) == (want["source"], want["labels"])
        assert datetime.fromisoformat(article["discovered_at"]) == want["discovered_at"]
    letters = [
        json.loads(line) for line in (settings.output_dir / "dead-letters.jsonl").read_text().splitlines()
    ]
    assert [(letter["url"], letter["stage"], letter["reason"]) for letter in letters] == [
        ("this is not a URL", "intake", "bad_url")
    ]
    # Nothing was sent twice: each page was fetched once (no entry was counted without being sent).
    if not sum(item["status"].resent for item in info.values()):
        assert {path: hits.get(path) for path in (f"/slow/0/intake-{n}" for n in range(40))} == {
            f"/slow/0/intake-{n}": 1 for n in range(40)
        }
    print(f"\nbridge killed holding {held} entries; {len(info)} rolling batches")


def test_the_reconciler_sends_a_lost_url_again_with_its_source(
    settings: Settings, redis_client: redis.Redis
) -> None:
    """A URL counted into its rolling batch whose message the broker then lost: the reconciler
    sends it again as the bridge did, source, labels and discovery time included."""
    from worker.reconcile import reconcile

    bridge = Bridge(settings, consumer="test-bridge")
    bridge.prepare()
    found = datetime(2026, 12, 2, 7, 0, tzinfo=UTC)
    add_to_intake(redis_client, settings.key_prefix, "https://a.example/lost", source="feed-a",
                  labels={"k": "v"}, discovered_at=found)  # fmt: skip
    bridge.step()
    [sent] = queued_jobs(redis_client, settings)
    redis_client.delete(settings.fetch_queue)  # the broker lost it
    assert reconcile(settings, bridge.ledger, now=time.time() + settings.stuck_after + 1) == 1
    [again] = queued_jobs(redis_client, settings)
    assert again == sent
