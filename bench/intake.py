"""How many intake stream entries per second one bridge turns into pipeline jobs.

Pushes ``--entries`` URLs onto a private intake stream (``XADD``, in pipelines of 500, as a
producer in any language would), then runs one :class:`worker.intake_bridge.Bridge` until
every entry is enqueued and acknowledged, and prints entries/s (wall) and CPU per entry. The
fetch queue is a private one that no worker reads; it and every key are deleted afterwards.
Needs the Redis of ``INGEST_REDIS_URL`` (default 127.0.0.1:6379).

    .venv/bin/python bench/intake.py [--entries 5000] [--read-count 100]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--entries", type=int, default=5000)
    parser.add_argument("--read-count", type=int, default=100, help="INGEST_INTAKE_READ_COUNT")
    args = parser.parse_args()
    run = uuid.uuid4().hex[:8]
    os.environ.update(
        {
            "INGEST_KEY_PREFIX": f"bench-intake-{run}",
            "INGEST_FETCH_QUEUE": f"bench-intake-{run}-fetch",
            "INGEST_CPU_QUEUE": f"bench-intake-{run}-cpu",
            "INGEST_INTAKE_READ_COUNT": str(args.read_count),
        }
    )
    from config import get_settings
    from stores.redis_client import client_for
    from worker.intake_bridge import Bridge

    settings = get_settings()
    client = client_for(settings)
    stream = f"{settings.key_prefix}:intake"
    try:
        bridge = Bridge(settings, consumer="bench")
        bridge.prepare()
        for start in range(0, args.entries, 500):
            pipe = client.pipeline(transaction=False)
            for n in range(start, min(start + 500, args.entries)):
                pipe.xadd(stream, {"url": f"https://news.example.org/{run}/story-{n}", "source": "bench"})
            pipe.execute()
        started, cpu_started = time.perf_counter(), time.process_time()
        enqueued = 0
        while enqueued < args.entries:
            step = bridge.step(block_ms=100)
            enqueued += step.counted
            if not step.counted and time.perf_counter() - started > 600:
                break
        wall, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        bridge.close()
        queued = client.llen(settings.fetch_queue)
        print(f"\n{args.entries} entries, read {args.read_count} at a time, one bridge\n")
        print(f"{'enqueued':>10}{'fetch msgs':>12}{'seconds':>10}{'entries/s':>11}{'CPU ms/entry':>14}")
        per_entry = 1000 * cpu / max(enqueued, 1)
        print(f"{enqueued:>10}{queued:>12}{wall:>10.2f}{enqueued / wall:>11.0f}{per_entry:>14.3f}")
    finally:
        keys = list(client.scan_iter(f"{settings.key_prefix}*", count=1000))
        keys += [settings.fetch_queue, settings.cpu_queue]
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
