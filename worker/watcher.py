"""``ingest watch``: every source of a sources file polled on its interval, its new URLs sent
to the intake stream.

Any number of watchers may run on one sources file (replicas for availability): each source
is polled once per interval by one of them, never twice. The per-source lease is one Redis
key, ``<prefix>:watch:lease:<source>``, taken with ``SET NX PX <every>`` and never released:
whoever takes it polls now, and nobody can take it again until the interval has passed. A
watcher that did not get it asks again when the key expires (its PTTL), so the next poll
starts on time whichever replica makes it, and a replica that dies costs at most one
interval of that source. (celery-redbeat was the other way: a beat process that holds one
lock for the whole schedule, with stand-bys that take over only after the lock's timeout,
plus Celery workers and a queue to run the polls; the lease is one command per source per
interval and every replica stays active.)

A poll reads the source's documents (:func:`worker.discovery_fetch.collect`), claims the
canonical URLs it found in the intake dedup (:class:`stores.discovered.DiscoveredUrls`),
sends the new ones to the intake stream with the source's name, labels and ``discovered_at``,
confirms them, and only then saves the documents' ETag / Last-Modified.

SIGTERM (or Ctrl-C) stops taking leases, lets running polls end at their next step (a wait
for a host slot ends at once; a request in flight ends within its deadline), sends nothing
for a poll it interrupted (its lease stays: the next interval re-reads the documents whole)
and exits 0. The sources file is read again when it changes; a bad new version is logged and
the running one kept.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import redis
import structlog

from config import Settings
from stores.discovered import DiscoveredUrls
from stores.intake_stream import add_to_intake
from stores.redis_client import client_for
from tasks.discovery import Entry
from tasks.errors import PermanentError
from tasks.urls import canonicalize_url
from worker import metrics
from worker.discovery_fetch import (
    Collected,
    DiscoveryFetcher,
    DocumentError,
    Stopped,
    build_discovery_fetcher,
    collect,
    source_host_rates,
)
from worker.sources import Source, SourcesFile, SourcesFileError, load_sources

log = structlog.stdlib.get_logger("ingest.watch")

#: Longest sleep of the loop: how soon a stop, or a changed sources file, is noticed.
_TICK = 1.0

_TAKE_LEASE = """
-- KEYS[1]: the source's lease; ARGV: owner, milliseconds
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {1, 0}
end
return {0, redis.call('PTTL', KEYS[1])}
"""


class SourceLease:
    """The right to poll a source for one interval, ``<prefix>:watch:lease:<name>``."""

    def __init__(self, client: redis.Redis, prefix: str, owner: str) -> None:
        self._prefix = prefix
        self._owner = owner
        self._take = client.register_script(_TAKE_LEASE)

    def key(self, name: str) -> str:
        return f"{self._prefix}:watch:lease:{name}"

    def take(self, name: str, seconds: float) -> float:
        """0 if the lease is now ours for ``seconds``; else the seconds until it can be taken."""
        taken, left = self._take(keys=[self.key(name)], args=[self._owner, max(int(seconds * 1000), 1)])
        if int(taken):
            return 0.0
        # PTTL 0: under a millisecond left; -2: it just expired; -1 (no expiry) cannot happen.
        return max(int(left), 0) / 1000 + 0.005


@dataclass
class PollResult:
    """What one poll of a source found and sent."""

    source: str
    listed: int = 0
    sent: list[Entry] = field(default_factory=list)
    errors: list[DocumentError] = field(default_factory=list)
    documents: int = 0
    unchanged: int = 0


def _canonical(entries: list[Entry]) -> list[tuple[str, Entry]]:
    """Each entry with its canonical URL, the first of each canonical URL only; entries whose
    URL cannot be canonicalised are dropped (the intake bridge would dead-letter them)."""
    pairs: dict[str, Entry] = {}
    for entry in entries:
        try:
            canonical = canonicalize_url(entry.url)
        except PermanentError:
            log.info("watch.bad_url", url=entry.url[:300])
            continue
        pairs.setdefault(canonical, entry)
    return list(pairs.items())


def send_new(
    found: Collected,
    source: Source,
    client: redis.Redis,
    prefix: str,
    discovered: DiscoveredUrls,
    now: datetime | None = None,
) -> list[Entry]:
    """Claim the found URLs, send the new ones to the intake stream, confirm them; the
    entries sent. A Redis error releases the claims not sent and propagates."""
    pairs = _canonical(found.entries)
    flags = discovered.claim([canonical for canonical, _ in pairs])
    new = [pair for pair, flag in zip(pairs, flags, strict=True) if flag]
    when = now or datetime.now(UTC)
    sent: list[str] = []
    try:
        for canonical, entry in new:
            add_to_intake(
                client, prefix, entry.url, source=source.name, labels=source.labels, discovered_at=when
            )
            sent.append(canonical)
    except redis.RedisError:
        discovered.release([canonical for canonical, _ in new[len(sent) :]])
        raise
    finally:
        if sent:
            discovered.confirm(sent, source.name)
    return [entry for _, entry in new]


def poll_source(
    source: Source, fetcher: DiscoveryFetcher, client: redis.Redis, prefix: str, discovered: DiscoveredUrls
) -> PollResult:
    """One poll: read, send what is new, then save the documents' validators."""
    started = time.perf_counter()
    found = collect(fetcher, source.urls)
    sent = send_new(found, source, client, prefix, discovered)
    found.commit(fetcher)
    result = PollResult(source.name, len(found.entries), sent, found.errors, found.documents, found.unchanged)
    metrics.count_discovery_poll(source.name, len(sent))
    for error in found.errors:
        metrics.count_discovery_error(source.name, error.reason)
    log.info(
        "watch.polled",
        source=source.name,
        documents=result.documents,
        unchanged=result.unchanged,
        listed=result.listed,
        new=len(sent),
        errors=len(result.errors),
        ms=round((time.perf_counter() - started) * 1000, 1),
    )
    return result


class Watcher:
    """Polls the sources of one file until :attr:`stop` is set."""

    def __init__(
        self,
        settings: Settings,
        path: str | Path,
        *,
        stop: threading.Event | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        self.settings = settings
        self.path = Path(path)
        self.stop = stop or threading.Event()
        self.redis = client_for(settings)
        owner = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.lease = SourceLease(self.redis, settings.key_prefix, owner)
        self.discovered = DiscoveredUrls(self.redis, settings.key_prefix, settings.discovery_seen_ttl)
        self._http_client = http_client
        self._mtime = 0.0
        self.sources: SourcesFile = self._load()  # SourcesFileError if the file is bad
        self.polls: list[PollResult] = []  # the last results, for tests and callers (bounded)

    def _load(self) -> SourcesFile:
        mtime = self.path.stat().st_mtime if self.path.exists() else 0.0
        sources = load_sources(self.path)
        rates = source_host_rates(self.settings, ((s.host_rate, s.urls) for s in sources.sources))
        # A poll still running keeps the fetcher it started with (its client closes when dropped).
        self.fetcher = build_discovery_fetcher(self.settings, rates, self.stop, self._http_client)
        metrics.known_sources(source.name for source in sources.sources)
        self._mtime = mtime
        return sources

    def _reload_if_changed(self) -> None:
        try:
            mtime = self.path.stat().st_mtime
        except OSError:
            return
        if mtime == self._mtime:
            return
        try:
            self.sources = self._load()
        except SourcesFileError as exc:
            self._mtime = mtime  # reported once per change
            log.error(
                "watch.sources_invalid", path=str(self.path), error=str(exc), kept="the previous sources"
            )
            return
        log.info("watch.sources_reloaded", path=str(self.path), sources=len(self.sources.sources))

    def _poll(self, source: Source) -> None:
        try:
            result = poll_source(source, self.fetcher, self.redis, self.settings.key_prefix, self.discovered)
        except Stopped:
            log.info("watch.poll_interrupted", source=source.name)
            return
        except redis.RedisError as exc:
            log.error("watch.poll_failed", source=source.name, error=repr(exc))
            return
        except Exception as exc:  # a bug in one poll must not stop the watcher
            log.exception("watch.poll_crashed", source=source.name, error=repr(exc))
            return
        self.polls.append(result)
        del self.polls[:-1000]

    def run(self) -> None:
        """Poll until stopped; returns once the running polls have ended."""
        due: dict[str, float] = {}
        running: dict[str, Future[Any]] = {}
        log.info(
            "watch.started",
            path=str(self.path),
            sources=len(self.sources.sources),
            stop="SIGTERM or Ctrl-C",
        )
        with ThreadPoolExecutor(self.settings.discovery_concurrency, thread_name_prefix="poll") as pool:
            try:
                while not self.stop.is_set():
                    self._reload_if_changed()
                    self._tick(pool, due, running)
                    now = time.monotonic()
                    upcoming = [when for name, when in due.items() if self.sources.get(name)]
                    wait = min(upcoming, default=now + _TICK) - now
                    self.stop.wait(min(max(wait, 0.01), _TICK))
            finally:
                self.stop.set()  # interrupts the polls' waits; their requests end within the deadline
        log.info("watch.stopped")

    def _tick(self, pool: ThreadPoolExecutor, due: dict[str, float], running: dict[str, Future[Any]]) -> None:
        for source in self.sources.sources:
            now = time.monotonic()
            if due.get(source.name, 0.0) > now:
                continue
            busy = running.get(source.name)
            if busy is not None and not busy.done():
                due[source.name] = now + 0.1  # its last poll is still running: no second one
                continue
            try:
                wait = self.lease.take(source.name, source.every)
            except redis.RedisError as exc:
                log.error("watch.lease_failed", source=source.name, error=repr(exc))
                due[source.name] = now + min(source.every, 5.0)
                continue
            if wait:
                due[source.name] = now + wait
                continue
            due[source.name] = now + source.every
            running[source.name] = pool.submit(self._poll, source)
