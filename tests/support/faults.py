"""What the fault suite shares: a private Redis with AOF it may restart, process killing, a
slow page server, and the promise checked from the stores' contents."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import redis

from config import Settings
from tests.support.hostile_server import article_html


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PrivateRedis:
    """A redis-server of the test's own, with AOF (``appendfsync always``), that it may stop."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Its URL."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start it (again), on the same port and data directory."""
        self.directory.mkdir(parents=True, exist_ok=True)
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed"
        command = [
            binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
            "--appendonly", "yes", "--appendfsync", "always", "--save", "",
        ]  # fmt: skip
        log = (self.directory / "redis.log").open("ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=log)
        wait_for(lambda: _answers(self.url), timeout=30)

    def stop(self) -> None:
        """Stop it as a restart does (SIGTERM: it flushes the AOF and exits)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)


def _answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


@contextmanager
def private_redis(directory: Path) -> Iterator[PrivateRedis]:
    """A running :class:`PrivateRedis`, stopped at the end."""
    server = PrivateRedis(directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """kill -9 a worker and every process it started (its pool)."""
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def wait_for(predicate: Callable[[], bool], timeout: float = 180.0, every: float = 0.1) -> None:
    """Poll until ``predicate()``; TimeoutError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(every)


def outcomes_so_far(settings: Settings, batch: str) -> int:
    """URLs of the batch that have their outcome (0 while Redis is unreachable)."""
    from stores.ledger import Ledger
    from stores.redis_client import client_for

    try:
        status = Ledger(client_for(settings), settings.key_prefix, settings.batch_ttl).status(batch)
    except redis.RedisError:
        return 0
    return status.accounted if status else 0


def assert_each_url_ended_once(
    settings: Settings, urls: list[str], fault: str = "", seconds: float | None = None
) -> tuple[int, int]:
    """The promise, read from the JSONL store: every URL is exactly one record or one dead
    letter, and none is both. Returns (records, dead letters); with ``fault``, prints the
    row of the fault table (``pytest -s`` shows it)."""
    records = _lines(settings.output_dir / "articles.jsonl")
    letters = [line for line in _lines(settings.output_dir / "dead-letters.jsonl") if not line.get("store")]
    ended = Counter([str(line["url"]) for line in records] + [str(line["url"]) for line in letters])
    assert ended == Counter(urls), {
        "missing": sorted(set(urls) - set(ended)),
        "twice": sorted(url for url, count in ended.items() if count > 1),
    }
    ids = Counter(str(line["id"]) for line in records)
    assert all(count == 1 for count in ids.values())
    if fault:
        recovered = f"{seconds:.0f} s" if seconds is not None else "-"
        print(f"\nFAULT | {fault} | {len(urls)} | {len(records)} | {len(letters)} | 0 | 0 | {recovered} |")
    return len(records), len(letters)


def _lines(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def batch_urls(base_url: str, page_url: Callable[[str], str], variants: int = 5) -> list[str]:
    """The fixture pages in ``variants`` copies each, plus a 404 and a refused connection."""
    from tests.support.pages import load_pages

    urls = [page_url(page.id) + f"?v={n}" for page in load_pages() for n in range(variants)]
    return [*urls, base_url + "/missing", "http://127.0.0.1:1/refused"]


@dataclass
class KilledRun:
    """What :func:`batch_with_a_worker_killed` saw."""

    urls: list[str]
    status: dict[str, object]
    seconds_after_kill: float


def batch_with_a_worker_killed(settings: Settings, log_dir: Path, victim: str) -> KilledRun:
    """Run a batch on fetch, CPU and delivery workers; once 5 URLs have ended, kill -9 the
    ``victim`` worker (``fetch`` or ``cpu``) with its pool and start a new one; wait for the end."""
    from tests.support.http_server import serve_pages
    from tests.support.pages import load_pages
    from tests.support.workers import running_workers, settings_env, wait_for_batch
    from worker import enqueue
    from worker.processes import spawn_worker, stop_workers

    concurrency = {"fetch": 8, "cpu": 2}
    with (
        serve_pages(load_pages()) as server,
        running_workers(settings, log_dir, concurrency=concurrency) as workers,
    ):
        urls = batch_urls(server.base_url, server.url)
        result = enqueue(urls, settings=settings)
        wait_for(lambda: outcomes_so_far(settings, result.batch) >= 5)
        kill_group(workers[("fetch", "cpu").index(victim)])
        killed_at = time.monotonic()
        log = (log_dir / f"restarted-{victim}.log").open("wb")
        replacement = spawn_worker(victim, settings_env(settings), log, concurrency[victim])
        try:
            status = wait_for_batch(settings, result.batch, timeout=400)
        finally:
            stop_workers([replacement])
            log.close()
    return KilledRun(urls, status, time.monotonic() - killed_at)


class SlowPageServer(ThreadingHTTPServer):
    """``/slow/<seconds>/<name>``: an article sent in ten pieces over ``seconds``; counts hits."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _SlowHandler)
        self.hits: Counter[str] = Counter()
        self.lock = threading.Lock()

    def url(self, path: str) -> str:
        """The URL of ``path`` on this server."""
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


class _SlowHandler(BaseHTTPRequestHandler):
    server: SlowPageServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        return

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.hits[self.path] += 1
        parts = self.path.strip("/").split("/")
        if len(parts) != 3 or parts[0] != "slow":
            self.send_error(404)
            return
        seconds, name = float(parts[1]), parts[2]
        body = article_html(f"Un article lent {name}", paragraphs=8).encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        step = len(body) // 10 + 1
        for start in range(0, len(body), step):
            self.wfile.write(body[start : start + step])
            self.wfile.flush()
            time.sleep(seconds / 10)


@contextmanager
def serve_slow_pages() -> Iterator[SlowPageServer]:
    """A running :class:`SlowPageServer`."""
    from tests.support.http_server import serve_in_thread

    with serve_in_thread(SlowPageServer()) as server:
        yield server
