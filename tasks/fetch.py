"""Stage 1, fetch: download the page politely, safely and within bounds.

The pure part is :meth:`Fetcher.fetch` (one URL in, one :class:`FetchedPage` or a typed
error out). In order, for each URL:

1. the URL must be http(s) and well formed (``bad_url``);
2. the host's request slot is booked in the shared Redis schedule
   (:mod:`stores.ratelimit`); a busy host raises :class:`HostBusy` and the Celery task
   re-queues the URL for its slot instead of sleeping;
3. the site's robots.txt (cached in Redis, fetched with a slot of its own when missing)
   must allow the URL (``robots_disallowed``); its Crawl-delay widens the host's spacing;
4. the GET goes out with ``If-None-Match`` / ``If-Modified-Since`` when the URL was fetched
   before; a 304 ends the URL as ``unchanged``;
5. redirects are followed by hand, each hop validated, with every connection checked by the
   SSRF guard at connect time (:mod:`tasks.ssrf`);
6. the body is streamed under a deadline and a cap on decompressed bytes, must be HTML by
   header and by sniffing, and is decoded with the right charset.

The Celery task takes a bundle of jobs (one or more URLs, see :mod:`worker.pipeline`),
fetches them one after another, stores each page body once in Redis with a TTL and sends
each fetched job on to the CPU stages with only the body's key, so the CPU stages never
carry whole pages in their messages. A retry or a deferral sends its URL back alone.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any, NoReturn
from urllib.parse import urljoin, urlsplit

import httpx
import structlog
from celery.exceptions import Retry
from protego import Protego

from config import Settings
from stores.ratelimit import HostRateLimiter
from stores.redis_client import client_for
from stores.robots import ROBOTS_MAX_BYTES, RobotsCache
from stores.validators import Validators, ValidatorStore
from tasks.decoding import decode_html, ensure_html
from tasks.errors import PermanentError, StopPipeline, TransientError
from tasks.http_client import (
    REQUEST_ERRORS,
    build_client,
    hop_timeout,
    parse_retry_after,
    read_body,
    request_failure,
)
from tasks.record import Job
from tasks.ssrf import AddressPolicy, GuardedBackend
from tasks.urls import validate_url
from worker import metrics
from worker.app import app
from worker.guard import STATE_ERRORS, pause_after_state_error
from worker.pipeline import send_after_fetch, send_fetch
from worker.stage import StageTask, run_job
from worker.task_states import DeadLettered, Deferred, UrlEnded, sent_again

STAGE = "fetch"
log = structlog.stdlib.get_logger("ingest.fetch")

_REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
#: A wait shorter than this is slept in place: re-queueing would cost more than it saves.
_SLEEP_BELOW = 0.05
#: How long a URL waits for another worker to fetch its site's robots.txt.
_ROBOTS_WAIT = 0.5
#: Longest pause a Retry-After header can impose on a host for the whole pool.
_MAX_PUSH_BACK = 600.0
#: How late a re-queued URL may start and still use the slot it booked.
_SLOT_GRACE = 0.25


@dataclass(frozen=True)
class FetchedPage:
    """A page as the server sent it, decoded to text."""

    url: str
    final_url: str
    status: int
    content_type: str | None
    html: str
    fetched_at: datetime
    validators: Validators


class HostBusy(Exception):  # noqa: N818 - a control-flow signal, not an error
    """The host has no free request slot now: run this URL again in ``wait`` seconds.

    ``booked`` is True when the slot at that time is already ours (the re-run must not book
    another), False when the schedule was full past the horizon (the re-run asks again).
    """

    def __init__(self, host: str, wait: float, booked: bool) -> None:
        super().__init__(f"{host} busy for {wait:.2f}s")
        self.host = host
        self.wait = wait
        self.booked = booked


def robots_token(user_agent: str) -> str:
    """The product token robots.txt groups are matched against: ``news-ingest/0.1 (...)`` ->
    ``news-ingest``."""
    return user_agent.split("/", 1)[0].split(" ", 1)[0] or "*"


def origin_of(url: str) -> str:
    """``https://Example.org:8443/a?b`` -> ``https://example.org:8443``."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


class Fetcher:
    """Everything one process needs to fetch politely: client, schedule, robots, validators.

    ``limiter``, ``robots`` and ``validators`` may be None (no politeness or re-fetch
    memory), which the benchmarks of raw throughput and some tests use.
    """

    def __init__(
        self,
        settings: Settings,
        client: httpx.Client,
        limiter: HostRateLimiter | None,
        robots: RobotsCache | None,
        validators: ValidatorStore | None,
    ) -> None:
        self.settings = settings
        self.client = client
        self.limiter = limiter
        self.robots = robots
        self.validators = validators
        self.robots_agent = robots_token(settings.user_agent)

    # --- politeness ------------------------------------------------------------------------
    def _interval(self, host: str, rules: Protego | None) -> float:
        settings = self.settings
        rate = settings.host_rates.get(host, settings.host_rate)
        interval = 1.0 / rate if rate > 0 else 0.0
        if rules is not None:
            delay = rules.crawl_delay(self.robots_agent)
            if delay:
                interval = max(interval, min(float(delay), settings.robots_max_crawl_delay))
        return interval

    def _take_slot(
        self, host: str, interval: float, booked: list[bool], wait_until: float | None = None
    ) -> None:
        """Book a request slot for ``host`` or raise :class:`HostBusy`.

        ``booked`` holds one flag: True when the caller already owns a slot (a re-queued URL
        whose slot is now); it is consumed by the first request. A booked slot is waited for
        in place when it is very near, or (``wait_until``, a ``time.monotonic()`` value) when
        it comes before that time: a redirect hop waits for its slot within the request's
        deadline rather than re-queue a URL whose first request was already made.
        """
        if booked[0]:
            booked[0] = False
            return
        if self.limiter is None:
            return
        reservation = self.limiter.reserve(host, interval, self.settings.fetch_defer_horizon)
        if reservation.booked and (
            reservation.wait <= _SLEEP_BELOW
            or (wait_until is not None and time.monotonic() + reservation.wait < wait_until)
        ):
            time.sleep(reservation.wait)
            return
        raise HostBusy(host, reservation.wait, reservation.booked)

    def _hop_slot(self, url: str, deadline: float) -> Protego | None:
        """Robots rules and a request slot for a redirect hop to ``url``: every request a
        worker makes counts against its host's rate, the hops of a redirect too.

        A slot not free before the deadline re-queues the URL without a booked slot (the
        slot booked here is for the hop's host, not for the URL's first request).
        """
        host = (urlsplit(url).hostname or "").lower()
        try:
            rules = self._rules(url, host, [False], deadline, wait_until=deadline)
            self._take_slot(host, self._interval(host, rules), [False], wait_until=deadline)
        except HostBusy as busy:
            raise HostBusy(busy.host, busy.wait, booked=False) from busy
        return rules

    def _rules(
        self, url: str, host: str, booked: list[bool], deadline: float, wait_until: float | None = None
    ) -> Protego | None:
        """The robots.txt rules of ``url``'s site, fetched (with a slot) when not cached."""
        if self.robots is None or not self.settings.robots_enabled:
            return None
        if host in self.settings.robots_ignore_hosts:
            return None
        origin = origin_of(url)
        rules = self.robots.get(origin)
        if rules is None:
            if not self.robots.claim_fetch(origin):
                # Another worker is fetching it: come back shortly, keeping a booked slot.
                raise HostBusy(host, _ROBOTS_WAIT, booked=booked[0])
            try:
                self._take_slot(host, self._interval(host, None), booked, wait_until)
                rules = self.robots.put(origin, self._fetch_robots(origin, deadline))
            finally:
                self.robots.release_fetch(origin)
        return rules

    def _fetch_robots(self, origin: str, deadline: float) -> str:
        """The text of ``origin``/robots.txt; ``""`` (allow all) for 4xx; transient error
        ``robots_unavailable`` for 5xx and 429 (RFC 9309: assume all disallowed meanwhile),
        ``connect_error`` / ``timeout`` when the site does not answer at all."""
        url = f"{origin}/robots.txt"
        settings = self.settings
        try:
            for _hop in range(5):
                timeout = hop_timeout(settings.fetch_connect_timeout, settings.fetch_read_timeout, deadline)
                request = self.client.build_request("GET", url, timeout=timeout)
                response = self.client.send(request, stream=True)
                try:
                    if response.status_code in _REDIRECT_CODES and "location" in response.headers:
                        url = validate_url(urljoin(url, response.headers["location"]))
                        continue
                    if response.status_code == 429 or response.status_code >= 500:
                        raise TransientError(
                            f"robots.txt answered HTTP {response.status_code}", reason="robots_unavailable"
                        )
                    if response.status_code >= 400:
                        return ""
                    try:
                        body = read_body(response, ROBOTS_MAX_BYTES, deadline)
                    except PermanentError as exc:
                        if exc.reason != "too_large":
                            return ""
                        raise
                    return body.decode("utf-8", errors="replace") if 200 <= response.status_code < 300 else ""
                finally:
                    response.close()
            return ""
        except PermanentError as exc:
            if exc.reason == "too_large":
                return ""
            raise
        except httpx.TimeoutException as exc:
            raise TransientError(f"robots.txt timed out: {exc!r}", reason="timeout") from exc
        except httpx.TransportError as exc:
            # The site itself is unreachable: say so, as the page's own request would.
            raise TransientError(f"robots.txt unreachable: {exc!r}", reason="connect_error") from exc

    # --- the fetch -------------------------------------------------------------------------
    def fetch(self, url: str, record_id: str, *, booked: bool = False) -> FetchedPage:
        """GET ``url`` politely and safely; see the module docstring for the steps."""
        settings = self.settings
        current = validate_url(url)
        deadline = time.monotonic() + settings.fetch_deadline
        host = (urlsplit(current).hostname or "").lower()
        slot = [booked]
        rules = self._rules(current, host, slot, deadline)
        if rules is not None and not rules.can_fetch(current, self.robots_agent):
            raise PermanentError("disallowed by robots.txt", reason="robots_disallowed")
        self._take_slot(host, self._interval(host, rules), slot)
        known = self.validators.get(record_id) if self.validators is not None else None
        conditional = known.headers() if known is not None else {}
        try:
            for hop in range(settings.fetch_max_redirects + 1):
                if hop:
                    hop_rules = self._hop_slot(current, deadline)
                    if hop_rules is not None and not hop_rules.can_fetch(current, self.robots_agent):
                        raise PermanentError(
                            f"redirect to {current} disallowed by robots.txt", reason="robots_disallowed"
                        )
                timeout = hop_timeout(settings.fetch_connect_timeout, settings.fetch_read_timeout, deadline)
                request = self.client.build_request("GET", current, headers=conditional, timeout=timeout)
                sent = time.perf_counter()
                response = self.client.send(request, stream=True)
                metrics.count_fetch_response(response.status_code, host)  # every hop: 3xx, 304, errors
                body = b""
                try:
                    if response.status_code in _REDIRECT_CODES and "location" in response.headers:
                        current = validate_url(urljoin(current, response.headers["location"]))
                        continue
                    if response.status_code == 304 and conditional:
                        raise StopPipeline("unchanged", f"304 Not Modified for {current}")
                    try:
                        _raise_for_status(response)
                    except TransientError as exc:
                        # The site asked every client to wait: the whole pool waits for it.
                        if exc.retry_after and self.limiter is not None:
                            hop_host = (urlsplit(current).hostname or "").lower()
                            self.limiter.push_back(hop_host, min(exc.retry_after, _MAX_PUSH_BACK))
                        raise
                    content_type: str | None = response.headers.get("content-type")

                    def check_head(head: bytes, declared: str | None = content_type) -> None:
                        ensure_html(declared, head)

                    body = read_body(response, settings.fetch_max_bytes, deadline, check_head=check_head)
                    if not body:
                        ensure_html(content_type, body)
                    page = FetchedPage(
                        url=url,
                        final_url=str(response.url),
                        status=response.status_code,
                        content_type=content_type,
                        html=decode_html(body, content_type),
                        fetched_at=datetime.now(UTC),
                        validators=Validators(
                            etag=response.headers.get("etag"),
                            last_modified=response.headers.get("last-modified"),
                        ),
                    )
                finally:
                    response.close()
                    _log_response(response, current, len(body), time.perf_counter() - sent)
                if self.validators is not None and page.validators != (known or Validators()):
                    self.validators.put(record_id, page.validators)
                return page
        except REQUEST_ERRORS as exc:
            message, reason = request_failure(exc, current)
            if reason == "bad_url":
                raise PermanentError(message, reason=reason) from exc
            raise TransientError(message, reason=reason) from exc
        raise PermanentError(
            f"more than {settings.fetch_max_redirects} redirects", reason="too_many_redirects"
        )


def _log_response(response: httpx.Response, url: str, size: int, seconds: float) -> None:
    """One line per HTTP response (redirect hops included): status, body bytes read, ms."""
    log.info(
        "fetch.response",
        status=response.status_code,
        bytes=size,
        ms=round(seconds * 1000, 1),
        hop_url=url,
        http_version=response.http_version,
    )


def _raise_for_status(response: httpx.Response) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    if status == 429:
        raise TransientError("HTTP 429", reason="rate_limited", retry_after=retry_after(response))
    if status == 408:
        raise TransientError("HTTP 408", reason="timeout", retry_after=retry_after(response))
    if status >= 500:
        raise TransientError(f"HTTP {status}", reason="server_error", retry_after=retry_after(response))
    raise PermanentError(f"HTTP {status}", reason="http_error")


def retry_after(response: httpx.Response) -> float | None:
    """Seconds the server asked us to wait (``Retry-After``: seconds or an HTTP date)."""
    return parse_retry_after(response.headers.get("retry-after"))


# --- one fetcher per process ------------------------------------------------------------------
_fetchers: dict[int, Fetcher] = {}
_fetchers_lock = threading.Lock()


def build_fetcher(settings: Settings) -> Fetcher:
    """A fetcher with the guarded client and the Redis-backed politeness of ``settings``."""
    policy = AddressPolicy.from_settings(settings.fetch_allow_private, settings.fetch_allowed_networks)
    client = build_client(
        GuardedBackend(policy),
        user_agent=settings.user_agent,
        host_connections=settings.fetch_host_connections,
        http2=settings.fetch_http2,
    )
    redis = client_for(settings)
    return Fetcher(
        settings,
        client,
        HostRateLimiter(redis, settings.key_prefix),
        RobotsCache(redis, settings.key_prefix, settings.robots_ttl),
        ValidatorStore(redis, settings.key_prefix, settings.validators_ttl),
    )


def fetcher_for(settings: Settings) -> Fetcher:
    """The process-wide fetcher (one connection pool shared by all threads or greenlets)."""
    fetcher = _fetchers.get(id(settings))
    if fetcher is None:
        with _fetchers_lock:
            fetcher = _fetchers.get(id(settings))
            if fetcher is None:
                fetcher = _fetchers[id(settings)] = build_fetcher(settings)
    return fetcher


@app.task(bind=True, base=StageTask, name="ingest.fetch")
def fetch(
    self: StageTask, jobs: list[dict[str, Any]] | dict[str, Any], slot_until: float | None = None
) -> dict[str, Any]:
    """Fetch each page of the bundle, store its body in Redis and send it to the CPU stages.

    The URLs of a bundle are fetched one after another (see :mod:`worker.pipeline`); each
    ends on its own: sent on, retried or deferred as a bundle of one, or dead-lettered.
    ``slot_until`` comes with a deferred bundle of one whose host slot is already booked.
    The task's state says how its URLs ended (:func:`bundle_state`).
    """
    # A message queued by a version that sent one job per fetch message still ends right.
    bundle = [Job.model_validate(payload) for payload in ([jobs] if isinstance(jobs, dict) else jobs)]
    try:
        return fetch_bundle(self, bundle, slot_until)
    except STATE_ERRORS as exc:
        retries, task_id = int(self.request.retries or 0), self.request.id or "local"
        counted = getattr(self.request, "delivery_counted", False)
        undo = partial(self.ledger.uncount_delivery, task_id, retries) if counted else None
        # then GuardedRequest requeues the whole bundle: nothing was lost
        pause_after_state_error(exc, undo=undo)
        raise


def fetch_bundle(task: StageTask, bundle: list[Job], slot_until: float | None) -> dict[str, Any]:
    """The fetch task's work: each URL of the bundle fetched and sent on, retried or ended;
    returns (or raises, see :func:`bundle_state`) how they ended."""
    settings = task.settings
    retries = int(task.request.retries or 0)
    deliveries = task.ledger.count_delivery(task.request.id or "local", retries)
    task.request.delivery_counted = True  # a state error from here on takes it back (fetch)
    if deliveries > 1 and len(bundle) > 1:
        # Redelivered: one of these URLs may be what stopped a worker. Sent apart, each
        # one's deliveries are counted alone, and only a culprit ends as `worker_lost`.
        log.warning("fetch.bundle_split", urls=len(bundle), deliveries=deliveries)
        for job in bundle:
            send_fetch([job], settings, retries=retries)
        return {"split": len(bundle)}
    booked = slot_until is not None and time.time() <= slot_until
    started = time.monotonic()
    fetched_urls: list[str] = []
    ended: list[tuple[str, UrlEnded]] = []
    again: list[Retry] = []
    for index, job in enumerate(bundle):
        if index and time.monotonic() - started > settings.soft_time_limit / 2:
            # A bundle of slow servers must not hold one pool slot for long: the rest go back.
            send_fetch(bundle[index:], settings, retries=retries)
            log.info("fetch.bundle_requeued", urls=len(bundle) - index)
            break
        try:
            fetched = run_job(
                task,
                STAGE,
                job,
                partial(fetch_one, task, booked=booked, retries=retries),
                retries=retries,
                deliveries=deliveries,
                retry_later=partial(_retry_later, job, settings, retries),
            )
        except UrlEnded as end:
            ended.append((job.record.url, end))
            continue
        except Retry as retry:
            again.append(retry)
            continue
        send_after_fetch(fetched, settings)
        fetched_urls.append(job.record.url)
    return bundle_state(len(bundle), fetched_urls, ended, again)


def bundle_state(
    size: int, fetched: list[str], ended: list[tuple[str, UrlEnded]], again: list[Retry]
) -> dict[str, Any]:
    """The fetch task's end as Flower shows it (see :mod:`worker.task_states`).

    FAILURE if a URL of the bundle ended as a dead letter, else RETRY if one was sent again
    (retried or deferred), else SUCCESS with what was fetched and what ended (``unchanged``).
    The other URLs of the bundle went on in every case.
    """
    dead = [(url, end) for url, end in ended if end.outcome == "dead"]
    if dead:
        reasons = ", ".join(sorted({end.reason for _, end in dead}))
        if size == 1:
            raise DeadLettered(dead[0][1].reason, dead[0][1].error)
        errors = "; ".join(f"{url}: {end.error}" for url, end in dead[:5])
        raise DeadLettered(reasons, f"{len(dead)} of {size} URLs dead-lettered: {errors}")
    if again:
        if size == 1:
            raise again[0]
        raise Retry(f"{len(again)} of {size} URLs sent again", exc=again[0].exc, when=again[0].when)
    return {
        "fetched": fetched,
        "ended": {url: end.outcome for url, end in ended},
    }


def fetch_one(task: StageTask, job: Job, *, booked: bool, retries: int) -> Job:
    """One URL of a bundle: the page fetched, its body stored, the record updated."""
    try:
        page = fetcher_for(task.settings).fetch(job.record.url, job.record.id, booked=booked)
    except HostBusy as busy:
        defer(job, busy, task.settings, retries)
    body_key = task.bodies.put(job.batch, job.record.id, page.html)
    record = job.record.model_copy(
        update={
            "final_url": page.final_url,
            "http_status": page.status,
            "content_type": page.content_type,
            "fetched_at": page.fetched_at,
        }
    )
    return job.model_copy(update={"record": record, "body_key": body_key})


def defer(job: Job, busy: HostBusy, settings: Settings, retries: int) -> NoReturn:
    """Send the URL again, alone, for when its host is free, without counting a retry.

    If a slot was booked, the bundle of one carries the time until which it may use it.
    """
    slot_until = time.time() + busy.wait + _SLOT_GRACE if busy.booked else None
    send_fetch([job], settings, countdown=busy.wait, retries=retries, slot_until=slot_until)
    log.info("fetch.deferred", host=busy.host, wait=round(busy.wait, 3), booked=busy.booked)
    metrics.count_outcome(STAGE, "deferred", "host_busy")
    cause = Deferred(f"host {busy.host} busy: sent again for {busy.wait:.1f} s from now")
    raise sent_again("deferred", cause, busy.wait)


def _retry_later(
    job: Job, settings: Settings, retries: int, exc: TransientError, countdown: float
) -> NoReturn:
    """A transient failure: the URL goes back alone, ``countdown`` seconds from now."""
    send_fetch([job], settings, countdown=countdown, retries=retries + 1)
    raise sent_again(f"retry {retries + 1}: {exc.reason}", exc, countdown) from exc
