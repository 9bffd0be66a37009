"""Delivery through the outbox to each store: records/s, lag from commit to ack, CPU per record.

Real records first: ``worker.offline.process_html`` runs the CPU stages (language, clean and,
unless ``--no-entities``, entities) on the test fixture pages (``tests/fixtures/pages``), timed
per page with ``time.process_time`` after a warm-up pass: that is the "CPU-stage time per
article" the delivery path is compared with. Then ``--records`` distinct records are made of
them (``id``, ``url`` and ``content_hash`` varied).

Each store (``jsonl``, ``postgres``, ``redis_stream``, ``webhook``) alone, then all of them
together, is run twice, each time on a fresh outbox (private key prefix, PostgreSQL table,
JSONL directory and webhook receiver):

* **drain**: the records are committed with ``Outbox.commit_record`` (the publish stage's
  Lua script, one call per record, serialisation included; timed: it is part of the delivery
  path), then ``--consumers`` ``StoreConsumer`` threads per store (as ``ingest deliver`` runs
  them, ``INGEST_DELIVERY_CONSUMERS``, each with its own adapter) call ``step(0)`` until the
  store's group has nothing pending and the ledger counts every entry delivered. records/s =
  records / (first read to last ack), per store. The lag (entry id's commit time to ack) of
  a drain is mostly time spent queued in the backlog;
* **streaming**: a producer process (the publish stage runs in another process too) commits
  ``--rate`` records/s for ``--stream-seconds`` while the consumers run ``step(1000)`` (a
  blocking read, as ``ingest deliver`` does): that lag is the "final -> stored" delay of a
  live pipeline.

The CPU of the delivery path is ``time.process_time`` over commit and delivery (this process,
all threads: consumers and the webhook store's pool; when streaming the commits are the
producer's), per record, against the CPU-stage time per article. Not in it, printed apart:
the Redis server's CPU (``INFO cpu``, the whole server: other clients of a shared Redis count
too), the PostgreSQL backend's (``/proc/<pid>/stat`` of the store's connection, found by its
``application_name``; WAL writer and checkpointer not counted) and the webhook receiver's,
which runs in its own process (``tests.support.webhook_receiver``, answering after
``--webhook-delay`` seconds, with TCP_NODELAY set on its sockets unless ``--receiver-nagle``:
as it stands it stalls every answer 40 ms on the client's delayed ACK, and the webhook would
measure only that).

Needs Redis (``--redis-url``, default redis://127.0.0.1:6379/0) and PostgreSQL
(``--postgres-dsn``, default postgresql://postgres@127.0.0.1:5432/test). Every key and table
it creates is private to the run and deleted at the end, also on Ctrl-C.

Usage: .venv/bin/python bench/stores.py [--records 5000] [--batch 200] [--consumers 1] [--rate 500]
       [--stream-seconds 10] [--stores jsonl,postgres,redis_stream,webhook]
       [--webhook-delay 0] [--webhook-concurrency 8] [--receiver-nagle] [--no-entities]
       [--redis-url URL] [--postgres-dsn DSN]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import logging
import multiprocessing
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# This file is named like the ``stores`` package: keep its own directory off the path.
sys.path[:] = [str(ROOT), *(p for p in sys.path if Path(p or ".").resolve() != HERE)]

import psycopg  # noqa: E402
import redis  # noqa: E402
from psycopg.conninfo import make_conninfo  # noqa: E402

from config import Settings  # noqa: E402
from config.stores import STORE_NAMES  # noqa: E402
from stores.base import Delivery  # noqa: E402
from stores.ledger import Ledger  # noqa: E402
from stores.outbox import Outbox  # noqa: E402
from stores.postgres import PostgresStore  # noqa: E402
from stores.redis_client import client_for  # noqa: E402
from stores.registry import build_store  # noqa: E402
from tasks.record import ArticleRecord, record_id  # noqa: E402
from worker.delivery import StoreConsumer, consumer_name  # noqa: E402
from worker.stage import outbox_for  # noqa: E402

#: records/s each store should reach (the webhook: whatever the receiver allows).
GOALS: dict[str, int | None] = {"jsonl": 5_000, "postgres": 2_000, "redis_stream": 10_000, "webhook": None}
#: The delivery path may cost at most this share of the CPU-stage time per article.
CPU_GOAL = 0.05
#: How long a streaming consumer's read waits for new entries (``ingest deliver``'s value).
BLOCK_MS = 1000
SECRET = "bench-webhook-secret"
FINAL_TTL = 3600


# --- the records ---------------------------------------------------------------------------
def base_records(entities: bool, repeat: int) -> tuple[list[ArticleRecord], list[float], int]:
    """One record per fixture page, the CPU seconds of each ``process_html`` call, and pages."""
    from tasks.entities import build_registry
    from tests.support.pages import load_pages
    from worker.offline import process_html

    settings = Settings(_env_file=None)
    registry = build_registry(settings, learn_names=False) if entities else None
    pages = [(page.html, str(page.truth["url"])) for page in load_pages()]
    records = [process_html(html, url, settings, registry) for html, url in pages]  # warm-up
    seconds = []
    for _ in range(repeat):
        for html, url in pages:
            started = time.process_time()
            process_html(html, url, settings, registry)
            seconds.append(time.process_time() - started)
    return records, seconds, len(pages)


def make_records(bases: Sequence[ArticleRecord], count: int) -> list[ArticleRecord]:
    """``count`` distinct records: the fixture records with their id, URL and hash varied."""
    records = []
    for i in range(count):
        base = bases[i % len(bases)]
        url = f"{base.url}{'&' if '?' in base.url else '?'}bench={i}"
        digest = hashlib.sha256(f"{base.content_hash}:{i}".encode()).hexdigest()
        records.append(
            base.model_copy(
                update={"id": record_id(url), "url": url, "final_url": url, "content_hash": digest}
            )
        )
    return records


# --- the webhook receiver, in its own process ----------------------------------------------
def _receiver_main(conn: Connection, delay: float, nodelay: bool) -> None:
    from tests.support import webhook_receiver
    from tests.support.webhook_receiver import serve_webhook

    if nodelay:
        # The receiver writes its headers and its body in two send()s: with Nagle on, the
        # body waits for the client's delayed ACK, 40 ms per request (a serial client saw
        # 44 ms per POST, 1.6 ms with this). A real receiver (nginx, uvicorn) sets TCP_NODELAY.
        webhook_receiver._Handler.disable_nagle_algorithm = True

    def behaviour(_key: str, _attempt: int) -> int:
        if delay > 0:
            time.sleep(delay)
        return 200

    with serve_webhook(SECRET, behaviour) as receiver:
        started = time.process_time()
        conn.send(receiver.url)
        try:
            conn.recv()
        except (EOFError, KeyboardInterrupt):
            return
        posts = receiver.posts
        conn.send(
            {
                "max_in_flight": receiver.max_in_flight,
                "posts": len(posts),
                "accepted": len(receiver.accepted),
                "bad_signatures": sum(not post.signature_ok for post in posts),
                "cpu": time.process_time() - started,
            }
        )


class Receiver:
    """``tests.support.webhook_receiver`` in a child process: its CPU is not this process's."""

    def __init__(self, delay: float, nodelay: bool) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_receiver_main, args=(child, delay, nodelay), daemon=True)
        self._process.start()
        if not self._conn.poll(60):
            self.close()
            raise SystemExit("the webhook receiver did not start")
        self.url: str = self._conn.recv()

    def stats(self) -> dict[str, Any]:
        """Max requests in flight, POSTs, records accepted, bad signatures, CPU seconds."""
        self._conn.send("stop")
        stats: dict[str, Any] = self._conn.recv()
        self._process.join(10)
        return stats

    def close(self) -> None:
        """Stop the process if it is still running."""
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(5)


# --- the streaming producer, in its own process (as the publish stage is) ----------------------
def _producer_main(
    conn: Connection, redis_url: str, prefix: str, batch: str, bases: list[ArticleRecord], count: int
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops it
    settings = Settings(_env_file=None, redis_url=redis_url, key_prefix=prefix)
    outbox = outbox_for(settings, Ledger(client_for(settings), prefix, settings.batch_ttl))
    records = make_records(bases, count)  # the same records as the parent's
    conn.send("ready")
    rate = conn.recv()
    if not rate:
        return
    started = time.perf_counter()
    cpu = time.process_time()
    for index, record in enumerate(records):
        delay = started + index / rate - time.perf_counter()  # on a schedule: a late commit
        if delay > 0 and conn.poll(delay):  # does not shift the next; a message means stop
            return
        outbox.commit_record(batch, record.id, "published", record.model_dump_json(), FINAL_TTL)
    conn.send((time.process_time() - cpu, time.perf_counter() - started))


class Producer:
    """Commits records at a steady rate from a child process, so that it does not share this
    process's GIL with the consumers (in a deployment the publish stage runs in a CPU worker)."""

    def __init__(
        self, redis_url: str, prefix: str, batch: str, bases: list[ArticleRecord], count: int
    ) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        args = (child, redis_url, prefix, batch, bases, count)
        self._process = context.Process(target=_producer_main, args=args, daemon=True)
        self._process.start()
        if not self._conn.poll(120):
            self.close()
            raise SystemExit("the producer did not start")
        self._conn.recv()

    def commit(self, rate: float, timeout: float) -> tuple[float, float]:
        """Commit every record at ``rate`` per second: (CPU seconds, wall seconds) it took."""
        self._conn.send(rate)
        deadline = time.monotonic() + timeout
        while not self._conn.poll(0.5):
            if time.monotonic() > deadline or not self._process.is_alive():
                raise SystemExit("the producer did not finish")
        cpu, seconds = self._conn.recv()
        return float(cpu), float(seconds)

    def close(self) -> None:
        """Stop the process if it is still running."""
        if self._process.is_alive():
            with contextlib.suppress(OSError):
                self._conn.send(0)
            self._process.join(5)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(5)


# --- one run --------------------------------------------------------------------------------
@dataclass
class StoreRun:
    """What one store's consumer did in one run."""

    lags: list[float] = field(default_factory=list)
    first_read: float = 0.0
    last_ack: float = 0.0
    done: bool = False
    check: str = ""

    @property
    def seconds(self) -> float:
        """First read to last acknowledgement."""
        return max(self.last_ack - self.first_read, 1e-9)


@dataclass
class Run:
    """One run: some stores, drain or streaming, on a fresh outbox."""

    label: str
    mode: str
    records: int
    stores: dict[str, StoreRun]
    commit_seconds: float = 0.0
    commit_cpu: float = 0.0
    """CPU seconds of the commits (this process's when draining, the producer's when streaming)."""
    deliver_cpu: float = 0.0
    """This process's CPU seconds while the consumers ran (the commits excluded)."""
    redis_cpu: float | None = None
    postgres_cpu: float | None = None
    receiver: dict[str, Any] | None = None

    @property
    def total_cpu(self) -> float:
        """CPU seconds of the delivery path: commits and delivery."""
        return self.commit_cpu + self.deliver_cpu

    @property
    def everything_cpu(self) -> float:
        """The delivery path's CPU plus the Redis server's, the backend's and the receiver's."""
        servers = [self.redis_cpu, self.postgres_cpu, self.receiver["cpu"] if self.receiver else None]
        return self.total_cpu + sum(value for value in servers if value is not None)


class Bench:
    """The runs, and everything they create (removed by :meth:`cleanup`)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.root = f"bench-stores-{uuid.uuid4().hex[:8]}"
        self.table_root = self.root.replace("-", "_")
        self.directory = Path(tempfile.mkdtemp(prefix=f"{self.root}-"))
        self.client = redis.Redis.from_url(args.redis_url)
        self.tables: list[str] = []
        self.receivers: list[Receiver] = []
        self.producers: list[Producer] = []
        self.bases: list[ArticleRecord] = []
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self._runs = 0

    def run(self, label: str, names: list[str], records: Sequence[ArticleRecord], mode: str) -> Run:
        """Commit ``records`` and deliver them to ``names``; see the module docstring."""
        self._runs += 1
        prefix = f"{self.root}-{self._runs}"
        table = f"{self.table_root}_{self._runs}"
        receiver = None
        if "webhook" in names:
            receiver = Receiver(self.args.webhook_delay, not self.args.receiver_nagle)
            self.receivers.append(receiver)
        if "postgres" in names:
            self.tables.append(table)
            warm = PostgresStore(self.args.postgres_dsn, table)
            try:
                warm.count()  # creates and migrates the table before the clock starts
            finally:
                warm.close()
        settings = Settings(
            _env_file=None,
            redis_url=self.args.redis_url,
            key_prefix=prefix,
            output_dir=self.directory / f"run-{self._runs}",
            postgres_dsn=make_conninfo(self.args.postgres_dsn, application_name=prefix),
            postgres_table=table,
            stores=",".join(names),
            webhook_url=receiver.url if receiver else None,
            webhook_secret=SECRET,
            webhook_concurrency=self.args.webhook_concurrency,
            delivery_batch=self.args.batch,
            delivery_consumers=self.args.consumers,
        )
        try:
            result = self._deliver(label, mode, settings, names, records)
            if receiver is not None:
                result.receiver = receiver.stats()
            self._check(result, settings, table)
            return result
        except BaseException:  # Ctrl-C: stop the threads before their keys and table go
            self.stop_all()
            raise
        finally:
            if receiver is not None:
                receiver.close()
                self.receivers.remove(receiver)
            self._drop(prefix, table if "postgres" in names else None)

    def _deliver(
        self, label: str, mode: str, settings: Settings, names: list[str], records: Sequence[ArticleRecord]
    ) -> Run:
        client = client_for(settings)
        ledger = Ledger(client, settings.key_prefix, settings.batch_ttl)
        outbox = outbox_for(settings, ledger)
        batch = f"bench-{self._runs}"
        result = Run(label, mode, len(records), {name: StoreRun() for name in names})
        _time_acks(outbox, result.stores)
        outbox.ensure_groups(names)  # before any commit, as the producer does
        ledger.open_batch(batch, len(records))
        # As run_delivery: ``--consumers`` consumers per store, each with its own adapter.
        stores = [build_store(name, settings) for _ in range(self.args.consumers) for name in names]
        producer = None
        if mode == "streaming":  # started (imports, connection) before the clock
            producer = Producer(self.args.redis_url, settings.key_prefix, batch, self.bases, len(records))
            self.producers.append(producer)
        redis_before = self._redis_cpu()
        if mode == "drain":
            started = time.perf_counter()
            commit_cpu = time.process_time()
            for record in records:
                outbox.commit_record(batch, record.id, "published", record.model_dump_json(), FINAL_TTL)
            result.commit_cpu = time.process_time() - commit_cpu
            result.commit_seconds = time.perf_counter() - started
        cpu_before = time.process_time()
        block_ms = 0 if mode == "drain" else BLOCK_MS
        consumers = []
        for index, store in enumerate(stores):
            consumer = StoreConsumer(store, outbox, settings, f"{consumer_name()}-{index // len(names)}")

            def finished(name: str = store.name) -> bool:
                status = ledger.status(batch)
                if status is None or status.committed < len(records) or status.undelivered(name):
                    return False
                state = outbox.groups().get(name)
                return state is not None and state.pending == 0

            thread = threading.Thread(
                target=self._consume,
                args=(consumer, result.stores[store.name], finished, block_ms, len(records)),
                name=f"deliver-{store.name}-{index // len(names)}",
            )
            consumers.append(thread)
        self.threads.extend(consumers)
        for thread in consumers:
            thread.start()
        if producer is not None:
            result.commit_cpu, result.commit_seconds = producer.commit(self.args.rate, self.args.timeout)
            producer.close()
            self.producers.remove(producer)
        for thread in consumers:
            thread.join()
        result.deliver_cpu = time.process_time() - cpu_before
        if "postgres" in names:  # its backends' CPU, while they are still connected
            with contextlib.suppress(psycopg.Error):
                result.postgres_cpu = _proc_cpu(_backend_pids(self.args.postgres_dsn, settings.key_prefix))
        for store in stores:
            store.close()
        redis_after = self._redis_cpu()
        if redis_before is not None and redis_after is not None:
            result.redis_cpu = redis_after - redis_before
        if self.stop.is_set():
            raise KeyboardInterrupt
        return result

    def _consume(
        self,
        consumer: StoreConsumer,
        state: StoreRun,
        finished: Callable[[], bool],
        block_ms: int,
        expected: int,
    ) -> None:
        """``step`` until the store has every entry (or the run is stopped or times out)."""
        deadline = time.monotonic() + self.args.timeout
        started = time.perf_counter()
        state.first_read = min(state.first_read, started) if state.first_read else started
        while not self.stop.is_set():
            acked = len(state.lags)
            wait = consumer.step(block_ms)
            idle = len(state.lags) == acked  # (another consumer of the store may have acked)
            if (idle or len(state.lags) >= expected) and finished():
                state.done = True
                break
            if time.monotonic() > deadline:
                break
            if wait or (idle and not block_ms):
                self.stop.wait(wait or 0.005)  # no busy loop while another consumer ends

    def _redis_cpu(self) -> float | None:
        try:
            info = self.client.info("cpu")
        except redis.RedisError:
            return None
        return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])

    def _check(self, result: Run, settings: Settings, table: str) -> None:
        """Say per store whether it holds exactly the committed records."""
        for name, state in result.stores.items():
            held: int | None = None
            if name == "jsonl":
                path = settings.output_dir / "articles.jsonl"
                held = sum(1 for _ in path.open("rb")) if path.exists() else 0
            elif name == "postgres":
                with psycopg.connect(self.args.postgres_dsn) as conn:
                    row = conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()  # type: ignore[arg-type]
                held = int(row[0]) if row else 0
            elif name == "redis_stream":
                held = int(self.client.xlen(settings.stream_name))
            elif name == "webhook" and result.receiver is not None:
                held = int(result.receiver["accepted"])
            ok = state.done and held == result.records
            state.check = "ok" if ok else f"{held}/{result.records}{'' if state.done else ', timed out'}"

    def _drop(self, prefix: str, table: str | None) -> None:
        """Delete the run's Redis keys and PostgreSQL table."""
        _delete_keys(self.client, f"{prefix}:*")
        if table is not None:
            _drop_table(self.args.postgres_dsn, table)
            self.tables.remove(table)

    def stop_all(self) -> None:
        """Stop the producer, the consumers (a batch under way ends) and the receiver."""
        self.stop.set()
        for process in [*self.producers, *self.receivers]:
            process.close()
        for thread in self.threads:
            thread.join(30)

    def cleanup(self) -> None:
        """Stop what still runs, delete every key, table and file this bench created."""
        self.stop_all()
        try:
            _delete_keys(self.client, f"{self.root}-*")
        except redis.RedisError as exc:
            print(f"warning: could not delete the keys {self.root}-*: {exc}", file=sys.stderr)
        for table in self.tables:
            try:
                _drop_table(self.args.postgres_dsn, table)
            except psycopg.Error as exc:
                print(f"warning: could not drop table {table}: {exc}", file=sys.stderr)
        shutil.rmtree(self.directory, ignore_errors=True)


def _time_acks(outbox: Outbox, states: dict[str, StoreRun]) -> None:
    """Wrap ``outbox.ack`` to note, per store, each entry's lag (commit to ack) and the last ack."""
    ack = outbox.ack

    def timed_ack(store: str, deliveries: Sequence[Delivery], counter: str = "delivered") -> int:
        new = ack(store, deliveries, counter)
        now, clock = time.time(), time.perf_counter()
        state = states[store]
        state.lags.extend(now - delivery.committed_ms / 1000 for delivery in deliveries)
        state.last_ack = clock
        return new

    outbox.ack = timed_ack  # type: ignore[method-assign]


def _backend_pids(dsn: str, application_name: str) -> list[int]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (application_name,)
        ).fetchall()
    return [int(row[0]) for row in rows]


def _proc_cpu(pids: Sequence[int]) -> float | None:
    """utime + stime of the processes, in seconds; None if one cannot be read."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def _delete_keys(client: redis.Redis, pattern: str) -> None:
    batch: list[bytes] = []
    for key in client.scan_iter(match=pattern, count=2000):
        batch.append(key)
        if len(batch) >= 1000:
            client.unlink(*batch)
            batch = []
    if batch:
        client.unlink(*batch)


def _drop_table(dsn: str, table: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP TABLE IF EXISTS "{table}", "{table}_schema_version"')  # type: ignore[arg-type]


# --- the report ------------------------------------------------------------------------------
def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (nearest rank) of ``values``; nan when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def lag_text(state: StoreRun | None) -> str:
    """p50 / p99 of the lags in ms."""
    if state is None or not state.lags:
        return "-"
    return f"{percentile(state.lags, 0.5) * 1000:,.0f} / {percentile(state.lags, 0.99) * 1000:,.0f}"


def goal_text(name: str, rate: float, args: argparse.Namespace) -> str:
    """The goal and whether the rate meets it."""
    goal = GOALS[name]
    if goal is not None:
        return f"≥ {goal:,}: {'yes' if rate >= goal else 'NO'}"
    if args.webhook_delay > 0:
        bound = args.webhook_concurrency / args.webhook_delay
        return f"receiver bound {bound:,.0f}/s: {rate / bound:.0%} of it"
    return "none set (the receiver answers at once)"


def print_tables(runs: list[tuple[Run, Run | None]], cpu_stage: float, args: argparse.Namespace) -> None:
    """The delivery table, then the CPU table of the all-stores run."""
    rate = args.rate
    print(
        f"\n### Delivery: {args.records:,} records, batch {args.batch}, {args.consumers} consumer(s) per"
        f" store (drain: from a backlog; streaming: committed at {rate:g}/s)\n"
    )
    print(
        "| run | store | drain records/s | goal (drain) | CPU ms/record (drain, delivery only) "
        "| lag p50 / p99 ms, drain (queueing) | lag p50 / p99 ms, streaming (final -> stored) "
        "| check drain / streaming |"
    )
    print("|---|---|---:|---|---:|---:|---:|---|")
    for drain, streaming in runs:
        for name, state in drain.stores.items():
            per_second = drain.records / state.seconds
            cpu = f"{drain.deliver_cpu / drain.records * 1000:.3f}" if len(drain.stores) == 1 else "-"
            stream_state = streaming.stores.get(name) if streaming else None
            checks = f"{state.check} / {stream_state.check if stream_state else '-'}"
            goal = goal_text(name, per_second, args)
            print(
                f"| {drain.label} | {name} | {per_second:,.0f} | {goal} "
                f"| {cpu} | {lag_text(state)} | {lag_text(stream_state)} | {checks} |"
            )
        commit_rate = drain.records / drain.commit_seconds
        achieved = f"committed at {streaming.records / streaming.commit_seconds:,.0f}/s" if streaming else "-"
        print(
            f"| {drain.label} | (outbox commit) | {commit_rate:,.0f} | - "
            f"| {drain.commit_cpu / drain.records * 1000:.3f} | - | {achieved} | - |"
        )
    combined = [pair for pair in runs if len(pair[0].stores) > 1] or runs[-1:]
    drain, streaming = combined[0]
    names = ", ".join(drain.stores)
    print(f"\n### CPU of the delivery path per record ({names}) against the CPU stages per article\n")
    print(f"| measure | drain | streaming ({rate:g}/s) |")
    print("|---|---:|---:|")

    def row(label: str, value: Callable[[Run], str]) -> None:
        print(f"| {label} | {value(drain)} | {value(streaming) if streaming else '-'} |")

    def per_record(seconds: float | None, run: Run) -> str:
        return "n/a" if seconds is None else f"{seconds / run.records * 1000:.3f} ms"

    entities = "with" if args.entities else "without"
    row(
        f"CPU stages per article (process_html, {entities} entities)",
        lambda run: f"{cpu_stage * 1000:.1f} ms",
    )
    row(
        "outbox commit per record (model_dump_json + Lua; streaming: in the producer process)",
        lambda run: per_record(run.commit_cpu, run),
    )
    row(f"delivery to {len(drain.stores)} store(s) per record", lambda run: per_record(run.deliver_cpu, run))
    row("delivery path per record (commit + delivery)", lambda run: per_record(run.total_cpu, run))
    row(
        f"share of the CPU-stage time (goal < {CPU_GOAL:.0%})",
        lambda run: f"{run.total_cpu / run.records / cpu_stage:.1%}",
    )
    row("not in the above: Redis server (INFO cpu, whole server)", lambda run: per_record(run.redis_cpu, run))
    if "postgres" in drain.stores:
        row("not in the above: PostgreSQL backend", lambda run: per_record(run.postgres_cpu, run))
    if drain.receiver is not None:
        row(
            "not in the above: webhook receiver (own process)",
            lambda run: per_record(run.receiver["cpu"], run) if run.receiver else "n/a",
        )
    row(
        "share with those servers' CPU added (where known)",
        lambda run: f"{run.everything_cpu / run.records / cpu_stage:.1%}",
    )
    if drain.receiver is not None:
        row(
            f"webhook receiver max requests in flight (concurrency {args.webhook_concurrency}; "
            "it counts only its own handling, so ~1 at --webhook-delay 0)",
            lambda run: str(run.receiver["max_in_flight"]) if run.receiver else "n/a",
        )


# --- main --------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=5000, help="records per drain run")
    parser.add_argument("--batch", type=int, default=200, help="INGEST_DELIVERY_BATCH")
    parser.add_argument("--consumers", type=int, default=1, help="INGEST_DELIVERY_CONSUMERS (per store)")
    parser.add_argument("--rate", type=float, default=500.0, help="records/s committed when streaming")
    parser.add_argument(
        "--stream-seconds", type=float, default=10.0, help="length of a streaming run (0: no streaming)"
    )
    parser.add_argument("--stores", default=",".join(STORE_NAMES), help="comma list (default: all four)")
    parser.add_argument("--webhook-delay", type=float, default=0.0, help="receiver's seconds per POST")
    parser.add_argument("--webhook-concurrency", type=int, default=8, help="INGEST_WEBHOOK_CONCURRENCY")
    parser.add_argument(
        "--receiver-nagle",
        action="store_true",
        help="leave Nagle on in the test receiver (its stock behaviour: a 40 ms stall per POST)",
    )
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--postgres-dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--repeat", type=int, default=3, help="timed process_html passes over the pages")
    parser.add_argument("--no-entities", dest="entities", action="store_false", help="CPU stages without NER")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds before a run gives up")
    args = parser.parse_args()
    names = [name.strip() for name in args.stores.split(",") if name.strip()]
    unknown = [name for name in names if name not in STORE_NAMES]
    if unknown or not names:
        parser.error(f"--stores: choose from {', '.join(STORE_NAMES)}")
    _quiet_logs()
    # Ctrl-C even when started in the background (SIGINT ignored), and SIGTERM: clean up too.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)

    bases, seconds, pages = base_records(args.entities, args.repeat)
    cpu_stage = sum(seconds) / len(seconds)
    print(
        f"CPU stages: {pages} fixture pages x {args.repeat} passes, {cpu_stage * 1000:.1f} ms per article "
        f"(min {min(seconds) * 1000:.1f}, max {max(seconds) * 1000:.1f}); load average "
        f"{os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs",
        flush=True,
    )
    records = make_records(bases, args.records)
    streamed = min(args.records, int(args.rate * args.stream_seconds))
    plan = [(name, [name]) for name in names]
    if len(names) > 1:
        plan.append(("all" if len(names) == len(STORE_NAMES) else "together", names))
    bench = Bench(args)
    bench.bases = bases
    runs: list[tuple[Run, Run | None]] = []
    try:
        for label, run_names in plan:
            drain = bench.run(label, run_names, records, "drain")
            print(f"{label} drain: {_summary(drain)}", flush=True)
            streaming = None
            if streamed > 0:
                streaming = bench.run(label, run_names, records[:streamed], "streaming")
                print(f"{label} streaming ({streamed} records): {_summary(streaming)}", flush=True)
            runs.append((drain, streaming))
    except KeyboardInterrupt:
        print("interrupted: cleaning up", file=sys.stderr)
    finally:
        bench.cleanup()
    if runs:
        print_tables(runs, cpu_stage, args)
        print(
            f"\nLoad average at the end {os.getloadavg()[0]:.2f}. JSONL fsyncs each batch (default); "
            "the Redis figure is the whole server's CPU, the PostgreSQL one the store's backend only."
        )


def _summary(run: Run) -> str:
    parts = [
        f"{name} {run.records / state.seconds:,.0f}/s ({state.check})" for name, state in run.stores.items()
    ]
    return ", ".join(parts) + f"; CPU {run.total_cpu / run.records * 1000:.3f} ms/record"


def _quiet_logs() -> None:
    """Log as a worker does (JSON lines, INFO: their cost is real), but to /dev/null; warnings to stderr."""
    from worker.logging import configure_logging

    configure_logging(Settings(_env_file=None, log_json=True))
    root = logging.getLogger()
    for handler in root.handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(open(os.devnull, "w"))  # noqa: SIM115 - for the life of the process
    warnings = logging.StreamHandler(sys.stderr)
    warnings.setLevel(logging.WARNING)
    root.addHandler(warnings)


if __name__ == "__main__":
    main()
