"""Discovery's HTTP: feeds and sitemaps fetched under the fetch stage's rules.

:class:`DiscoveryFetcher` is the fetch stage's :class:`tasks.fetch.Fetcher` (same guarded
client, same Redis-backed politeness) with a request for documents instead of pages:

- every connection, redirect hops included, is opened by the SSRF guard
  (:class:`tasks.ssrf.GuardedBackend`): a feed that redirects to 10.0.0.1 is refused
  before anything is dialled (``blocked_address``);
- robots.txt is obeyed (cached in Redis, shared with the fetch workers), its Crawl-delay too;
- each request books its host's slot in the schedule the fetch workers share
  (:mod:`stores.ratelimit`); a watcher holds no worker slot, so it waits for its slot (up to
  ``INGEST_FETCH_DEFER_HORIZON``) instead of re-queueing;
- connect/read timeouts and a deadline per request; the body is capped once decompressed
  (``INGEST_DISCOVERY_MAX_BYTES``), gzip and brotli bombs included;
- conditional GET: the ETag / Last-Modified of each feed URL are kept in Redis
  (``<prefix>:discovery:validators:<hash of the URL>``); a 304 yields nothing new.

:func:`collect` reads a source's documents: each listed URL, then the sitemaps a sitemap
index or a robots.txt points at (3 levels deep, ``INGEST_DISCOVERY_MAX_SITEMAPS`` per listed
URL). An error ends one document, never the poll. Validators are not saved here: the watcher
saves them once the entries are in the intake stream (:meth:`Collected.commit`), so a poll
that failed half-way reads its documents whole next time.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit

import httpx
import structlog
from protego import Protego

from config import Settings
from stores.ratelimit import HostRateLimiter
from stores.redis_client import client_for
from stores.robots import RobotsCache
from stores.validators import Validators, ValidatorStore
from tasks.discovery import DiscoveryError, Document, Entry, parse_document, reason_of
from tasks.errors import IngestError, TransientError
from tasks.fetch import Fetcher, HostBusy, _raise_for_status
from tasks.http_client import REQUEST_ERRORS, build_client, hop_timeout, read_body, request_failure
from tasks.record import record_id
from tasks.ssrf import AddressPolicy, GuardedBackend
from tasks.urls import validate_url

log = structlog.stdlib.get_logger("ingest.discovery")

ACCEPT = (
    "application/rss+xml, application/atom+xml, application/feed+json, application/xml;q=0.9, "
    "text/xml;q=0.9, application/json;q=0.8, text/plain;q=0.5, */*;q=0.1"
)
#: How deep sitemap indexes are followed (index -> index -> sitemap).
MAX_DEPTH = 3
_REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
_ROBOTS_WAIT = 0.5
_MAX_PUSH_BACK = 600.0


class Stopped(Exception):  # noqa: N818 - a control-flow signal
    """The watcher is stopping: the poll ends where it is, nothing is sent or saved."""


@dataclass(frozen=True)
class Response:
    """A document as the server sent it; ``body`` None for a 304."""

    url: str
    final_url: str
    status: int
    content_type: str | None
    body: bytes | None
    validators: Validators


class DiscoveryFetcher(Fetcher):
    """The fetch stage's fetcher, asked for documents (any type) and able to wait for a slot."""

    def __init__(
        self,
        settings: Settings,
        client: httpx.Client,
        limiter: HostRateLimiter | None,
        robots: RobotsCache | None,
        validators: ValidatorStore | None,
        stop: threading.Event | None = None,
    ) -> None:
        super().__init__(settings, client, limiter, robots, validators)
        self.stop = stop or threading.Event()

    def pause(self, seconds: float) -> None:
        """Sleep, unless the watcher stops meanwhile (:class:`Stopped`)."""
        if seconds > 0 and self.stop.wait(seconds):
            raise Stopped()
        if self.stop.is_set():
            raise Stopped()

    def _take_slot(
        self, host: str, interval: float, booked: list[bool], wait_until: float | None = None
    ) -> None:
        """Book ``host``'s next request slot and wait for it (the fetch stage re-queues instead)."""
        if booked[0]:
            booked[0] = False
            return
        if self.limiter is None:
            return
        reservation = self.limiter.reserve(host, interval, self.settings.fetch_defer_horizon)
        if not reservation.booked:
            raise DiscoveryError(
                f"{host} has no free request slot within {self.settings.fetch_defer_horizon:.0f}s",
                reason="host_busy",
            )
        self.pause(reservation.wait)

    def _rules_waiting(self, url: str, host: str, deadline: float) -> Protego | None:
        """The site's robots rules, waiting while another process fetches its robots.txt."""
        while True:
            try:
                return self._rules(url, host, [False], deadline)
            except HostBusy as busy:
                if time.monotonic() + busy.wait > deadline:
                    raise DiscoveryError(
                        f"robots.txt of {host} is being fetched elsewhere", "host_busy"
                    ) from busy
                self.pause(busy.wait or _ROBOTS_WAIT)

    def key(self, url: str) -> str:
        """Where the validators of ``url`` are kept (the hash of the URL as listed)."""
        return record_id(url)

    def get(self, url: str, *, conditional: bool = True) -> Response:
        """GET a feed or sitemap: robots, slot, guarded connection, capped body.

        Raises :class:`DiscoveryError` or :class:`tasks.errors.IngestError` (with a reason
        from :data:`tasks.discovery.DISCOVERY_REASONS`), or :class:`Stopped`.
        """
        settings = self.settings
        current = validate_url(url)
        deadline = time.monotonic() + settings.fetch_deadline
        host = (urlsplit(current).hostname or "").lower()
        rules = self._rules_waiting(current, host, deadline)
        if rules is not None and not rules.can_fetch(current, self.robots_agent):
            raise DiscoveryError(f"{current} disallowed by robots.txt", reason="robots_disallowed")
        self._take_slot(host, self._interval(host, rules), [False])
        known = self.validators.get(self.key(url)) if conditional and self.validators is not None else None
        headers = {"Accept": ACCEPT, **(known.headers() if known is not None else {})}
        try:
            for hop in range(settings.fetch_max_redirects + 1):
                if hop:
                    hop_host = (urlsplit(current).hostname or "").lower()
                    hop_rules = self._rules_waiting(current, hop_host, deadline)
                    if hop_rules is not None and not hop_rules.can_fetch(current, self.robots_agent):
                        raise DiscoveryError(
                            f"redirect to {current} disallowed by robots.txt", "robots_disallowed"
                        )
                    self._take_slot(hop_host, self._interval(hop_host, hop_rules), [False])
                timeout = hop_timeout(settings.fetch_connect_timeout, settings.fetch_read_timeout, deadline)
                request = self.client.build_request("GET", current, headers=headers, timeout=timeout)
                hop_url = current
                sent = time.perf_counter()
                response = self.client.send(request, stream=True)
                size = 0
                try:
                    if response.status_code in _REDIRECT_CODES and "location" in response.headers:
                        current = validate_url(urljoin(current, response.headers["location"]))
                        continue
                    validators = Validators(
                        etag=response.headers.get("etag"), last_modified=response.headers.get("last-modified")
                    )
                    if response.status_code == 304 and known is not None:
                        return Response(url, current, 304, None, None, known)
                    try:
                        _raise_for_status(response)
                    except TransientError as exc:
                        if exc.retry_after and self.limiter is not None:
                            self.limiter.push_back(
                                (urlsplit(current).hostname or "").lower(),
                                min(exc.retry_after, _MAX_PUSH_BACK),
                            )
                        raise
                    body = read_body(response, settings.discovery_max_bytes, deadline)
                    size = len(body)
                    return Response(
                        url, str(response.url), response.status_code, response.headers.get("content-type"),
                        body, validators,
                    )  # fmt: skip
                finally:
                    response.close()
                    log.info(
                        "discovery.response",
                        status=response.status_code,
                        bytes=size,
                        ms=round((time.perf_counter() - sent) * 1000, 1),
                        hop_url=hop_url,
                    )
        except REQUEST_ERRORS as exc:
            raise DiscoveryError(*request_failure(exc, current)) from exc
        raise DiscoveryError(
            f"more than {settings.fetch_max_redirects} redirects", reason="too_many_redirects"
        )

    def remember(self, url: str, validators: Validators | None) -> None:
        """Keep (or, with None, forget) the validators of ``url`` for its next conditional GET."""
        if self.validators is None:
            return
        if validators is None:
            self.validators.forget(self.key(url))
        else:
            self.validators.put(self.key(url), validators)


def source_host_rates(
    settings: Settings, rates: Iterable[tuple[float | None, Iterable[str]]]
) -> dict[str, float]:
    """``INGEST_HOST_RATES`` with each source's ``host_rate`` for the hosts of its URLs (the
    lowest when two sources share a host)."""
    merged: dict[str, float] = {}
    for rate, urls in rates:
        if rate is None:
            continue
        for url in urls:
            host = (urlsplit(url).hostname or "").lower()
            if host:
                merged[host] = min(rate, merged.get(host, rate))
    return {**settings.host_rates, **merged}


def build_discovery_fetcher(
    settings: Settings,
    host_rates: dict[str, float] | None = None,
    stop: threading.Event | None = None,
    client: httpx.Client | None = None,
) -> DiscoveryFetcher:
    """The fetcher of ``ingest watch`` and ``ingest discover``: the fetch stage's guarded client
    (``client`` replaces it, e.g. in tests) and its Redis-backed politeness."""
    if host_rates is not None:
        settings = settings.model_copy(update={"host_rates": host_rates})
    if client is None:
        policy = AddressPolicy.from_settings(settings.fetch_allow_private, settings.fetch_allowed_networks)
        client = build_client(
            GuardedBackend(policy),
            user_agent=settings.user_agent,
            host_connections=4,
            http2=settings.fetch_http2,
        )
    redis = client_for(settings)
    return DiscoveryFetcher(
        settings,
        client,
        HostRateLimiter(redis, settings.key_prefix),
        RobotsCache(redis, settings.key_prefix, settings.robots_ttl),
        ValidatorStore(redis, f"{settings.key_prefix}:discovery", settings.validators_ttl),
        stop=stop,
    )


# --- reading a source's documents -----------------------------------------------------------------
@dataclass(frozen=True)
class DocumentError:
    """One document that could not be read (or was read only in part)."""

    url: str
    reason: str
    error: str


@dataclass
class Collected:
    """What one read of a source's documents found."""

    entries: list[Entry] = field(default_factory=list)
    errors: list[DocumentError] = field(default_factory=list)
    documents: int = 0
    unchanged: int = 0
    _validators: dict[str, Validators | None] = field(default_factory=dict)
    _urls: set[str] = field(default_factory=set)

    def add(self, entries: Iterable[Entry]) -> None:
        for entry in entries:
            if entry.url not in self._urls:
                self._urls.add(entry.url)
                self.entries.append(entry)

    def commit(self, fetcher: DiscoveryFetcher) -> None:
        """Save the documents' validators: call once their entries are safely sent."""
        for url, validators in self._validators.items():
            fetcher.remember(url, validators)


def _read(fetcher: DiscoveryFetcher, url: str, conditional: bool, found: Collected) -> Document | None:
    """One document fetched and parsed; None when it answered 304 or failed (noted in ``found``)."""
    try:
        response = fetcher.get(url, conditional=conditional)
        found.documents += 1
        if response.body is None:
            found.unchanged += 1
            return None
        document = parse_document(
            response.body, response.final_url, response.content_type, fetcher.settings.discovery_max_bytes
        )
    except (DiscoveryError, IngestError) as exc:
        found.errors.append(DocumentError(url, reason_of(exc), str(exc)))
        found._validators[url] = None  # read it whole next time
        log.warning("discovery.document_failed", url=url, reason=reason_of(exc), error=str(exc)[:300])
        return None
    if document.problem is not None:
        found.errors.append(DocumentError(url, "bad_feed", document.problem))
    # Only a complete feed or sitemap is asked conditionally next time: an index (or robots.txt)
    # answering 304 would hide its children, which change more often than it does.
    keep = document.problem is None and not document.is_index and response.validators != Validators()
    found._validators[url] = response.validators if keep else None
    return document


def collect(
    fetcher: DiscoveryFetcher,
    urls: Iterable[str],
    *,
    conditional: bool = True,
    max_sitemaps: int | None = None,
) -> Collected:
    """The entries of every document listed (feeds or sitemaps: the body says which) and of the
    sitemaps they point at, in document order, each URL once."""
    found = Collected()
    cap = max_sitemaps or fetcher.settings.discovery_max_sitemaps
    for root in dict.fromkeys(urls):
        queue: deque[tuple[str, int]] = deque([(root, 0)])
        visited: set[str] = set()
        while queue:
            if fetcher.stop.is_set():
                raise Stopped()
            url, depth = queue.popleft()
            if url in visited:
                continue
            if len(visited) >= cap:
                found.errors.append(
                    DocumentError(
                        root, "too_many_sitemaps", f"{len(queue) + 1} sitemaps left past the cap of {cap}"
                    )
                )
                break
            visited.add(url)
            document = _read(fetcher, url, conditional, found)
            if document is None:
                continue
            found.add(document.entries)
            if document.sitemaps and depth + 1 >= MAX_DEPTH:
                found.errors.append(
                    DocumentError(url, "too_many_sitemaps", f"sitemaps nested deeper than {MAX_DEPTH} levels")
                )
                continue
            queue.extend((child, depth + 1) for child in document.sitemaps if child not in visited)
    return found
