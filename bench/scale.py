"""Scaling by adding processes: the CPU stages with 1, then 2 processes; fetch with 1, then 2.

Not a test: one run that prints two tables. Everything runs against one Redis (the one of
``INGEST_REDIS_URL``, default redis://127.0.0.1:6379/0), each phase under a key prefix of its
own (so every phase starts with an empty dedup index and seen set), deleted afterwards.

**CPU stages.** Every page of ``../shared/corpus/news`` (146) goes through language, clean,
entities, dedup and publish on real ``ingest worker --queues cpu --concurrency N`` processes.
The pages are pre-fetched: this script stores each body in Redis the way the fetch stage does
(:class:`stores.bodies.BodyStore`) and sends each job's CPU chain itself
(:func:`worker.pipeline.send_after_fetch`), so no fetch process shares the cores and the
measurement is the CPU stages alone. ``--cpu-layouts`` lists the phases as
``WORKERSxPROCESSES``: ``1x1`` (one worker, one pool process), ``1x2`` (one worker, two pool
processes: the models loaded once, shared copy-on-write) and ``2x1`` (two workers of one
process each: what ``docker compose up --scale cpu-worker=2`` or a second Kubernetes pod
does). Model loading is not timed: a phase waits until every worker answers Celery's
``active_queues`` for its queue (after :mod:`worker.warmup`), then sends the 7 test fixture
pages as a warm-up batch and waits for their outcomes; the clock runs from the first chain
sent to the last outcome. The pages are sent largest first, so the last page of a finite
batch is a small one and the end of a phase does not leave one process alone with a big
page (the tail a steady stream does not have).

**Fetch.** 2,000 distinct URLs (``--fetch-urls``) of corpus pages over 50 loopback hosts
(127.0.0.2 .. 127.0.0.51, bench/load.py's server, in its own process) go through 1, then 2
``ingest worker --queues fetch`` processes (gevent, 200 slots each), with the full fetch
stage: SSRF guard, robots.txt, the per-host schedule (at 1,000 requests/s per host, so it
does not bind), the body stored in Redis, the CPU chain sent on. No CPU worker runs: the
chains wait in the phase's CPU queue and are deleted with it. After a warm-up batch (one
URL per host) the clock runs from the start of the enqueue to the last URL fetched.

Every phase runs ``--repeat`` times (default 2), interleaved (1x1, 1x2, 2x1, 1x1, ...), so
that a burst of load from the machine's other users spoils one of them, not a whole layout.
Per phase it prints pages (URLs) per second, the ratio to the best one-process phase, the CPU
seconds the workers' processes used per page and the cores they got, their peak RSS and
total PSS, redis-server's CPU per page (the whole server: others may share it), the 1-minute
load average before and after (``os.getloadavg``) and the cores other processes of the
machine used meanwhile (``/proc/stat`` busy time minus the workers, this script, the page
server and redis-server). A phase during which others used more than a fifth of a core is
flagged NOT IDLE, and so is the run when the load average was above 0.5 before it started.
The verdict takes the best phase of each process count and splits its ratio into the cores
the workers got and the CPU each page cost: on a shared machine the first measures the
neighbours; the second is the pipeline's own scaling loss. The goal (>= 1.7 on 2 idle
cores) is judged only when both phases ran on an idle machine.

    .venv/bin/python bench/scale.py                              # 5-6 minutes on 2 cores
    .venv/bin/python bench/scale.py --cpu-layouts 1x1,1x2 --fetch-processes 1,2 --fetch-urls 1000
    .venv/bin/python bench/scale.py --skip-fetch --rounds 2      # the corpus twice per CPU phase
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.load import _delete_keys, _forget_unacked  # noqa: E402

#: 1-minute load average above which the run warns that it starts on a machine that is not idle.
BUSY_LOAD = 0.5
#: Cores other processes may use during a phase before it is flagged.
BUSY_OTHERS = 0.2
POLL_S = 0.1
TICK = os.sysconf("SC_CLK_TCK")


# --- what the machine and the processes used ---------------------------------------------------
def _stat_fields(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def process_cpu(pid: int, children: bool = False) -> float:
    """utime + stime of ``pid`` (``children``: plus its reaped children's), in seconds."""
    try:
        fields = _stat_fields(pid)
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / TICK


def group_pids(leader: int) -> list[int]:
    """Every live process of the process group led by ``leader`` (a worker and its pool)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if int(_stat_fields(int(entry))[2]) == leader:
                    pids.append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
    return pids


def group_cpu(leader: int) -> float:
    """CPU seconds of a worker's process group: the leader (with its reaped children) and the rest."""
    return sum(process_cpu(pid, children=pid == leader) for pid in group_pids(leader))


def group_memory(leader: int) -> tuple[float, float]:
    """(largest peak RSS of one process, sum of PSS) of the group, in MB."""
    peak, pss = 0, 0
    for pid in group_pids(leader):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                peak = max(peak, int(line.split()[1]))
        for line in rollup.splitlines():
            if line.startswith("Pss:"):
                pss += int(line.split()[1])
    return peak / 1024, pss / 1024


def machine_busy() -> float:
    """CPU seconds every core of the machine spent busy since boot (``/proc/stat``)."""
    values = [int(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values[:8]
    return (user + nice + system + irq + softirq + steal) / TICK


def redis_cpu(client) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


@dataclass
class Phase:
    """One measured phase and what it used."""

    name: str
    processes: int
    items: int = 0
    seconds: float = 0.0
    worker_cpu: float = 0.0
    server_cpu: float = 0.0
    redis_cpu: float = 0.0
    peak_rss_mb: float = 0.0
    pss_mb: float = 0.0
    load_before: float = 0.0
    load_after: float = 0.0
    others_cores: float = 0.0
    outcomes: dict[str, int] = field(default_factory=dict)
    note: str = ""

    @property
    def rate(self) -> float:
        return self.items / self.seconds if self.seconds else 0.0

    @property
    def cores(self) -> float:
        """Cores the workers' processes got, on average over the phase."""
        return self.worker_cpu / self.seconds if self.seconds else 0.0

    @property
    def cost(self) -> float:
        """CPU seconds of the workers' processes per page (URL)."""
        return self.worker_cpu / self.items if self.items else 0.0

    @property
    def busy(self) -> bool:
        return self.others_cores > BUSY_OTHERS


class Meter:
    """The clock and the CPU counters of a phase, from :meth:`start` to :meth:`stop`."""

    def __init__(self, client, leaders: list[int], server: int | None = None) -> None:
        self.client, self.leaders, self.server = client, leaders, server

    def _snapshot(self) -> tuple[float, float, float, float, float, float]:
        return (
            time.monotonic(),
            machine_busy(),
            sum(group_cpu(leader) for leader in self.leaders),
            process_cpu(self.server) if self.server else 0.0,
            redis_cpu(self.client),
            sum(os.times()[:2]),
        )

    def start(self, phase: Phase) -> None:
        phase.load_before = os.getloadavg()[0]
        self.before = self._snapshot()

    def stop(self, phase: Phase) -> None:
        after = self._snapshot()
        wall, busy, workers, server, redis_used, own = (
            b - a for a, b in zip(self.before, after, strict=True)
        )
        phase.seconds, phase.worker_cpu, phase.server_cpu = wall, workers, server
        phase.redis_cpu = redis_used
        phase.others_cores = max(busy - workers - server - redis_used - own, 0.0) / max(wall, 1e-9)
        phase.load_after = os.getloadavg()[0]
        memory = [group_memory(leader) for leader in self.leaders]
        phase.peak_rss_mb = max((peak for peak, _ in memory), default=0.0)
        phase.pss_mb = sum(pss for _, pss in memory)


# --- workers -------------------------------------------------------------------------------------
def start_workers(queue: str, count: int, settings, log_dir: Path, concurrency: int | None = None):
    from tests.support.workers import settings_env
    from worker.processes import spawn_worker

    env = settings_env(settings)
    processes, logs = [], []
    for index in range(count):
        log = (log_dir / f"{settings.key_prefix}-{queue}-{index}.log").open("wb")
        logs.append(log)
        processes.append(spawn_worker(queue, env, log, concurrency))
    return processes, logs


def wait_consumers(queue_name: str, count: int, workers, timeout: float) -> None:
    """Until ``count`` workers answer ``active_queues`` with ``queue_name`` (their models loaded)."""
    from worker.app import app

    deadline = time.monotonic() + timeout
    while True:
        replies = app.control.inspect(timeout=1.0).active_queues() or {}
        nodes = [node for node, queues in replies.items() if any(q.get("name") == queue_name for q in queues)]
        if len(nodes) >= count:
            return
        if any(worker.poll() is not None for worker in workers):
            raise SystemExit(f"a worker exited before it was ready (queue {queue_name})")
        if time.monotonic() > deadline:
            raise SystemExit(
                f"only {len(nodes)} of {count} workers consume {queue_name} after {timeout:.0f} s"
            )
        time.sleep(0.5)


def wait_batch(ledger, batch: str, total: int, workers, timeout: float, stage: str | None = None) -> int:
    """Poll until every URL of ``batch`` has its outcome (``stage``: went through that stage or
    ended dead); the URLs that did."""
    deadline = time.monotonic() + timeout
    while True:
        status = ledger.status(batch)
        if status is None:
            done = 0
        elif stage is None:
            done = status.accounted
        else:
            done = status.stages.get(stage, 0) + status.outcomes.get("dead", 0)
        if done >= total:
            return done
        if time.monotonic() > deadline or any(worker.poll() is not None for worker in workers):
            return done
        time.sleep(POLL_S)


def cleanup(client, prefix: str) -> None:
    try:
        _delete_keys(client, prefix)
        _forget_unacked(client, prefix)
    except Exception as exc:
        print(f"warning: could not delete the keys {prefix}*: {exc}", file=sys.stderr)


# --- the CPU stages ------------------------------------------------------------------------------
def prefetched_jobs(settings, batch: str, pages: list[tuple[str, str]]):
    """Jobs as the fetch stage sends them on: each body stored in Redis, the batch opened."""
    from stores.bodies import BodyStore
    from stores.ledger import Ledger
    from stores.redis_client import client_for
    from worker.producer import new_job
    from worker.stage import outbox_for

    client = client_for(settings)
    ledger = Ledger(client, settings.key_prefix, settings.batch_ttl)
    outbox_for(settings, ledger).ensure_groups(settings.store_names)
    bodies = BodyStore(client, settings.key_prefix, settings.body_ttl)
    jobs = []
    for url, html in pages:
        job = new_job(url, batch)
        record = job.record.model_copy(
            update={
                "final_url": url,
                "http_status": 200,
                "content_type": "text/html; charset=utf-8",
                "fetched_at": datetime.now(UTC),
            }
        )
        key = bodies.put(batch, record.id, html)
        jobs.append(job.model_copy(update={"record": record, "body_key": key}))
    ledger.open_batch(batch, len(jobs), {job.record.id: job.record.url for job in jobs})
    return jobs


def cpu_phase(
    layout: str, pages: list[tuple[str, str]], warmup: list[tuple[str, str]], args, work: Path, label: str
):
    from config import Settings
    from stores.ledger import Ledger
    from stores.redis_client import client_for
    from worker.pipeline import send_after_fetch
    from worker.processes import stop_workers

    workers_n, _, per_worker = layout.partition("x")
    count, concurrency = int(workers_n), int(per_worker or 1)
    prefix = f"bench-scale-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        _env_file=None,
        key_prefix=prefix,
        cpu_concurrency=concurrency,
        seen_ttl=0,  # the warm-up pages may be corpus pages too: nothing ends as `seen`
        stores="jsonl",  # committed to the outbox only: no delivery process runs
        output_dir=work / prefix,
        log_level=args.log_level,
    )
    client = client_for(settings)
    ledger = Ledger(client, prefix, settings.batch_ttl)
    phase = Phase(f"cpu {layout}{label}", count * concurrency)
    workers, logs = start_workers("cpu", count, settings, work, concurrency)
    try:
        started = time.monotonic()
        wait_consumers(settings.cpu_queue, count, workers, args.warmup_timeout)
        warm = f"b-warm-{uuid.uuid4().hex[:6]}"
        for job in prefetched_jobs(settings, warm, warmup):
            send_after_fetch(job, settings)
        if wait_batch(ledger, warm, len(warmup), workers, args.warmup_timeout) < len(warmup):
            raise SystemExit(f"cpu {layout}: warm-up not done, see the logs in {work}")
        print(f"cpu {layout}: ready and warm in {time.monotonic() - started:.1f} s", file=sys.stderr)
        batch = f"b-scale-{uuid.uuid4().hex[:6]}"
        jobs = prefetched_jobs(settings, batch, pages)  # bodies in Redis before the clock starts
        meter = Meter(client, [worker.pid for worker in workers])
        meter.start(phase)
        for job in jobs:
            send_after_fetch(job, settings)
        phase.items = wait_batch(ledger, batch, len(jobs), workers, args.timeout)
        meter.stop(phase)
        status = ledger.status(batch)
        phase.outcomes = {k: v for k, v in (status.outcomes if status else {}).items() if v}
        if phase.items < len(jobs):
            phase.note = f"cut off: {phase.items}/{len(jobs)}"
        print(f"cpu {layout}: {phase.items} pages in {phase.seconds:.1f} s", file=sys.stderr)
        return phase
    finally:
        stop_workers(workers, grace=20)
        for log in logs:
            log.close()
        cleanup(client, prefix)


# --- fetch -----------------------------------------------------------------------------------
def fetch_phase(
    count: int, hosts: list[str], page_ids: list[str], server_pid: int, args, work: Path, label: str
):
    from config import Settings
    from stores.ledger import Ledger
    from stores.redis_client import client_for
    from worker.processes import stop_workers
    from worker.producer import enqueue

    prefix = f"bench-scale-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        _env_file=None,
        key_prefix=prefix,
        fetch_allow_private=True,
        host_rate=1000.0,
        fetch_concurrency=args.fetch_concurrency,
        body_ttl=900,  # the bodies wait for CPU stages that never run: gone soon even if cleanup fails
        stores="jsonl",
        output_dir=work / prefix,
        log_level=args.log_level,
    )
    client = client_for(settings)
    ledger = Ledger(client, prefix, settings.batch_ttl)
    phase = Phase(f"fetch x{count}{label}", count)
    tag = uuid.uuid4().hex[:6]
    urls = [
        f"{hosts[i % len(hosts)]}/page/{page_ids[i % len(page_ids)]}?n={i}-{tag}"
        for i in range(args.fetch_urls)
    ]
    warm_urls = [f"{host}/page/{page_ids[i % len(page_ids)]}?warmup-{tag}" for i, host in enumerate(hosts)]
    workers, logs = start_workers("fetch", count, settings, work)
    try:
        started = time.monotonic()
        wait_consumers(settings.fetch_queue, count, workers, args.warmup_timeout)
        warm = enqueue(warm_urls, settings=settings).batch
        if wait_batch(ledger, warm, len(warm_urls), workers, 120, stage="fetch") < len(warm_urls):
            raise SystemExit(f"fetch x{count}: warm-up not done, see the logs in {work}")
        print(f"fetch x{count}: ready and warm in {time.monotonic() - started:.1f} s", file=sys.stderr)
        meter = Meter(client, [worker.pid for worker in workers], server_pid)
        meter.start(phase)
        enqueue_started = time.monotonic()
        result = enqueue(urls, settings=settings)
        enqueue_s = time.monotonic() - enqueue_started
        phase.items = wait_batch(ledger, result.batch, len(urls), workers, args.timeout, stage="fetch")
        meter.stop(phase)
        status = ledger.status(result.batch)
        dead = status.outcomes.get("dead", 0) if status else 0
        phase.outcomes = {"fetched": phase.items - dead, "dead": dead}
        phase.note = f"enqueue {enqueue_s:.1f} s" + (
            f"; cut off: {phase.items}/{len(urls)}" if phase.items < len(urls) else ""
        )
        print(f"fetch x{count}: {phase.items} URLs in {phase.seconds:.1f} s", file=sys.stderr)
        return phase
    finally:
        stop_workers(workers, grace=20)
        for log in logs:
            log.close()
        cleanup(client, prefix)


# --- the tables ----------------------------------------------------------------------------------
def print_table(title: str, unit: str, phases: list[Phase], server: bool) -> None:
    print(f"\n{title}")
    base = max((phase.rate for phase in phases if phase.processes == 1), default=0.0)
    columns = [
        ("phase", 11),
        ("procs", 5),
        (unit, 6),
        ("seconds", 7),
        (f"{unit}/s", 8),
        ("ratio", 5),
        ("CPU ms/URL" if server else "CPU s/page", 12),
        ("cores", 5),
        *([("server ms/URL", 13)] if server else []),
        ("peak RSS MB", 11),
        ("PSS MB", 7),
        ("load before>after", 17),
        ("redis ms", 8),
        ("others", 6),
    ]
    header = "  ".join(
        f"{name:>{width}}" if i else f"{name:<{width}}" for i, (name, width) in enumerate(columns)
    )
    print(header)
    print("-" * len(header))
    for phase in phases:
        per = phase.worker_cpu / max(phase.items, 1)
        cells = [
            f"{phase.name:<11}",
            f"{phase.processes:>5}",
            f"{phase.items:>6}",
            f"{phase.seconds:>7.1f}",
            f"{phase.rate:>8.2f}",
            f"{phase.rate / base:>5.2f}" if base else f"{'-':>5}",
            f"{per * 1000:>12.1f}" if server else f"{per:>12.3f}",
            f"{phase.cores:>5.2f}",
            *([f"{phase.server_cpu * 1000 / max(phase.items, 1):>13.2f}"] if server else []),
            f"{phase.peak_rss_mb:>11.0f}",
            f"{phase.pss_mb:>7.0f}",
            f"{phase.load_before:>8.2f} > {phase.load_after:<6.2f}",
            f"{phase.redis_cpu * 1000 / max(phase.items, 1):>8.1f}",
            f"{phase.others_cores:>6.2f}",
        ]
        line = "  ".join(cells)
        extra = ", ".join(f"{k} {v}" for k, v in phase.outcomes.items())
        busy = f"NOT IDLE (others {phase.others_cores:.2f} cores)" if phase.busy else ""
        notes = "; ".join(part for part in (extra, phase.note, busy) if part)
        print(f"{line}  {notes}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cpu-layouts", default="1x1,1x2,2x1", help="WORKERSxPROCESSES, comma-separated")
    parser.add_argument("--fetch-processes", default="1,2", help="fetch worker processes per phase")
    parser.add_argument("--fetch-urls", type=int, default=2000)
    parser.add_argument("--fetch-concurrency", type=int, default=200)
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=1, help="times the corpus goes through each CPU phase")
    parser.add_argument(
        "--repeat", type=int, default=2, help="times each phase runs, interleaved (the best counts)"
    )
    parser.add_argument("--limit", type=int, default=None, help="only the first N corpus pages")
    parser.add_argument("--timeout", type=float, default=900.0, help="cut-off per phase, seconds")
    parser.add_argument("--warmup-timeout", type=float, default=300.0)
    parser.add_argument("--settle", type=float, default=0.0,
                        help="before each phase, wait up to this many seconds for the 1-min load to fall"
                        f" below {BUSY_LOAD}")  # fmt: skip
    parser.add_argument("--skip-cpu", action="store_true")
    parser.add_argument("--skip-fetch", action="store_true")
    parser.add_argument("--log-level", default="WARNING", help="of the workers (default WARNING)")
    parser.add_argument("--keep", action="store_true", help="keep the worker logs")
    args = parser.parse_args()
    if args.hosts > 250:
        parser.error("--hosts: at most 250 (127.0.0.2 .. 127.0.0.251)")
    os.chdir(ROOT)  # the workers run `python -m worker` from here
    # Ctrl-C and SIGTERM both clean up (SIGINT explicitly: a shell's background job starts with it ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)

    from tests.support.pages import FIXTURES, SHARED_CORPUS, load_pages

    corpus = SHARED_CORPUS / "news"
    if not (corpus / "index.jsonl").exists():
        sys.exit(f"corpus not found at {corpus}: this benchmark reads ../shared/corpus/news")
    corpus_pages = load_pages(corpus)[: args.limit]
    by_size = sorted(((str(p.truth["url"]), p.html) for p in corpus_pages), key=lambda item: -len(item[1]))
    pages = [
        (url if not round_ else f"{url}{'&' if '?' in url else '?'}scale-round={round_}", html)
        for round_ in range(args.rounds)
        for url, html in by_size
    ]
    warmup = [(f"https://warmup.invalid/{p.id}", p.html) for p in load_pages(FIXTURES)]
    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    cpu: list[Phase] = []
    fetch: list[Phase] = []
    load_start = os.getloadavg()
    started = time.monotonic()
    try:
        if not args.skip_cpu:
            for index in range(args.repeat):
                label = f" #{index + 1}" if args.repeat > 1 else ""
                for layout in args.cpu_layouts.split(","):
                    settle(args.settle)
                    cpu.append(cpu_phase(layout.strip(), pages, warmup, args, work, label))
        if not args.skip_fetch:
            fetch = run_fetch(args, [p.id for p in corpus_pages], work)
    except KeyboardInterrupt:
        print("interrupted: what was measured so far", file=sys.stderr)
    finally:
        if args.keep:
            print(f"kept the worker logs in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(
        f"\nbench/scale.py on {os.cpu_count()} CPUs; 1-min load average {load_start[0]:.2f} at start,"
        f" {os.getloadavg()[0]:.2f} at the end ({time.monotonic() - started:.0f} s; this run's own phases"
        " count in the load averages after the first). 'cores': CPU the workers' processes used per"
        " second of the phase; 'redis ms': redis-server's CPU per page or URL; 'others': cores the"
        f" other processes of the machine used meanwhile; NOT IDLE: others > {BUSY_OTHERS}."
    )
    if load_start[0] > BUSY_LOAD:
        print(
            f"WARNING: the machine was not idle when the run started (1-min load {load_start[0]:.2f}"
            f" on {os.cpu_count()} CPUs): the ratios measure the neighbours too"
        )
    if cpu:
        print_table(
            f"CPU stages (language, clean, entities, dedup, publish), {len(pages)} pre-fetched corpus pages"
            " per phase, largest first; workers x pool processes",
            "pages",
            cpu,
            server=False,
        )
        verdict(cpu, goal=1.7)
    if fetch:
        print_table(
            f"fetch, {args.fetch_urls} URLs of corpus pages over {args.hosts} loopback hosts, gevent"
            f" {args.fetch_concurrency} slots per process; CPU per URL of the fetch processes and of"
            " the page server",
            "URLs",
            fetch,
            server=True,
        )
        verdict(fetch, goal=None)


def verdict(phases: list[Phase], goal: float | None) -> None:
    """The best phase of 2 processes against the best of 1, and what the ratio is made of."""
    one = max((p for p in phases if p.processes == 1 and p.items), key=lambda p: p.rate, default=None)
    two = max((p for p in phases if p.processes == 2 and p.items), key=lambda p: p.rate, default=None)
    if one is None or two is None:
        return
    ratio = two.rate / one.rate
    print(
        f"best of each: {two.name} / {one.name} = {ratio:.2f} = the cores the workers got"
        f" ({two.cores:.2f} / {one.cores:.2f} = {two.cores / one.cores:.2f}x) x the work per item"
        f" ({one.cost * 1000:.1f} / {two.cost * 1000:.1f} ms = {one.cost / two.cost:.2f}x)"
    )
    if goal is None:
        return
    if one.busy or two.busy:
        print(
            f"goal 2 processes / 1 >= {goal}: not measurable on this machine (others used"
            f" {one.others_cores:.2f} and {two.others_cores:.2f} cores during those phases); the work per"
            f" page changed by {two.cost / one.cost - 1:+.0%} from 1 to 2 processes"
        )
    else:
        print(f"goal 2 processes / 1 >= {goal}: {'met' if ratio >= goal else 'MISSED'} ({ratio:.2f})")


def settle(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while os.getloadavg()[0] > BUSY_LOAD and time.monotonic() < deadline:
        time.sleep(5)


def run_fetch(args, page_ids: list[str], work: Path) -> list[Phase]:
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "load.py"), "--serve", "--hosts", str(args.hosts)],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    phases = []
    try:
        assert server.stdout is not None
        ports = json.loads(server.stdout.readline())
        hosts = [f"http://127.0.0.{index + 2}:{port}" for index, port in enumerate(ports)]
        for index in range(args.repeat):
            label = f" #{index + 1}" if args.repeat > 1 else ""
            for count in (int(n) for n in args.fetch_processes.split(",")):
                settle(args.settle)
                phases.append(fetch_phase(count, hosts, page_ids, server.pid, args, work, label))
    finally:
        server.terminate()
        server.wait()
    return phases


if __name__ == "__main__":
    main()
