"""``ingest watch``: two replicas on one sources file poll each source once per interval, send
each new article once, count their errors and stop on SIGTERM; the file is re-read when it
changes.

The feeds change while the watchers run (a new item every second or so); a broken feed and a
404 feed sit beside them, so every poll has errors to count and the watchers keep going.
"""

from __future__ import annotations

import collections
import itertools
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from config import Settings
from stores.discovered import DiscoveredUrls
from tests.support.feed_server import FeedServer, Route, rss, serve_feeds, sitemap
from tests.support.metrics import by_label, dashboard_expressions, free_port, metric_names, scrape_when_up
from tests.support.workers import settings_env
from worker.discovery_fetch import build_discovery_fetcher
from worker.metrics_families import WATCHED
from worker.sources import load_sources
from worker.watcher import Watcher, poll_source

EVERY = 2.0
RUN_SECONDS = 11.0


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with serve_feeds() as running:
        yield running


class _ChangingFeeds:
    """Adds an item to the alpha feed and a URL to the beta sitemap every ``pace`` seconds."""

    def __init__(self, server: FeedServer, pace: float = 0.7) -> None:
        self.server = server
        self.pace = pace
        self.alpha: list[tuple[str, str]] = []
        self.beta: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.step()

    def step(self) -> None:
        n = len(self.alpha) + 1
        base = self.server.base_url
        self.alpha.insert(0, (f"{base}/alpha/{n}", f"Alpha {n}"))
        self.beta.insert(0, f"{base}/beta/{n}")
        # Feeds keep their last 20 items; the sitemap keeps them all.
        self.server.set("/alpha.xml", Route(rss(self.alpha[:20]), "application/rss+xml", etag=f'"a{n}"'))
        self.server.set(
            "/beta.xml", Route(sitemap(self.beta), last_modified=f"Sat, 01 Mar 2025 12:{n:02d}:00 GMT")
        )

    def _run(self) -> None:
        while not self.stop.wait(self.pace):
            self.step()

    def published(self) -> set[str]:
        return {url for url, _ in self.alpha} | set(self.beta)


def _sources_file(path: Path, server: FeedServer, every: float = EVERY) -> Path:
    whole = rss([(f"{server.base_url}/never/1", "x"), (f"{server.base_url}/never/2", "y")])
    server.set("/broken.xml", Route(whole[: len(whole) // 2], "application/rss+xml"))
    path.write_text(
        f"""
[[sources]]
name = "alpha"
feeds = ["{server.url("/alpha.xml")}", "{server.url("/gone.xml")}"]
every = {every}
labels = {{ desk = "alpha" }}

[[sources]]
name = "beta"
feeds = ["{server.url("/broken.xml")}"]
sitemaps = ["{server.url("/beta.xml")}"]
every = {every}
""",
        encoding="utf-8",
    )
    return path


def _warm_robots(settings: Settings, server: FeedServer) -> None:
    fetcher = build_discovery_fetcher(settings)
    assert fetcher._rules_waiting(server.url("/"), "127.0.0.1", time.monotonic() + 10) is not None
    fetcher.client.close()


def _start_watcher(env: dict[str, str], sources: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "worker", "watch", str(sources), "--metrics-port", str(port)],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def _intake_urls(client: redis.Redis, prefix: str) -> list[tuple[str, str]]:
    return [
        (fields[b"source"].decode(), fields[b"url"].decode())
        for _id, fields in client.xrange(f"{prefix}:intake")
    ]


def test_two_watchers_poll_each_source_once_per_interval_and_send_each_article_once(
    settings: Settings, redis_client: redis.Redis, server: FeedServer, tmp_path: Path
) -> None:
    feeds = _ChangingFeeds(server)
    sources = _sources_file(tmp_path / "sources.toml", server)
    # The site's robots.txt (a 404: all allowed) cached first, so that no first poll waits for
    # another to fetch it and every request below starts when its poll does.
    _warm_robots(settings, server)
    env = settings_env(settings)
    ports = [free_port(), free_port()]
    watchers = [
        _start_watcher(env, sources, port, tmp_path / f"watch-{i}.log") for i, port in enumerate(ports)
    ]
    try:
        scrape_when_up(ports[0])
        scrape_when_up(ports[1])
        feeds.thread.start()
        time.sleep(RUN_SECONDS)
        feeds.stop.set()
        time.sleep(0.5)  # a poll started just now ends
        scrapes = [scrape_when_up(port) for port in ports]
    finally:
        stopping = time.monotonic()
        for process in watchers:
            process.send_signal(signal.SIGTERM)
        codes = [process.wait(timeout=40) for process in watchers]
    logs = "\n".join((tmp_path / f"watch-{i}.log").read_text(errors="replace") for i in range(2))
    assert codes == [0, 0], logs
    assert "watch.stopped" in logs

    # Each source polled once per interval, by one watcher or the other, never twice in one.
    for path in ("/alpha.xml", "/beta.xml", "/broken.xml", "/gone.xml"):
        times = [hit.at for hit in server.hits_of(path)]
        intervals = (stopping - times[0]) / EVERY  # N intervals since the first poll: N + 1 polls at most
        assert intervals - 1 <= len(times) <= intervals + 1, (path, len(times), intervals)
        gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
        assert min(gaps) >= EVERY - 0.25, (path, gaps)  # never two polls inside one interval
    # Conditional GET after the first poll: the ETag (alpha) and Last-Modified (beta) were sent.
    assert all(hit.conditional for hit in server.hits_of("/alpha.xml")[1:])
    assert all(hit.conditional for hit in server.hits_of("/beta.xml")[1:])
    assert not any(hit.conditional for hit in server.hits_of("/broken.xml"))  # never remembered

    # Each article appears once in the intake stream, under its source.
    sent = _intake_urls(redis_client, settings.key_prefix)
    counts = collections.Counter(url for _, url in sent)
    assert counts and max(counts.values()) == 1, [url for url, n in counts.items() if n > 1]
    salvaged = {server.url("/never/1")}  # the broken feed's item before the break: read, and sent
    assert {url for _, url in sent} <= feeds.published() | salvaged
    assert {source for source, url in sent if "/alpha/" in url} == {"alpha"}
    assert salvaged <= {url for _, url in sent}
    assert server.url("/never/2") not in {url for _, url in sent}  # past the break

    # The watchers' metrics: new URLs per source add up to the stream, errors by reason, polls.
    samples = [sample for scrape in scrapes for sample in scrape]
    discovered = by_label(samples, "ingest_discovered_urls_total", "source")
    per_source = collections.Counter(source for source, _ in sent)
    assert discovered == {source: float(n) for source, n in per_source.items()}
    errors = by_label(samples, "ingest_discovery_errors_total", "reason")
    polls = by_label(samples, "ingest_discovery_polls_total", "source")
    assert errors["http_error"] == len(server.hits_of("/gone.xml"))
    assert errors["bad_feed"] == len(server.hits_of("/broken.xml"))
    assert polls == {"alpha": len(server.hits_of("/alpha.xml")), "beta": len(server.hits_of("/beta.xml"))}
    served = {sample.name for sample in samples}
    watched = {family.name for family in WATCHED}
    for where, expression in dashboard_expressions().items():  # the dashboard's discovery panels
        assert metric_names(expression) & watched <= served, where

    # One more poll of each source (the last items came after the watchers' last polls): now the
    # stream holds every article published, each once.
    client = redis.Redis.from_url(settings.effective_redis_url)
    fetcher = build_discovery_fetcher(settings)
    discovered_urls = DiscoveredUrls(client, settings.key_prefix, settings.discovery_seen_ttl)
    for source in load_sources(sources).sources:
        poll_source(source, fetcher, client, settings.key_prefix, discovered_urls)
    final = [url for _, url in _intake_urls(redis_client, settings.key_prefix)]
    assert sorted(final) == sorted(feeds.published() | salvaged)


def test_the_watcher_reads_its_file_again_when_it_changes(
    settings: Settings, redis_client: redis.Redis, server: FeedServer, tmp_path: Path
) -> None:
    base = server.base_url
    server.set("/one.xml", Route(rss([(f"{base}/one/1", "One")])))
    server.set("/two.xml", Route(rss([(f"{base}/two/1", "Two")])))
    path = tmp_path / "sources.toml"
    path.write_text(f'[[sources]]\nname = "one"\nfeeds = ["{base}/one.xml"]\nevery = 1\n', encoding="utf-8")
    stop = threading.Event()
    watcher = Watcher(settings, path, stop=stop)
    thread = threading.Thread(target=watcher.run, daemon=True)
    thread.start()
    try:
        _wait_for(lambda: len(server.hits_of("/one.xml")) >= 1)
        path.write_text("[[sources]]\nname = 'broken'\n", encoding="utf-8")  # bad: the old one is kept
        _wait_for(lambda: len(server.hits_of("/one.xml")) >= 3)
        path.write_text(
            f'[[sources]]\nname = "one"\nfeeds = ["{base}/one.xml"]\nevery = 1\n\n'
            f'[[sources]]\nname = "two"\nfeeds = ["{base}/two.xml"]\nevery = 1\n',
            encoding="utf-8",
        )
        _wait_for(lambda: len(server.hits_of("/two.xml")) >= 1)
    finally:
        stop.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert sorted(url for _, url in _intake_urls(redis_client, settings.key_prefix)) == [
        f"{base}/one/1",
        f"{base}/two/1",
    ]


def _wait_for(condition: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)
