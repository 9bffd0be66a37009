"""Throughput of one fetch worker process, per Celery pool type.

A local asyncio server (its own process) listens on 50 loopback hosts (127.0.0.1 ..
127.0.0.50) and answers every page after 100 ms; 5,000 URLs spread over those hosts go
through one real ``ingest worker --queues fetch`` process, with the full fetch stage (SSRF
guard, robots.txt, the Redis per-host schedule with a rate high enough not to bind,
conditional-request memory, body stored in Redis, the chain's next message published).
For each pool the script prints pages/s (5,000 / wall time from the first enqueue to the
last fetch), the worker's CPU time per page (utime + stime: what the pool costs, whatever else the machine
is doing), the peak RSS of the worker process (VmHWM) and the peak number of requests in
flight seen by the server.

    .venv/bin/python bench/fetch.py                      # gevent:200 and threads:200
    .venv/bin/python bench/fetch.py --pools gevent:500 --urls 2000
    .venv/bin/python bench/fetch.py --pools threads:200/noevents   # price of Celery task events
    .venv/bin/python bench/fetch.py --pools raw:200   # the fetcher alone, no Celery (run it last:
                                                      # its RSS is this script's own)

Needs the Redis of ``INGEST_REDIS_URL`` (default redis://127.0.0.1:6379/0); every key and
queue it creates lives under a throw-away prefix that is deleted afterwards. Each run is cut
off after ``--timeout`` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.request import urlopen

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PAGE = (
    "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Bench page</title></head>"
    "<body><article><h1>Bench page</h1>"
    + "".join(f"<p>Paragraph {i} of a benchmark article about nothing in particular.</p>" for i in range(300))
    + "</article></body></html>"
).encode()


# --- the server process ------------------------------------------------------------------
async def _serve(hosts: int, delay: float) -> None:
    stats = {"requests": 0, "inflight": 0, "peak_inflight": 0}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ", 2)[1].decode()
                if path.startswith("/__stats"):
                    body = json.dumps(stats).encode()
                    if "reset" in path:
                        stats.update(requests=0, peak_inflight=stats["inflight"])
                    status, ctype = "200 OK", "application/json"
                elif path == "/robots.txt":
                    body, status, ctype = b"not found", "404 Not Found", "text/plain"
                else:
                    stats["requests"] += 1
                    stats["inflight"] += 1
                    stats["peak_inflight"] = max(stats["peak_inflight"], stats["inflight"])
                    try:
                        await asyncio.sleep(delay)
                    finally:
                        stats["inflight"] -= 1
                    body, status, ctype = PAGE, "200 OK", "text/html; charset=utf-8"
                head_out = (
                    f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n"
                )
                writer.write(head_out.encode() + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    ports = []
    servers = []
    for index in range(1, hosts + 1):
        server = await asyncio.start_server(handle, f"127.0.0.{index}", 0, backlog=1024)
        servers.append(server)
        ports.append(server.sockets[0].getsockname()[1])
    print(json.dumps(ports), flush=True)
    await asyncio.gather(*(server.serve_forever() for server in servers))


def _server_stats(port: int, reset: bool = False) -> dict[str, int]:
    with urlopen(f"http://127.0.0.1:{port}/__stats{'/reset' if reset else ''}", timeout=5) as answer:
        return json.loads(answer.read())


# --- one run -------------------------------------------------------------------------------
def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _wait_fetched(ledger, batch: str, total: int, deadline: float, worker: subprocess.Popen[bytes]) -> int:
    """Pages of ``batch`` through fetch (or dead) once ``total`` is reached or time is up."""
    while True:
        status = ledger.status(batch)
        done = status.stages.get("fetch", 0) + status.outcomes.get("dead", 0) if status else 0
        if done >= total or time.monotonic() > deadline or worker.poll() is not None:
            return done
        time.sleep(0.02)


_NO_EVENTS = """
import sys
pool, concurrency, queue = sys.argv[1:4]
if pool == "gevent":
    from celery import maybe_patch_concurrency
    maybe_patch_concurrency(["-P", "gevent"])
from worker.app import app
app.conf.worker_send_task_events = False
app.conf.task_send_sent_event = False
app.worker_main(["worker", "-Q", queue, "-P", pool, "-c", concurrency, "-l", "WARNING",
                 "--without-mingle", "--without-gossip"])
"""


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_pool(
    pool: str, concurrency: int, urls: list[str], warmup: list[str], port: int, timeout: float, events: bool
) -> dict:
    from config import Settings
    from stores.ledger import Ledger
    from stores.redis_client import client_for
    from tests.support.workers import settings_env
    from worker.processes import stop_workers
    from worker.producer import enqueue

    prefix = f"bench-fetch-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        key_prefix=prefix,
        fetch_allow_private=True,
        host_rate=1000.0,
        fetch_pool="gevent" if pool == "gevent" else "threads",
        fetch_concurrency=concurrency,
        log_level="WARNING",
        output_dir=Path("/tmp") / prefix,
    )
    env = settings_env(settings)
    redis = client_for(settings)
    ledger = Ledger(redis, prefix, 3600)
    # Everything is queued before the worker starts, so the producer's own speed (and CPU)
    # is not part of the measurement: the clock runs from the first timed page fetched.
    started = time.monotonic()
    warm_batch = enqueue(warmup, settings=settings).batch
    batch = enqueue(urls, settings=settings).batch
    enqueue_s = time.monotonic() - started
    log = (Path("/tmp") / f"{prefix}.log").open("wb")
    command = [sys.executable, "-m", "worker", "worker", "--queues", "fetch", "--pool", pool,
               "--concurrency", str(concurrency)]  # fmt: skip
    if not events:
        # Measurement only: the same worker with Celery task events off, to price them.
        command = [sys.executable, "-c", _NO_EVENTS, pool, str(concurrency), settings.fetch_queue]
    worker = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=log, start_new_session=True)
    try:
        if _wait_fetched(ledger, warm_batch, len(warmup), time.monotonic() + 60, worker) < len(warmup):
            return {"pool": pool, "concurrency": concurrency, "error": f"warm-up failed, see {log.name}"}
        _server_stats(port, reset=True)
        first = _wait_fetched(ledger, batch, 1, time.monotonic() + 30, worker)
        started, cpu_started = time.monotonic(), _cpu_seconds(worker.pid)
        done = _wait_fetched(ledger, batch, len(urls), started + timeout, worker)
        elapsed = time.monotonic() - started
        cpu = _cpu_seconds(worker.pid) - cpu_started
        stats = _server_stats(port)
        status = ledger.status(batch)
        return {
            "pool": pool,
            "concurrency": concurrency,
            "urls": len(urls),
            "fetched": done,
            "dead": status.outcomes.get("dead", 0) if status else None,
            "seconds": round(elapsed, 2),
            "enqueue_s": round(enqueue_s, 2),
            "pages_per_s": round((done - first) / elapsed, 1),
            "cpu_ms_per_page": round(cpu * 1000 / max(done - first, 1), 2),
            "events": events,
            "peak_rss_mb": round(_peak_rss_mb(worker.pid), 1),
            "peak_inflight": stats["peak_inflight"],
            "complete": done >= len(urls),
        }
    finally:
        # Warm shutdown: the worker hands its prefetched messages back (a killed worker would
        # leave them in kombu's shared `unacked` hash, to be restored into a dead queue later).
        stop_workers([worker], grace=15)
        log.close()
        keys = list(redis.scan_iter(match=f"{prefix}*", count=5000))
        keys += list(redis.scan_iter(match=f"_kombu.binding*{prefix}*", count=5000))
        for start in range(0, len(keys), 1000):
            redis.delete(*keys[start : start + 1000])


def run_raw(concurrency: int, urls: list[str], warmup: list[str], port: int) -> dict:
    """The fetch stage's own work (``Fetcher.fetch``: guard, robots, schedule, validators,
    HTTP, decoding) on a thread pool in this process, without Celery: what the pool type
    cannot go faster than."""
    from concurrent.futures import ThreadPoolExecutor

    from config import Settings
    from stores.redis_client import client_for
    from tasks.fetch import build_fetcher

    prefix = f"bench-raw-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        key_prefix=prefix, fetch_allow_private=True, host_rate=1000.0, fetch_concurrency=concurrency
    )
    fetcher = build_fetcher(settings)
    failures: list[str] = []

    def one(url: str) -> None:
        try:
            fetcher.fetch(url, uuid.uuid4().hex)
        except Exception as exc:  # counted and reported, like the worker's dead letters
            failures.append(repr(exc))

    try:
        for url in warmup:
            one(url)
        _server_stats(port, reset=True)
        started, cpu_started = time.monotonic(), sum(os.times()[:2])
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(one, urls))
        elapsed = time.monotonic() - started
        cpu = sum(os.times()[:2]) - cpu_started
        return {
            "pool": "raw",
            "concurrency": concurrency,
            "urls": len(urls),
            "fetched": len(urls) - len(failures),
            "dead": len(failures),
            "seconds": round(elapsed, 2),
            "pages_per_s": round(len(urls) / elapsed, 1),
            "cpu_ms_per_page": round(cpu * 1000 / len(urls), 2),
            "events": False,
            "peak_rss_mb": round(_peak_rss_mb(os.getpid()), 1),
            "peak_inflight": _server_stats(port)["peak_inflight"],
            "complete": True,
        }
    finally:
        fetcher.client.close()
        redis = client_for(settings)
        keys = list(redis.scan_iter(match=f"{prefix}*", count=5000))
        for start in range(0, len(keys), 1000):
            redis.delete(*keys[start : start + 1000])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pools", default="gevent:200,threads:200", help="pool:concurrency, comma-separated")
    parser.add_argument("--urls", type=int, default=5000)
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--delay", type=float, default=0.1, help="server answer delay, seconds")
    parser.add_argument("--timeout", type=float, default=120.0, help="cut-off per run, seconds")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(_serve(args.hosts, args.delay))
        return
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--hosts", str(args.hosts), "--delay", str(args.delay)],
        stdout=subprocess.PIPE,
    )
    try:
        assert server.stdout is not None
        ports = json.loads(server.stdout.readline())
        hosts = [f"http://127.0.0.{index + 1}:{port}" for index, port in enumerate(ports)]
        urls = [f"{hosts[i % len(hosts)]}/article/{i}-{uuid.uuid4().hex[:6]}" for i in range(args.urls)]
        warmup = [f"{host}/warmup" for host in hosts]
        results = []
        for spec in args.pools.split(","):
            spec, _, flag = spec.partition("/")
            pool, _, concurrency = spec.partition(":")
            if pool == "raw":
                result = run_raw(int(concurrency or 200), urls, warmup, ports[0])
                print(json.dumps(result), file=sys.stderr, flush=True)
                results.append(result)
                continue
            result = run_pool(
                pool, int(concurrency or 200), urls, warmup, ports[0], args.timeout, events=flag != "noevents"
            )
            print(json.dumps(result), file=sys.stderr, flush=True)
            results.append(result)
    finally:
        server.terminate()
        server.wait()
    print(f"\n{args.urls} URLs over {args.hosts} loopback hosts, server delay {args.delay * 1000:.0f} ms,"
          f" one fetch worker process, load average at end {os.getloadavg()[0]:.2f}")  # fmt: skip
    header = (
        f"{'pool':<8} {'conc':>5} {'events':>6} {'pages/s':>8} {'CPU ms/page':>12} {'seconds':>8}"
        f" {'peak RSS MB':>12} {'in flight':>10} {'dead':>5}"
    )
    print(header)
    print("-" * len(header))
    for row in results:
        if "error" in row:
            print(f"{row['pool']:<8} {row['concurrency']:>5} {row['error']}")
            continue
        note = "" if row["complete"] else f"  (cut off: {row['fetched']}/{row['urls']})"
        print(
            f"{row['pool']:<8} {row['concurrency']:>5} {'on' if row['events'] else 'off':>6}"
            f" {row['pages_per_s']:>8} {row['cpu_ms_per_page']:>12} {row['seconds']:>8}"
            f" {row['peak_rss_mb']:>12} {row['peak_inflight']:>10} {row['dead']:>5}{note}"
        )


if __name__ == "__main__":
    main()
