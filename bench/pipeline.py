"""End-to-end throughput of `ingest run`, and what Celery costs per article.

Serves every page of ../shared/corpus/news from 127.0.0.1, runs `ingest run` on their URLs
exactly as a user would (embedded Redis, local workers), then prints:

* wall-clock throughput (pages/s), with and without worker start-up;
* per article, the time spent inside the stage functions (from each record's `pipeline`)
  against the CPU-process time the run used per article once the workers were warm (first
  language stage to last publish, from the workers' log): the difference is the Celery/Redis
  overhead (messaging, JSON, ledger round trips, idle time, and the fetch process and the
  `ingest run` process sharing the same cores);
* how page bodies travel: the size of a stage message with the body by reference (what we
  do) against the same message with the page inline.

Usage: .venv/bin/python bench/pipeline.py [--limit N] [--cpu-workers N]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.http_server import serve_pages  # noqa: E402
from tests.support.pages import SHARED_CORPUS, load_pages  # noqa: E402

CPU_STAGES = ("language", "clean", "entities", "dedup")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="only the first N pages")
    parser.add_argument("--cpu-workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument(
        "--fetch-pool", choices=["gevent", "threads"], default=None, help="default: the setting's"
    )
    args = parser.parse_args()
    corpus = SHARED_CORPUS / "news"
    if not (corpus / "index.jsonl").exists():
        sys.exit(f"corpus not found at {corpus}: this benchmark reads ../shared/corpus/news")
    pages = load_pages(corpus)[: args.limit]
    env = {key: value for key, value in os.environ.items() if not key.startswith("INGEST_")}
    env["INGEST_FETCH_ALLOW_PRIVATE"] = "true"
    # Every page comes from one loopback host: at the default 1 request/s per host the run
    # would measure politeness, not the pipeline.
    env["INGEST_HOST_RATE"] = "1000"
    if args.fetch_pool:
        env["INGEST_FETCH_POOL"] = args.fetch_pool
    with tempfile.TemporaryDirectory() as directory, serve_pages(pages) as server:
        urls_file = Path(directory) / "urls.txt"
        urls_file.write_text("\n".join(server.url(page.id) for page in pages) + "\n")
        out = Path(directory) / "out"
        command = [sys.executable, "-m", "worker", "run", str(urls_file), "--out", str(out)]
        command += ["--cpu-workers", str(args.cpu_workers)]
        started = time.monotonic()
        completed = subprocess.run(command, env=env, capture_output=True, text=True)
        wall = time.monotonic() - started
        if completed.returncode not in (0, 3):  # 3: some pages ended as dead letters, counted below
            sys.exit(completed.stderr[-3000:])
        records = [json.loads(line) for line in (out / "articles.jsonl").read_text().splitlines()]
        dead = (out / "dead-letters.jsonl").read_text().splitlines()
        run_seconds = float(json.loads((out / "summary.json").read_text())["elapsed"])
        window = _processing_window(out / "workers.log")
    n = len(records) + len(dead)
    cpu_work = [sum(record["pipeline"].get(stage, 0.0) for stage in CPU_STAGES) for record in records]
    fetch_work = [record["pipeline"].get("fetch", 0.0) for record in records]
    mean_cpu = statistics.mean(cpu_work)
    used_per_article = args.cpu_workers * window / n
    rows = [
        ("pages", f"{n} ({len(records)} records, {len(dead)} dead letters)"),
        ("cpu worker processes", str(args.cpu_workers)),
        ("wall clock, whole command", f"{wall:.1f} s -> {n / wall:.2f} pages/s"),
        ("enqueue to last outcome", f"{run_seconds:.1f} s -> {n / run_seconds:.2f} pages/s"),
        ("first language to last publish", f"{window:.1f} s -> {n / window:.2f} pages/s (workers warm)"),
        ("stage work per article (CPU stages)", f"{mean_cpu * 1000:.1f} ms"),
        *(
            (f"  {stage}", f"{statistics.mean(r['pipeline'].get(stage, 0.0) for r in records) * 1000:.1f} ms")
            for stage in CPU_STAGES
        ),
        ("fetch per article (I/O pool)", f"{statistics.mean(fetch_work) * 1000:.1f} ms"),
        ("CPU-process time used per article", f"{used_per_article * 1000:.1f} ms"),
        ("Celery + Redis overhead per article", f"{(used_per_article - mean_cpu) * 1000:.1f} ms"),
        ("overhead share", f"{(used_per_article - mean_cpu) / used_per_article:.1%}"),
    ]
    html_sizes = [len(page.html.encode()) for page in pages]
    compressed = [len(zlib.compress(page.html.encode(), 1)) for page in pages[:40]]
    message = {"batch": "b-x", "record": records[0] | {"text": ""}, "body_key": "ingest:body:" + "0" * 32}
    by_reference = len(json.dumps(message))
    rows += [
        ("page HTML, mean", f"{statistics.mean(html_sizes) / 1024:.0f} KiB"),
        ("page in Redis (zlib 1), mean", f"{statistics.mean(compressed) / 1024:.0f} KiB"),
        ("stage message, body by key", f"{by_reference / 1024:.1f} KiB"),
        ("stage message, body inline", f"{(by_reference + statistics.mean(html_sizes)) / 1024:.0f} KiB"),
    ]
    width = max(len(label) for label, _ in rows)
    print(f"{'measure':<{width}}  value")
    print(f"{'-' * width}  {'-' * 40}")
    for label, value in rows:
        print(f"{label:<{width}}  {value}")


def _processing_window(log: Path) -> float:
    """Seconds from the first CPU stage that finished to the last stage (start-up excluded)."""
    from datetime import datetime

    first, last = float("inf"), 0.0
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("{") and '"stage.done"' in line:
            event = json.loads(line)
            stamp = datetime.fromisoformat(event["timestamp"]).timestamp()
            last = max(last, stamp)
            if event.get("stage") == "language":
                first = min(first, stamp)
    if not first < last:
        raise SystemExit(f"no stage timings in {log}")
    return last - first


if __name__ == "__main__":
    main()
