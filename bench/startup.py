"""Start-up of a CPU worker: time to ready, first-article latency and memory, per preload choice.

For each ``INGEST_PRELOAD_MODELS`` value given (default: ``all``, ``none``, ``fr``, ``en``), on a
private Redis (embedded, or ``INGEST_REDIS_URL`` with a fresh key prefix) and the bundled
sample pages served from 127.0.0.1:

1. a fetch worker and ``ingest deliver`` are started and waited for (the fetch worker answers
   ``active_queues``), so that what follows measures the CPU worker alone;
2. at t0 ``ingest worker --queues cpu --concurrency N`` is started, and at once two batches
   of one URL are enqueued: a German page (no spaCy pipeline: the fallback entities) and a
   French one (the ``fr`` pipeline);
3. measured from t0: **ready**, when the worker first answers Celery's ``active_queues`` for
   the cpu queue (what ``ingest run`` and the health check wait for); **de** and **fr**, when
   each batch has its outcome in the ledger (the article went through every CPU stage);
4. then the memory of the worker: RSS of the parent (the process that preloaded) and of each
   pool process, and the PSS of them all (shared pages divided among the processes that map
   them: what the worker really costs), after the two articles.

``--root DIR`` runs the workers from another copy of the code (e.g. ``git archive HEAD | tar
-x -C /tmp/head``) to measure the code before a change; the preload value is then passed
but only means something to code that reads it. Each value runs ``--repeat`` times (the
first run of a session may read the models from disk, later ones from the page cache).

Run: ``.venv/bin/python bench/startup.py [--preload all none] [--concurrency 2]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402

from config import Settings  # noqa: E402
from worker.demo import serve_examples  # noqa: E402

#: The sample pages (examples/pages) whose batches are timed: German has no pipeline.
PAGES = {"de": "at-ORF_2024_11_22.html", "fr": "fr-LeMonde_2023_09_01.html"}


def _spawn(
    queue: str, env: dict[str, str], log: Path, root: Path, concurrency: int | None
) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "worker"]
    command += ["deliver"] if queue == "deliver" else ["worker", "--queues", queue]
    if concurrency is not None:
        command += ["--concurrency", str(concurrency)]
    handle = log.open("ab")
    return subprocess.Popen(command, env=env, cwd=root, stdout=handle, stderr=handle, start_new_session=True)


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()


def _memory(pid: int) -> dict[str, float]:
    parent = psutil.Process(pid)
    children = parent.children(recursive=True)
    mb = 1024 * 1024
    rss_children = [child.memory_info().rss / mb for child in children]
    pss = sum(process.memory_full_info().pss for process in (parent, *children)) / mb
    return {
        "parent_rss": parent.memory_info().rss / mb,
        "child_rss_max": max(rss_children, default=0.0),
        "child_rss_min": min(rss_children, default=0.0),
        "pss_total": pss,
    }


def measure(
    preload: str, settings: Settings, root: Path, concurrency: int, urls: dict[str, str]
) -> dict[str, float]:
    """One start of a CPU worker with ``INGEST_PRELOAD_MODELS=preload``: seconds and MB."""
    from stores.ledger import Ledger
    from stores.redis_client import client_for
    from worker.probe import consumed_queues, control_app
    from worker.producer import enqueue, new_batch_id

    prefix = f"bench-startup-{uuid.uuid4().hex[:8]}"
    settings = settings.model_copy(update={"key_prefix": prefix})
    env = {key: value for key, value in os.environ.items() if not key.startswith("INGEST_")}
    env.update(
        {
            "INGEST_REDIS_URL": settings.effective_redis_url,
            "INGEST_KEY_PREFIX": prefix,
            "INGEST_FETCH_ALLOW_PRIVATE": "true",
            "INGEST_HOST_RATE": "1000",
            "INGEST_SEEN_TTL": "0",
            "INGEST_STORES": "jsonl",
            "INGEST_LOG_JSON": "true",
            "PYTHONPATH": str(root),
        }
    )
    ledger = Ledger(client_for(settings), prefix, settings.batch_ttl)
    control = control_app(settings)
    processes: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as directory:
        env["INGEST_OUTPUT_DIR"] = directory
        log = Path(directory) / "workers.log"
        try:
            processes.append(_spawn("fetch", env, log, root, None))
            processes.append(_spawn("deliver", env, log, root, None))
            deadline = time.monotonic() + 120
            while "fetch" not in consumed_queues(settings, control, timeout=0.2):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the fetch worker did not start; see {log}")
            started = time.monotonic()
            cpu = _spawn("cpu", {**env, "INGEST_PRELOAD_MODELS": preload}, log, root, concurrency)
            processes.append(cpu)
            batches = {}
            for language, url in urls.items():
                batches[language] = new_batch_id()
                enqueue([url], settings=settings, batch=batches[language])
            times: dict[str, float] = {}
            deadline = started + 300
            while len(times) < len(batches) + 1:
                if "ready" not in times and "cpu" in consumed_queues(settings, control, timeout=0.2):
                    times["ready"] = time.monotonic() - started
                for language, batch in batches.items():
                    status = ledger.status(batch)
                    if language not in times and status is not None and status.done:
                        times[language] = time.monotonic() - started
                if cpu.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the cpu worker exited or timed out ({times}); see {log}")
                time.sleep(0.05)
            time.sleep(1.0)  # let the pool settle before reading its memory
            return {**times, **_memory(cpu.pid)}
        finally:
            _stop(processes)
            control.close()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--preload", nargs="+", default=["all", "none", "fr", "en"], help="INGEST_PRELOAD_MODELS values"
    )
    parser.add_argument("--concurrency", type=int, default=2, help="pool processes of the CPU worker")
    parser.add_argument("--repeat", type=int, default=2, help="runs per value (the median is shown)")
    parser.add_argument(
        "--root", type=Path, default=ROOT, help="the code the workers run (default: this one)"
    )
    args = parser.parse_args()
    with ExitStack() as stack:
        base = Settings(_env_file=None)  # type: ignore[call-arg]
        if base.redis_url is None:
            from worker.embedded import embedded_redis

            base = base.model_copy(update={"redis_url": stack.enter_context(embedded_redis())})
        pages = stack.enter_context(serve_examples())
        urls = {
            language: next(url for url in pages if url.endswith(name)) for language, name in PAGES.items()
        }
        print(
            f"code: {args.root}; CPU worker --concurrency {args.concurrency}; {os.cpu_count()} CPUs;"
            f" median of {args.repeat}"
        )
        header = (
            f"{'preload':>8s} {'ready s':>8s} {'de s':>6s} {'fr s':>6s} {'parent RSS':>10s}"
            f" {'child RSS':>13s} {'PSS total':>9s}"
        )
        print(header)
        print("-" * len(header))
        for preload in args.preload:
            runs = [
                measure(preload, base, args.root.resolve(), args.concurrency, urls)
                for _ in range(args.repeat)
            ]
            row = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
            children = f"{row['child_rss_min']:.0f}-{row['child_rss_max']:.0f} MB"
            print(
                f"{preload:>8s} {row['ready']:8.1f} {row['de']:6.1f} {row['fr']:6.1f}"
                f" {row['parent_rss']:7.0f} MB {children:>13s} {row['pss_total']:6.0f} MB"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
