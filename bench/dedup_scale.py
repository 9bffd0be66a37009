"""Near-duplicate index at scale: check-and-insert latency and Redis memory per article.

Loads N synthetic articles (1,000,000 by default) into the real index
(:class:`stores.dedup_index.NearDuplicateIndex`, the Lua script the workers run), their
insertion times spread evenly over the dedup window so lookups cross every generation,
then times single check-and-insert calls at the end of the window, one round trip each,
over loopback: half new articles, 40 % near-copies of indexed ones (about half their
MinHash values changed), 10 % exact re-deliveries. Synthetic signatures stand in for text
(computing 1M real MinHashes would take the bench's whole budget; ``bench/dedup.py`` times
the signature, ~1.5 ms a page): 85 % random, 10 % near-copies of a recent article, 5 %
sharing a "boilerplate" band value with thousands of others (capped per band key).

By default a private ``redis-server`` with upstream default settings (listpack hashes up to
128 fields of up to 64 bytes) is started on a free loopback
port (so memory is measured alone and with default listpack limits) and shut down at the
end; ``--redis-url`` uses an existing Redis instead, under a fresh key prefix whose keys
are deleted afterwards (memory is then a before/after difference, noisier).

    .venv/bin/python bench/dedup_scale.py [--docs 1000000] [--queries 10000]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from config import Settings  # noqa: E402
from stores.dedup_index import IndexParams, NearDuplicateIndex  # noqa: E402
from tasks.dedup import index_params  # noqa: E402
from tasks.minhash import Signature  # noqa: E402

BATCH = 500
RECENT = 20_000


@contextmanager
def private_redis() -> Iterator[str]:
    """A throwaway redis-server on a free loopback port, stock settings, no persistence."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server not found; pass --redis-url")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    workdir = tempfile.mkdtemp(prefix="dedup-scale-")
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir,
            "--hash-max-listpack-entries",
            "128",
            "--hash-max-listpack-value",
            "64",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        for _ in range(100):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)
        shutil.rmtree(workdir, ignore_errors=True)


def synthetic(
    rng: np.random.Generator, recent: list[np.ndarray], hot: np.ndarray, num_perm: int
) -> np.ndarray:
    """One synthetic MinHash: random, a near-copy of a recent one, or sharing a hot band value."""
    roll = rng.random()
    values = rng.integers(0, 2**32, size=num_perm, dtype=np.uint64).astype(np.uint32)
    if roll < 0.10 and recent:
        base = recent[int(rng.integers(len(recent)))]
        keep = rng.random(num_perm) < 0.55
        values = np.where(keep, base, values).astype(np.uint32)
    elif roll < 0.15:
        band = int(rng.integers(4))
        values[band] = hot[int(rng.integers(len(hot)))]
    return values


def load_share(
    url: str, prefix: str, params: IndexParams, docs: int, share: int, shares: int, start_time: float
) -> tuple[int, list[np.ndarray]]:
    """Load articles ``share``, ``share + shares``, ... through the real script, pipelined;
    how many joined a group, and the last signatures loaded."""
    index = NearDuplicateIndex(redis.Redis.from_url(url), prefix, params)
    rng = np.random.default_rng(7 + share)
    hot = np.random.default_rng(7).integers(0, 2**32, size=100, dtype=np.uint64).astype(np.uint32)
    recent: list[np.ndarray] = []
    step = params.window / docs
    joined = 0
    numbers = range(share, docs, shares)
    for first in range(0, len(numbers), BATCH):
        items = []
        for i in numbers[first : first + BATCH]:
            values = synthetic(rng, recent, hot, params.num_perm)
            recent.append(values)
            items.append((os.urandom(16).hex(), Signature(values), start_time + i * step))
        if len(recent) > RECENT:
            del recent[: len(recent) - RECENT]
        joined += sum(m.duplicate_of is not None for m in index.check_and_insert_many(items))
        if share == 0 and (first // BATCH) % 200 == 199:
            print(f"  loaded ~{(first + BATCH) * shares:>9,}", flush=True)
    return joined, recent[-2500:]


def percentile(samples: list[float], q: float) -> float:
    """The q-th percentile, in milliseconds."""
    return float(np.percentile(np.array(samples), q)) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--generations", type=int, default=None, help="Override dedup_generations.")
    parser.add_argument("--per-hash", type=int, default=100, help="Band fields per hash when sizing buckets.")
    parser.add_argument(
        "--nice",
        type=int,
        default=None,
        help="During the timed calls only, run this bench and the private Redis at this nice value "
        "(e.g. -10, as root) so other work on a shared machine does not preempt them.",
    )
    parser.add_argument("--loaders", type=int, default=2, help="Loading processes (pipelined each).")
    parser.add_argument("--redis-url", default=None, help="Use this Redis instead of a private one.")
    parser.add_argument(
        "--buckets", type=int, default=None, help="Band hashes per generation (default: sized for --docs)."
    )
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still stop the private Redis, delete keys
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    base_params = index_params(settings)
    generations = args.generations or base_params.generations
    per_generation = args.docs / generations
    buckets = args.buckets or max(1024, int(per_generation * base_params.bands / args.per_hash))
    params = IndexParams(**{**base_params.__dict__, "buckets": buckets, "generations": generations})
    with private_redis() if args.redis_url is None else nullcontext(args.redis_url) as url:
        return run(
            url, params, args.docs, args.queries, args.loaders, args.nice, private=args.redis_url is None
        )


@contextmanager
def nullcontext(value: str) -> Iterator[str]:
    yield value


def run(
    url: str, params: IndexParams, docs: int, queries: int, loaders: int, nice: int | None, *, private: bool
) -> int:
    client = redis.Redis.from_url(url)
    config = client.config_get("hash-max-listpack-*")
    prefix = f"bench-scale-{uuid.uuid4().hex[:8]}"
    index = NearDuplicateIndex(client, prefix, params)
    rng = np.random.default_rng(7)
    start_time = time.time()
    before = int(client.info("memory")["used_memory"])
    print(
        f"index: {params.num_perm} permutations, {params.bands} bands, window {params.window // 3600} h in "
        f"{params.generations} generations, {params.buckets} band hashes per generation; "
        f"redis {client.info('server')['redis_version']} ({'private' if private else url}), {config}"
    )
    started = time.perf_counter()
    try:
        jobs = [(url, prefix, params, docs, share, loaders, start_time) for share in range(loaders)]
        with multiprocessing.get_context("fork").Pool(loaders) as pool:
            results = pool.starmap(load_share, jobs)
        duplicates = sum(joined for joined, _ in results)
        indexed = [values for _, tail in results for values in tail]
        load_seconds = time.perf_counter() - started
        after = int(client.info("memory")["used_memory"])
        keys = int(client.dbsize()) if private else -1
        per_doc = (after - before) / docs
        print(
            f"loaded {docs:,} articles in {load_seconds:.0f} s "
            f"({docs / load_seconds:,.0f}/s, {loaders} pipelined loaders), "
            f"{duplicates:,} joined a group; used_memory +{(after - before) / 2**20:.1f} MiB = "
            f"{per_doc:.0f} bytes per article" + (f", {keys:,} keys" if keys >= 0 else "")
        )

        now = start_time + params.window
        if nice is not None:
            pids = [os.getpid(), int(client.info("server")["process_id"])] if private else [os.getpid()]
            for pid in pids:
                os.setpriority(os.PRIO_PROCESS, pid, nice)
            print(f"timed calls at nice {nice} (bench and Redis)")
        client.config_resetstat()
        kinds = {"new": [], "near-copy": [], "re-delivery": []}  # type: dict[str, list[float]]
        for q in range(queries):
            roll = q % 10
            if roll < 5:
                values = rng.integers(0, 2**32, size=params.num_perm, dtype=np.uint64).astype(np.uint32)
                kind = "new"
            elif roll < 9:
                base = indexed[int(rng.integers(len(indexed)))]
                keep = rng.random(params.num_perm) < 0.55
                values = np.where(keep, base, rng.integers(0, 2**32, size=params.num_perm)).astype(np.uint32)
                kind = "near-copy"
            else:
                values = indexed[int(rng.integers(len(indexed)))]
                kind = "re-delivery"
            signature = Signature(values)
            record = os.urandom(16).hex()
            t0 = time.perf_counter()
            index.check_and_insert(record, signature, now=now)
            kinds[kind].append(time.perf_counter() - t0)
        stats = client.info("commandstats").get("cmdstat_evalsha", {})
        every = [sample for samples in kinds.values() for sample in samples]
        print(f"\ncheck-and-insert with {docs:,} indexed, {queries:,} single calls over loopback (ms):")
        print(f"{'calls':<14} {'n':>6} {'p50':>7} {'p90':>7} {'p99':>7} {'p99.9':>7} {'max':>7}")
        for name, samples in [("all", every), *kinds.items()]:
            cells = [percentile(samples, q) for q in (50, 90, 99, 99.9)] + [max(samples) * 1000]
            print(f"{name:<14} {len(samples):>6} " + " ".join(f"{cell:>7.3f}" for cell in cells))
        if stats:
            print(
                f"Redis time inside the script: {stats.get('usec_per_call', 0) / 1000:.3f} ms per call (mean)"
            )
        print(
            f"\nmemory: {per_doc:.0f} bytes per indexed article (goal <= 300); "
            f"p99 {percentile(every, 99):.3f} ms (goal <= 2)"
        )
    finally:
        deleted = index.clear()
        print(f"deleted {deleted:,} keys")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
