"""Load: the whole pipeline, with real workers, fed at a steady rate from 50 loopback hosts.

Not a timed test: it prints tables. A server process of its own (asyncio, one listener per
loopback address 127.0.0.2 .. 127.0.0.51, so its CPU is not this process's) serves

* ``page``: a real news page (``../shared/corpus/news``, 146 pages, or the 7 test fixtures
  when the corpus is absent), each URL distinct (``?n=<i>``); its ``<link rel=canonical>``
  is rewritten to the URL itself, otherwise every copy of a page in a later batch would end
  as ``seen`` (the corpus pages point at their publishers' URLs). Copies of a page are
  content duplicates: the dedup stage publishes them with ``duplicate_of`` set (records too);
* ``slow``: such a page, its body sent in ten pieces over 2-5 s;
* ``missing``: 404;
* ``flaky``: 503 on the first request for that URL, the page afterwards (one retry);
* ``reset``: the connection reset (RST) as soon as the request arrives, every time;

and robots.txt answers 404. The URLs (``--urls``, 80% pages, 5% each of the others, hosts
round-robin) go through one ``ingest worker --queues fetch`` process (gevent,
``--fetch-concurrency``), one ``ingest worker --queues cpu --concurrency N`` (prefork,
``--cpu-processes``) and one ``ingest deliver``, under a private key prefix, with the JSONL
store in a temporary directory (``--postgres``: the PostgreSQL store too, into a private
table). A warm-up batch (one page per host) is delivered first and is not counted.

The producer enqueues ``--batch`` URLs per ledger batch on a schedule of ``--rate`` URLs/s
(``--all-at-once``: everything as one batch at t=0). Per URL this script notes its enqueue
time, its outbox commit (the entry id's timestamp) and when its line appeared in
articles.jsonl or dead-letters.jsonl (the files are polled every 0.25 s): "enqueue to
stored" is the last minus the first. Every second it samples the RSS (VmRSS, and the
kernel's VmHWM peak) and CPU time of every process of each worker's process group, and the
Redis ``used_memory`` (the whole server: a shared Redis has other users, so the table
shows the change from the start). At the end the ledger's outcomes are joined with the
JSONL files: every URL enqueued must be one record or one dead letter, exactly once.

    .venv/bin/python bench/load.py                      # 10,000 URLs at 5/s (about 35 minutes)
    .venv/bin/python bench/load.py --urls 1000 --rate 8 --keep
    .venv/bin/python bench/load.py --all-at-once --urls 2000
    .venv/bin/python bench/load.py --postgres           # jsonl and postgres stores

Needs the Redis of ``INGEST_REDIS_URL`` (default redis://127.0.0.1:6379/0) and, with
``--postgres``, PostgreSQL (``--postgres-dsn``). Every key, queue, table and file it creates
is private to the run and deleted at the end, also on Ctrl-C (``--keep`` keeps the output
directory and the worker logs).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from urllib.request import ProxyHandler, build_opener

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: Share of the URLs per route (the rest of 1.0 goes to ``page``).
MIX = {"slow": 0.05, "missing": 0.05, "flaky": 0.05, "reset": 0.05}
ROUTES = ("page", "slow", "flaky", "missing", "reset")
#: The default ``--rate``. On the 2-core development machine the CPU worker's two pool
#: processes used 147 ms of CPU per URL on the corpus (about 165 ms per record; the CPU stages
#: alone, ``worker.offline.process_html``: mean 188 ms, median 118 ms, one page 6.9 s), and all
#: processes together (fetch 16, CPU-worker main 14, Redis 6, this script 2.5, deliver 1.3 ms)
#: about 190 ms per URL: at most ~10 URLs/s on two idle cores, and the machine is shared. At
#: 12/s (the first guess, from 60-90 ms per fixture page) the backlog only grows.
DEFAULT_RATE = 5.0
#: Seconds over which a slow page's body is sent (uniform per URL).
SLOW_SECONDS = (2.0, 5.0)
POLL_S = 0.25
SAMPLE_S = 1.0
PROGRESS_S = 15.0
_URL = re.compile(r"https?://\S+")
_CANONICAL = re.compile(r"<link\b[^>]*\brel\s*=\s*[\"']?canonical\b[^>]*>", re.IGNORECASE)


def _page_source() -> tuple[Path, str]:
    from tests.support.pages import FIXTURES, SHARED_CORPUS

    corpus = SHARED_CORPUS / "news"
    if (corpus / "index.jsonl").exists():
        return corpus, "../shared/corpus/news"
    return FIXTURES, "tests/fixtures/pages (the shared corpus is absent)"


# --- the server process ------------------------------------------------------------------
def _served_pages(directory: Path) -> dict[str, list[bytes]]:
    """Each page split around its canonical link (the URL itself goes between the parts)."""
    from tests.support.pages import load_pages

    served = {}
    for page in load_pages(directory):
        html = _CANONICAL.sub("\0", page.html)
        if "\0" not in html:
            html = html.replace("</head>", "\0</head>", 1)
        served[page.id] = [part.encode("utf-8") for part in html.split("\0")]
    return served


async def _serve(hosts: int, directory: Path) -> None:
    pages = _served_pages(directory)
    stats: dict[str, object] = {"requests": Counter(), "inflight": 0, "peak_inflight": 0}
    requests: Counter[str] = stats["requests"]
    flaky_hit: set[str] = set()

    def page_body(target: str) -> bytes:
        page_id = target.partition("?")[0].rsplit("/", 1)[-1]
        tag = f'<link rel="canonical" href="{escape(target)}">'.encode()
        return tag.join(pages[page_id])

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                target = head.split(b" ", 2)[1].decode()
                route = target.split("/", 2)[1].partition("?")[0]
                if route == "__stats":
                    body = json.dumps(stats).encode()
                    writer.write(
                        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
                    )
                    await writer.drain()
                    continue
                requests[route] += 1
                if route == "reset":
                    sock = writer.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    writer.transport.abort()
                    return
                status, pieces, pause = "200 OK", 1, 0.0
                if (
                    route == "robots.txt"
                    or route == "missing"
                    or target.partition("?")[0].rsplit("/", 1)[-1] not in pages
                ):
                    status, body = "404 Not Found", b"<html><body><p>Not found.</p></body></html>"
                elif route == "flaky" and target not in flaky_hit:
                    flaky_hit.add(target)
                    status, body = "503 Service Unavailable", b"<html><body><p>Busy.</p></body></html>"
                else:
                    body = page_body(target)
                    if route == "slow":
                        seconds = float(target.rpartition("s=")[2])
                        pieces, pause = 10, seconds / 10
                requests[f"status:{status[:3]}"] += 1
                writer.write(
                    f"HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\n"
                    f"Content-Length: {len(body)}\r\n\r\n".encode()
                )
                stats["inflight"] += 1
                stats["peak_inflight"] = max(stats["peak_inflight"], stats["inflight"])
                try:
                    step = -(-len(body) // pieces)
                    for start in range(0, len(body), step):
                        if start:
                            await asyncio.sleep(pause)
                        writer.write(body[start : start + step])
                        await writer.drain()
                finally:
                    stats["inflight"] -= 1
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError, IndexError):
            pass
        finally:
            writer.close()

    ports, servers = [], []
    for index in range(hosts):
        server = await asyncio.start_server(handle, f"127.0.0.{index + 2}", 0, backlog=1024)
        servers.append(server)
        ports.append(server.sockets[0].getsockname()[1])
    print(json.dumps(ports), flush=True)
    await asyncio.gather(*(server.serve_forever() for server in servers))


def _server_stats(port: int) -> dict[str, object]:
    opener = build_opener(ProxyHandler({}))
    with opener.open(f"http://127.0.0.2:{port}/__stats", timeout=5) as answer:
        return json.loads(answer.read())


# --- what the run is made of ---------------------------------------------------------------
@dataclass
class Url:
    """One URL of the load and what happened to it."""

    url: str
    route: str
    enqueued: float = 0.0
    batch: str = ""
    committed: float | None = None
    stored: float | None = None
    kind: str | None = None  # record / dead_letter, from the JSONL files
    reason: str | None = None
    duplicate: bool = False
    outcome: str | None = None  # from the ledger


def make_urls(count: int, hosts: list[str], page_ids: list[str], seed: int) -> dict[str, Url]:
    """``count`` distinct URLs, by record id."""
    from tasks.record import record_id
    from worker.producer import intake_identity

    rng = random.Random(seed)
    urls: dict[str, Url] = {}
    for i in range(count):
        host = hosts[i % len(hosts)]
        roll, route = rng.random(), "page"
        for name, share in MIX.items():
            if roll < share:
                route = name
                break
            roll -= share
        page = rng.choice(page_ids)
        if route == "page":
            url = f"{host}/page/{page}?n={i}"
        elif route == "slow":
            url = f"{host}/slow/{page}?n={i}&s={rng.uniform(*SLOW_SECONDS):.2f}"
        elif route == "flaky":
            url = f"{host}/flaky/{page}?n={i}"
        else:
            url = f"{host}/{route}/{i}"
        urls[record_id(intake_identity(url)[0])] = Url(url=url, route=route)
    return urls


# --- watching the run ----------------------------------------------------------------------
class Tail:
    """New complete lines of a file that is only appended to."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.partial = b""

    def lines(self) -> list[bytes]:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except FileNotFoundError:
            return []
        self.offset += len(data)
        *complete, self.partial = (self.partial + data).split(b"\n")
        return [line for line in complete if line.strip()]


@dataclass
class Role:
    """The processes of one role, sampled."""

    peak_rss: int = 0  # kB, one process (VmHWM where the kernel knows it)
    peak_total: int = 0  # kB, all processes of the role at one sample
    pids: set[int] = field(default_factory=set)
    cpu: dict[int, float] = field(default_factory=dict)  # pid -> utime + stime seconds


class Sampler:
    """RSS and CPU of every process in the workers' process groups, Redis memory, load."""

    def __init__(self, groups: dict[str, int], client) -> None:
        self.groups = groups  # role -> process-group leader pid
        self.client = client
        self.roles: dict[str, Role] = defaultdict(Role)
        self.redis_start = self._redis_used()
        self.redis_cpu_start = self._redis_cpu()
        self.own_cpu_start = sum(os.times()[:2])
        self.redis_peak = self.redis_start
        self.redis_last = self.redis_start
        self.loads: list[float] = []
        self.tick = os.sysconf("SC_CLK_TCK")
        self.samples = 0
        self.cpu_base: dict[int, float] = {}  # CPU a process had used before the load started
        self.in_flight: list[tuple[float, int, float]] = []  # (seconds since t0, URLs, load average)

    def _redis_used(self) -> int:
        return int(self.client.info("memory")["used_memory"])

    def _redis_cpu(self) -> float:
        info = self.client.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

    def sample(self) -> None:
        leaders = {pid: role for role, pid in self.groups.items()}
        totals: Counter[str] = Counter()
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
                group, pid = int(fields[2]), int(entry)
                if group not in leaders:
                    continue
                role = leaders[group] + (" main" if pid == group else " child")
                status = Path(f"/proc/{entry}/status").read_text()
            except (OSError, IndexError, ValueError):
                continue
            memory = {
                line.split(":")[0]: int(line.split()[1])
                for line in status.splitlines()
                if line.startswith("Vm")
            }
            state = self.roles[role]
            state.pids.add(pid)
            state.peak_rss = max(state.peak_rss, memory.get("VmHWM", 0), memory.get("VmRSS", 0))
            cpu = (int(fields[11]) + int(fields[12])) / self.tick
            if self.samples == 0:
                self.cpu_base[pid] = cpu
            state.cpu[pid] = cpu - self.cpu_base.get(pid, 0.0)
            totals[role] += memory.get("VmRSS", 0)
        for role, total in totals.items():
            self.roles[role].peak_total = max(self.roles[role].peak_total, total)
        with contextlib.suppress(Exception):
            self.redis_last = self._redis_used()
            self.redis_peak = max(self.redis_peak, self.redis_last)
        self.loads.append(os.getloadavg()[0])
        self.samples += 1


class Watcher:
    """Stamps each URL's outbox commit and its arrival in the JSONL files."""

    def __init__(self, urls: dict[str, Url], out: Path, client, outbox_key: str) -> None:
        self.urls = urls
        self.client = client
        self.outbox_key = outbox_key
        self.last_entry = "0-0"
        self.articles = Tail(out / "articles.jsonl")
        self.letters = Tail(out / "dead-letters.jsonl")
        self.record_lines: Counter[str] = Counter()
        self.letter_lines: Counter[str] = Counter()
        self.foreign = 0  # lines of ids that are not ours (the warm-up batch)
        self.committed = 0
        self.stored = 0
        self.last_stored = 0.0

    def poll(self) -> None:
        now = time.time()
        while True:
            entries = self.client.xrange(self.outbox_key, min=f"({self.last_entry}", count=1000)
            for entry_id, fields in entries:
                self.last_entry = entry_id.decode()
                rid = fields.get(b"id", b"").decode()
                if rid in self.urls and self.urls[rid].committed is None:
                    self.urls[rid].committed = int(self.last_entry.split("-")[0]) / 1000
                    self.committed += 1
            if len(entries) < 1000:
                break
        for line in self.articles.lines():
            document = json.loads(line)
            rid = document.get("id")
            self.record_lines[rid] += 1
            self._stored(rid, now, "record", None, document.get("duplicate_of") is not None)
        for line in self.letters.lines():
            document = json.loads(line)
            rid = document.get("id")
            self.letter_lines[rid] += 1
            self._stored(rid, now, "dead_letter", document.get("reason"), False)

    def _stored(self, rid: str, now: float, kind: str, reason: str | None, duplicate: bool) -> None:
        url = self.urls.get(rid)
        if url is None:
            self.foreign += 1
            return
        if url.stored is None:
            url.stored, url.kind, url.reason, url.duplicate = now, kind, reason, duplicate
            self.stored += 1
            self.last_stored = now


# --- the run -------------------------------------------------------------------------------
def _delete_keys(client, prefix: str) -> int:
    deleted = 0
    for pattern in (f"{prefix}*", f"_kombu.binding*{prefix}*"):
        batch: list[bytes] = []
        for key in client.scan_iter(match=pattern, count=5000):
            batch.append(key)
            if len(batch) >= 1000:
                deleted += client.unlink(*batch)
                batch = []
        if batch:
            deleted += client.unlink(*batch)
    return deleted


def _forget_unacked(client, prefix: str) -> int:
    """Drop this run's messages from kombu's shared ``unacked`` hash (a worker killed after the
    grace period leaves its reserved ones there, to be restored into our deleted queues later)."""
    tags = []
    for tag, value in client.hscan_iter("unacked", count=1000):
        try:
            routing_key = json.loads(value)[2]
        except (ValueError, IndexError, TypeError):
            continue
        if isinstance(routing_key, str) and routing_key.startswith(f"{prefix}."):
            tags.append(tag)
    for start in range(0, len(tags), 500):
        client.hdel("unacked", *tags[start : start + 500])
        client.zrem("unacked_index", *tags[start : start + 500])
    return len(tags)


def _drop_table(dsn: str, table: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'DROP TABLE IF EXISTS "{table}", "{table}_schema_version"')


def _percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(int(share * len(ordered)), len(ordered) - 1)]


def _lat(values: list[float]) -> str:
    if not values:
        return "-"
    return (
        f"p50 {_percentile(values, 0.5):6.1f} s  p99 {_percentile(values, 0.99):6.1f} s"
        f"  max {max(values):6.1f} s  (n={len(values)})"
    )


def _log_events(log_dir: Path) -> Counter[str]:
    """Warning and error events of the worker logs: ``file: event reason`` -> count."""
    events: Counter[str] = Counter()
    for path in sorted(log_dir.glob("*.log")):
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                level = str(event.get("level", "")).lower()
                if level in ("warning", "error", "critical"):
                    text = _URL.sub("<url>", str(event.get("event")))  # one line per kind, not per URL
                    what = f"{text} {event.get('reason') or ''}".strip()
                    events[f"{path.stem.split('-', 2)[-1]}: {level} {what}"] += 1
            elif "Traceback" in line or "ERROR" in line or "CRITICAL" in line:
                events[f"{path.stem.split('-', 2)[-1]}: {line.strip()[:100]}"] += 1
    return events


def run(args: argparse.Namespace) -> int:
    from config import Settings
    from stores.ledger import Ledger
    from stores.redis_client import client_for
    from tests.support.pages import load_pages
    from tests.support.workers import running_workers, wait_for_batch
    from worker.pipeline import STAGES
    from worker.producer import enqueue

    directory, source = _page_source()
    page_ids = [page.id for page in load_pages(directory)]
    prefix = f"bench-load-{uuid.uuid4().hex[:8]}"
    work = Path(tempfile.mkdtemp(prefix=f"{prefix}-"))
    out, log_dir = work / "out", work / "logs"
    table = f"bench_load_{prefix.rsplit('-', 1)[1]}" if args.postgres else None
    options: dict[str, object] = {}
    if args.redis_url:
        options["redis_url"] = args.redis_url
    if table:
        options.update(postgres_dsn=args.postgres_dsn, postgres_table=table)
    settings = Settings(
        _env_file=None,
        key_prefix=prefix,
        fetch_allow_private=True,
        host_rate=args.host_rate,
        fetch_concurrency=args.fetch_concurrency,
        cpu_concurrency=args.cpu_processes,
        stores="jsonl,postgres" if table else "jsonl",
        output_dir=out,
        max_retries=2,
        retry_backoff_base=0.5,
        log_level=args.log_level,
        **options,
    )
    client = client_for(settings)
    ledger = Ledger(client, prefix, settings.batch_ttl)
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--hosts", str(args.hosts)],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    sampler: Sampler | None = None
    watcher: Watcher | None = None
    urls: dict[str, Url] = {}
    batches: list[str] = []
    server_stats: dict[str, object] = {}
    load_start = os.getloadavg()
    marks: dict[str, float] = {}
    interrupted = False
    try:
        assert server.stdout is not None
        ports = json.loads(server.stdout.readline())
        hosts = [f"http://127.0.0.{index + 2}:{port}" for index, port in enumerate(ports)]
        urls = make_urls(args.urls, hosts, page_ids, args.seed)
        routes = Counter(url.route for url in urls.values())
        mix = ", ".join(f"{route} {routes[route]}" for route in ROUTES)
        print(
            f"{len(urls)} URLs over {len(hosts)} loopback hosts ({mix});"
            f" pages from {source} ({len(page_ids)}); key prefix {prefix}",
            file=sys.stderr,
            flush=True,
        )
        concurrency = {"fetch": args.fetch_concurrency, "cpu": args.cpu_processes}
        with running_workers(settings, log_dir, concurrency=concurrency) as workers:
            warm = enqueue(
                [f"{host}/page/{page_ids[i % len(page_ids)]}?warmup" for i, host in enumerate(hosts)],
                settings=settings,
            )
            started = time.monotonic()
            try:
                wait_for_batch(settings, warm.batch, timeout=args.warmup_timeout)
            except TimeoutError as exc:
                raise SystemExit(f"warm-up failed: {exc}; worker logs in {log_dir}") from exc
            print(
                f"warm-up: {len(hosts)} pages delivered in {time.monotonic() - started:.1f} s",
                file=sys.stderr,
                flush=True,
            )
            roles = dict(zip(("fetch", "cpu", "deliver"), (worker.pid for worker in workers), strict=True))
            roles["server"] = server.pid
            sampler = Sampler(roles, client)
            watcher = Watcher(urls, out, client, f"{prefix}:outbox")
            watcher.poll()  # the warm-up's lines
            order = list(urls)
            size = len(order) if args.all_at_once else args.batch
            chunks = [order[start : start + size] for start in range(0, len(order), size)]
            t0 = time.time()
            marks["t0"] = t0
            marks["period"] = 0.0 if args.all_at_once else len(order) / args.rate
            enqueued = 0
            next_sample = next_progress = 0.0
            sent = 0
            deadline: float | None = None
            last_check = 0.0
            while True:
                now = time.time()
                if sent < len(chunks) and now >= t0 + sent * size / args.rate - 1e-6:
                    chunk = chunks[sent]
                    stamp = time.time()
                    result = enqueue([urls[rid].url for rid in chunk], settings=settings)
                    for rid in chunk:
                        urls[rid].enqueued, urls[rid].batch = stamp, result.batch
                    if result.total != len(chunk) or result.repeated or result.seen or result.bad:
                        print(f"warning: enqueue of {len(chunk)} URLs: {result}", file=sys.stderr)
                    batches.append(result.batch)
                    sent += 1
                    enqueued += len(chunk)
                    if sent == len(chunks):
                        marks["fed"] = time.time()
                        marks["backlog_at_fed"] = sum(1 for url in urls.values() if url.stored is None)
                        deadline = time.monotonic() + args.timeout
                    continue
                watcher.poll()
                if now >= next_sample:
                    sampler.sample()
                    sampler.in_flight.append((now - t0, enqueued - watcher.stored, sampler.loads[-1]))
                    next_sample = now + SAMPLE_S
                if now >= next_progress:
                    print(
                        f"{now - t0:7.1f} s  enqueued {enqueued:6d}  committed {watcher.committed:6d}"
                        f"  stored {watcher.stored:6d}  in flight {enqueued - watcher.stored:5d}"
                        f"  Redis {(sampler.redis_last - sampler.redis_start) / 2**20:+7.1f} MB"
                        f"  load {os.getloadavg()[0]:.2f}",
                        file=sys.stderr,
                        flush=True,
                    )
                    next_progress = now + PROGRESS_S
                if deadline is not None:
                    if watcher.stored >= len(urls) or now - last_check > 5:
                        last_check = now
                        statuses = [ledger.status(batch) for batch in batches]
                        if all(s is not None and s.delivered_to(settings.store_names) for s in statuses):
                            break
                    if time.monotonic() > deadline:
                        print(f"timed out {args.timeout:.0f} s after the last enqueue", file=sys.stderr)
                        break
                    if any(worker.poll() is not None for worker in workers):
                        print("a worker process exited", file=sys.stderr)
                        break
                time.sleep(POLL_S)
            marks["end"] = time.time()
            watcher.poll()
            sampler.sample()
            with contextlib.suppress(Exception):
                server_stats = _server_stats(ports[0])
    except KeyboardInterrupt:
        interrupted = True
        marks.setdefault("end", time.time())
        print(
            "interrupted: the workers are stopped; what was measured so far, then clean-up", file=sys.stderr
        )
    finally:
        server.terminate()
        server.wait()
    try:
        if sampler is not None and watcher is not None and "end" in marks:
            report(
                args,
                settings,
                ledger,
                urls,
                batches,
                sampler,
                watcher,
                marks,
                server_stats,
                load_start,
                log_dir,
                STAGES,
                source,
                interrupted,
            )
        ok = _accounting_ok(urls)
    finally:
        try:
            deleted, unacked = _delete_keys(client, prefix), _forget_unacked(client, prefix)
            print(
                f"cleanup: {deleted} Redis keys of {prefix} deleted ({unacked} unacked messages)",
                file=sys.stderr,
            )
        except Exception as exc:
            print(f"warning: could not delete the keys {prefix}*: {exc}", file=sys.stderr)
        if table:
            try:
                _drop_table(args.postgres_dsn, table)
            except Exception as exc:
                print(f"warning: could not drop table {table}: {exc}", file=sys.stderr)
        if args.keep:
            print(f"kept {work} (output and worker logs)", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 130 if interrupted else (0 if ok else 1)


def _accounting_ok(urls: dict[str, Url]) -> bool:
    return bool(urls) and all(url.stored is not None for url in urls.values())


def report(
    args: argparse.Namespace,
    settings,
    ledger,
    urls: dict[str, Url],
    batches: list[str],
    sampler: Sampler,
    watcher: Watcher,
    marks: dict[str, float],
    server_stats: dict[str, object],
    load_start: tuple[float, float, float],
    log_dir: Path,
    stages: tuple[str, ...],
    source: str,
    interrupted: bool,
) -> None:
    from stores.redis_client import as_text

    # The ledger's word on every URL.
    statuses = {batch: ledger.status(batch) for batch in batches}
    progress: dict[str, int] = {}
    for batch in batches:
        for rid, outcome in ledger._client.hgetall(ledger.batch_key(batch, "outcomes")).items():
            if as_text(rid) in urls:
                urls[as_text(rid)].outcome = as_text(outcome)
        for rid, order in ledger._client.hgetall(ledger.batch_key(batch, "progress")).items():
            progress[as_text(rid)] = int(order)
    if interrupted:  # only what was enqueued before the interruption
        urls = {rid: url for rid, url in urls.items() if url.enqueued}
    values = list(urls.values())
    n = len(values)
    t0, end = marks["t0"], marks["end"]
    stored = [url for url in values if url.stored is not None]
    last = max((url.stored for url in stored), default=end)
    fed = marks.get("fed", end)
    records = [url for url in values if url.kind == "record"]
    letters = [url for url in values if url.kind == "dead_letter"]

    if interrupted:
        print("\nINTERRUPTED: what was measured until then")
    mode = "all at once" if args.all_at_once else f"{args.rate:g} URLs/s in batches of {args.batch}"
    print(
        f"\nbench/load.py: {n} URLs over {args.hosts} loopback hosts, {mode}; pages from {source};"
        f" 1 fetch process (gevent, concurrency {args.fetch_concurrency}), 1 CPU worker"
        f" (prefork, {args.cpu_processes} processes), 1 deliver; stores {','.join(settings.store_names)}"
    )
    loads = sampler.loads
    print(
        f"load average: {load_start[0]:.2f} at start, mean {statistics.mean(loads):.2f} during the run,"
        f" max {max(loads):.2f} (1-min, {os.cpu_count()} CPUs; the machine is shared)"
    )

    print("\nthroughput")
    period = marks["period"] if "fed" in marks else min(marks["period"], end - t0)
    half = [u for u in stored if t0 + period / 2 <= u.stored <= t0 + period]
    peak_flight = max(sampler.in_flight, key=lambda item: item[1], default=(0.0, 0, 0.0))
    rows = [
        ("offered", f"{n / period:.2f} URLs/s for {period:.0f} s" if period else f"{n} URLs at t=0"),
        (
            "first enqueue to last stored",
            f"{last - t0:.1f} s -> {len(stored) / max(last - t0, 1e-9):.2f} URLs/s",
        ),
        ("records stored / s, whole run", f"{len(records) / max(last - t0, 1e-9):.2f}"),
    ]
    if period:
        rows.append(("stored / s, 2nd half of the feed", f"{len(half) / (period / 2):.2f} URLs/s"))
    at_fed = f"; {int(marks['backlog_at_fed'])} when feeding ended" if "fed" in marks else ""
    rows.append(
        ("in flight (enqueued, not stored)", f"max {peak_flight[1]} at {peak_flight[0]:.0f} s{at_fed}")
    )
    if "fed" in marks:
        rows.append(("drain after the last enqueue", f"{last - fed:.1f} s"))
    _table(rows)

    print("\nlatency, enqueue to stored (JSONL line seen; 0.25 s polls)")
    rows = [
        ("records", _lat([u.stored - u.enqueued for u in records])),
        ("dead letters", _lat([u.stored - u.enqueued for u in letters])),
        ("all", _lat([u.stored - u.enqueued for u in stored])),
    ]
    for route in ROUTES:
        rows.append((f"  route {route}", _lat([u.stored - u.enqueued for u in stored if u.route == route])))
    committed = [u for u in stored if u.committed is not None]
    rows += [
        ("enqueue to outbox commit", _lat([u.committed - u.enqueued for u in committed])),
        ("outbox commit to stored", _lat([u.stored - u.committed for u in committed])),
    ]
    _table(rows)
    if period:
        print(
            "\nover the run, by enqueue time (records' enqueue-to-stored latency; in flight and load: means)"
        )
        names = {"URLs": 5, "stored/s": 8, "p50 s": 6, "p99 s": 6, "in flight": 9, "load": 5}
        header = f"{'enqueued at':>13} " + " ".join(f"{name:>{width}}" for name, width in names.items())
        print(header)
        print("-" * len(header))
        windows = 10
        step = period / windows
        for index in range(windows):
            low, high = index * step, (index + 1) * step
            sent = [u for u in values if low <= u.enqueued - t0 < high]
            done = [u for u in stored if low <= u.stored - t0 < high]
            latency = [u.stored - u.enqueued for u in sent if u.kind == "record"]
            samples = [item for item in sampler.in_flight if low <= item[0] < high] or [(0.0, 0, 0.0)]
            print(
                f"{low:5.0f}-{high:5.0f} s {len(sent):>5} {len(done) / step:>8.2f}"
                f" {_percentile(latency, 0.5):>6.1f} {_percentile(latency, 0.99):>6.1f}"
                f" {statistics.mean(i[1] for i in samples):>9.0f}"
                f" {statistics.mean(i[2] for i in samples):>5.2f}"
            )
    p99 = _percentile([u.stored - u.enqueued for u in records], 0.99)
    print(f"goal p99 < 60 s (records): {'OK' if p99 < 60 else 'MISSED'} ({p99:.1f} s)")

    print("\nmemory and CPU per process role (RSS sampled every second, peak = max of VmHWM/VmRSS)")
    columns = ("processes", "peak RSS MB", "peak sum MB", "CPU s", "CPU ms/URL")
    header = f"{'role':<16} " + " ".join(f"{name:>{max(len(name), 8)}}" for name in columns)
    print(header)
    print("-" * len(header))

    def row(role: str, processes: object, peak: object, total: object, cpu: float, note: str = "") -> None:
        print(
            f"{role:<16} {processes!s:>9} {peak!s:>11} {total!s:>11} {cpu:>8.1f}"
            f" {cpu * 1000 / max(n, 1):>10.1f}{note}"
        )

    for role in sorted(sampler.roles):
        state = sampler.roles[role]
        peak, total = f"{state.peak_rss / 1024:.1f}", f"{state.peak_total / 1024:.1f}"
        row(role, len(state.pids), peak, total, sum(state.cpu.values()))
    own = int(Path("/proc/self/status").read_text().split("VmHWM:")[1].split()[0])
    row("bench (this)", 1, f"{own / 1024:.1f}", "", sum(os.times()[:2]) - sampler.own_cpu_start)
    redis_cpu = sampler._redis_cpu() - sampler.redis_cpu_start
    row("redis-server", "", "", "", redis_cpu, "  (the whole server, which others share)")
    outbox_len = (
        ledger._client.xlen(f"{settings.key_prefix}:outbox")
        if ledger._client.exists(f"{settings.key_prefix}:outbox")
        else 0
    )
    keys = sum(1 for _ in ledger._client.scan_iter(match=f"{settings.key_prefix}*", count=5000))
    mb = 2**20
    print("\nRedis used_memory (INFO memory, sampled every second; the whole server, which others share)")
    _table(
        [
            ("at start", f"{sampler.redis_start / mb:.1f} MB"),
            (
                "peak",
                f"{sampler.redis_peak / mb:.1f} MB ({(sampler.redis_peak - sampler.redis_start) / mb:+.1f})",
            ),
            (
                "at the end",
                f"{sampler.redis_last / mb:.1f} MB ({(sampler.redis_last - sampler.redis_start) / mb:+.1f})",
            ),
            ("keys under the prefix at the end", str(keys)),
            ("outbox entries at the end", f"{outbox_len} (kept {settings.outbox_retention} s for replay)"),
        ]
    )

    print("\naccounting (ledger outcomes joined with the JSONL files)")
    outcomes = Counter(url.outcome or "none" for url in values)
    reasons = Counter(url.reason for url in letters)
    lost = sum(1 for url in values if url.outcome is None)
    unstored = [u for u in values if u.outcome in ("published", "duplicate", "dead") and u.stored is None]
    twice = sum(1 for rid, count in watcher.record_lines.items() if rid in urls and count > 1)
    twice_letters = sum(1 for rid, count in watcher.letter_lines.items() if rid in urls and count > 1)
    both = sum(1 for rid in urls if watcher.record_lines.get(rid) and watcher.letter_lines.get(rid))
    retries: Counter[str] = Counter()
    resent = 0
    for status in statuses.values():
        if status is not None:
            retries.update(status.retries)
            resent += status.resent
    rows = [
        ("URLs enqueued", f"{n} in {len(batches)} batches"),
        (
            "records (JSONL)",
            f"{len(records)}: {sum(not u.duplicate for u in records)} published,"
            f" {sum(u.duplicate for u in records)} duplicate_of",
        ),
        (
            "dead letters (JSONL)",
            f"{len(letters)}: " + ", ".join(f"{r} {c}" for r, c in reasons.most_common()),
        ),
        ("ledger outcomes", ", ".join(f"{o} {outcomes[o]}" for o in sorted(outcomes))),
        ("seen / unchanged", f"{outcomes['seen']} / {outcomes['unchanged']}"),
        ("lost (no outcome)", str(lost)),
        ("outcome but not stored", str(len(unstored))),
        ("records twice in articles.jsonl", str(twice)),
        ("dead letters twice / id in both files", f"{twice_letters} / {both}"),
        ("retries (ledger)", ", ".join(f"{s} {c}" for s, c in sorted(retries.items())) or "0"),
        ("re-sent by the reconciler", str(resent)),
        ("warm-up and other lines ignored", str(watcher.foreign)),
    ]
    _table(rows)
    total = len(records) + len(letters)
    verdict = "OK" if total == n and not twice and not twice_letters and not both else "MISMATCH"
    print(f"records + dead letters = {len(records)} + {len(letters)} = {total}; URLs enqueued {n}: {verdict}")

    print("\nper route: how each URL ended (ledger outcome / dead-letter reason)")
    cells: dict[str, Counter[str]] = defaultdict(Counter)
    for url in values:
        what = url.outcome or "no outcome"
        if url.kind == "dead_letter":
            what = f"dead:{url.reason}"
        elif url.outcome in ("published", "duplicate", "dead") and url.stored is None:
            what += " (not stored)"
        cells[url.route][what] += 1
    for route in ROUTES:
        print(
            f"  {route:<8} {sum(cells[route].values()):>6}  "
            + ", ".join(f"{what} {count}" for what, count in cells[route].most_common())
        )
    if server_stats:
        requests = server_stats.get("requests", {})
        print(
            "server: "
            + ", ".join(f"{k} {v}" for k, v in sorted(requests.items()))
            + f"; peak responses in flight {server_stats.get('peak_inflight')}"
        )

    pending = [url for url in values if url.stored is None]
    if pending:
        print(f"\nNOT STORED: {len(pending)} URLs")
        where: Counter[str] = Counter()
        for rid, url in urls.items():
            if url.stored is None:
                order = progress.get(rid)
                reached = stages[order] if order is not None and order < len(stages) else "nothing"
                where[f"{url.route}, outcome {url.outcome or 'none'}, furthest stage done: {reached}"] += 1
        for what, count in where.most_common():
            print(f"  {count:>6}  {what}")
        for url in pending[:5]:
            print(f"  e.g. {url.url} (batch {url.batch})")
        stuck = [batch for batch, status in statuses.items() if status is None or not status.done]
        print(f"  batches not done: {len(stuck)} of {len(batches)}")
    events = _log_events(log_dir)
    if events:
        print("\nworker log warnings/errors")
        for what, count in events.most_common(15):
            print(f"  {count:>6}  {what}")


def _table(rows: list[tuple[str, str]]) -> None:
    width = max(len(label) for label, _ in rows)
    print(f"{'measure':<{width}}  value")
    print(f"{'-' * width}  {'-' * 50}")
    for label, value in rows:
        print(f"{label:<{width}}  {value}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--urls", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=DEFAULT_RATE, help="URLs/s enqueued (default 5)")
    parser.add_argument("--batch", type=int, default=50, help="URLs per ledger batch (default 50)")
    parser.add_argument("--all-at-once", action="store_true", help="enqueue everything as one batch at t=0")
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--host-rate", type=float, default=20.0, help="requests/s per host (default 20)")
    parser.add_argument("--fetch-concurrency", type=int, default=200)
    parser.add_argument("--cpu-processes", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait after the last enqueue")
    parser.add_argument("--warmup-timeout", type=float, default=300.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--log-level", default="WARNING", help="of the workers (default WARNING)")
    parser.add_argument(
        "--redis-url", default=None, help="default: INGEST_REDIS_URL or redis://127.0.0.1:6379/0"
    )
    parser.add_argument("--postgres", action="store_true", help="deliver to PostgreSQL too (private table)")
    parser.add_argument("--postgres-dsn", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--keep", action="store_true", help="keep the output directory and worker logs")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops it
        asyncio.run(_serve(args.hosts, _page_source()[0]))
        return
    if args.hosts > 250:
        parser.error("--hosts: at most 250 (127.0.0.2 .. 127.0.0.251)")
    os.chdir(ROOT)  # the workers run `python -m worker` from here
    # Ctrl-C and SIGTERM both clean up (SIGINT explicitly: a shell's background job starts with it ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    sys.exit(run(args))


if __name__ == "__main__":
    main()
