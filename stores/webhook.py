"""The ``webhook`` store: each record POSTed, signed, to one operator-configured URL.

The receiver is another team's service, so the contract is the usual one of webhooks: the
body is the record's JSON exactly as committed to the outbox, signed with a shared secret
(``X-Ingest-Signature: sha256=<hex HMAC-SHA256 of the body>``, computed by :func:`sign`, to
be checked by the receiver with a constant-time compare), and carries
``Idempotency-Key: <record id>``. Delivery is at least once (an entry is handed over again
after a crash, or after a timeout whose request did arrive), so the receiver must treat a
second POST with the same key as done.

Per record: 2xx is written; 5xx, 408, 429, a timeout or a connection error is left for the
outbox to retry (with the largest ``Retry-After`` as its hint); any other answer (4xx, or a
3xx, since redirects are not followed) is refused for good and becomes a dead letter naming
the store. Only when no request of the batch reached the receiver at all is the store
unavailable (:class:`StoreUnavailable`): the receiver is down, so backing off is right.

No SSRF rule applies here, unlike the fetcher: the URL is set by the operator
(``INGEST_WEBHOOK_URL``), not taken from crawled pages, and may well be an internal address.

Up to ``concurrency`` requests are in flight at once: a thread pool over one shared
``httpx.Client`` (thread-safe) whose connection pool is as large, so connections are kept
alive from batch to batch.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from config import Settings
from stores.base import Delivery, StoreUnavailable, WriteResult

#: Longest wait a receiver's ``Retry-After`` can impose, in seconds.
MAX_RETRY_AFTER = 3600.0
#: Statuses worth retrying: the receiver is overloaded, slow or broken for now.
_RETRY_STATUSES = frozenset({408, 429})
#: Response body read at most (enough for a rejection's reason; the rest is not wanted).
_MAX_RESPONSE_BYTES = 65_536
#: Characters of a refusing response's body kept in the dead letter.
_REASON_CHARS = 200


def sign(secret: str, body: bytes) -> str:
    """The ``X-Ingest-Signature`` value of ``body``: ``sha256=<hex HMAC-SHA256>``.

    A receiver verifies with ``hmac.compare_digest(sign(secret, raw_body), header)``.
    """
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


@dataclass(frozen=True)
class _Outcome:
    """What happened to one POST."""

    entry_id: str
    status: int | None = None
    """The HTTP status; None when the receiver was not reached (connection error, timeout)."""
    detail: str = ""
    retry_after: float | None = None


class WebhookStore:
    """POSTs each record to ``url``, ``concurrency`` at a time."""

    name = "webhook"
    takes_dead_letters = False

    def __init__(self, url: str, secret: str, concurrency: int, timeout: float, user_agent: str) -> None:
        parsed = httpx.URL(url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError(f"webhook URL {url!r} is not an absolute http(s) URL")
        if not secret:
            raise ValueError("the webhook store needs a secret to sign with")
        if concurrency < 1:
            raise ValueError(f"webhook concurrency must be >= 1, not {concurrency}")
        self.url = url
        self._secret = secret
        self.concurrency = concurrency
        self._client = httpx.Client(
            headers={"User-Agent": user_agent},
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
            follow_redirects=False,
            trust_env=False,  # the operator's URL, reached directly: no proxy from the environment
        )
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="webhook")

    @classmethod
    def from_settings(cls, settings: Settings) -> WebhookStore:
        """The store the settings describe (they have checked that URL and secret are set)."""
        if not (settings.webhook_url and settings.webhook_secret):
            raise ValueError("the webhook store needs INGEST_WEBHOOK_URL and INGEST_WEBHOOK_SECRET")
        return cls(
            settings.webhook_url,
            settings.webhook_secret,
            concurrency=settings.webhook_concurrency,
            timeout=settings.webhook_timeout,
            user_agent=settings.user_agent,
        )

    def write(self, deliveries: Sequence[Delivery]) -> WriteResult:
        """POST each record; see the module docstring for what each answer means.

        Dead-letter entries (which this store does not take) are acknowledged unposted.
        """
        result = WriteResult(written=[d.entry_id for d in deliveries if d.kind != "record"])
        records = [delivery for delivery in deliveries if delivery.kind == "record"]
        if not records:
            return result
        outcomes = list(self._pool.map(self._post, records))
        unreached = [outcome for outcome in outcomes if outcome.status is None]
        if len(unreached) == len(outcomes):
            raise StoreUnavailable(f"webhook {self.url} unreachable: {unreached[0].detail}")
        hints: list[float] = []
        for outcome in outcomes:
            status = outcome.status
            if status is None:
                continue
            if 200 <= status < 300:
                result.written.append(outcome.entry_id)
            elif status >= 500 or status in _RETRY_STATUSES:
                if outcome.retry_after is not None:
                    hints.append(outcome.retry_after)
            else:
                result.rejected[outcome.entry_id] = f"HTTP {status}: {outcome.detail}"
        if hints:
            result.retry_after = max(hints)
        return result

    def _post(self, delivery: Delivery) -> _Outcome:
        body = delivery.payload.encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            "X-Ingest-Signature": sign(self._secret, body),
            "Idempotency-Key": delivery.record_id,
        }
        try:
            with self._client.stream("POST", self.url, content=body, headers=headers) as response:
                head = _read_head(response)
                return _Outcome(
                    delivery.entry_id,
                    status=response.status_code,
                    detail=head.decode("utf-8", "replace")[:_REASON_CHARS],
                    retry_after=retry_after(response.headers.get("retry-after")),
                )
        except httpx.TransportError as exc:  # connect/read/write errors and timeouts
            return _Outcome(delivery.entry_id, detail=f"{type(exc).__name__}: {exc}")

    def close(self) -> None:
        """Wait for requests in flight, then close the connections."""
        self._pool.shutdown(wait=True)
        self._client.close()


def _read_head(response: httpx.Response) -> bytes:
    """The first bytes of the body. A body read to its end keeps the connection reusable;
    one longer than the cap is cut off (and its connection closed)."""
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.iter_bytes():
            chunks.append(chunk)
            size += len(chunk)
            if size >= _MAX_RESPONSE_BYTES:
                break
    except httpx.DecodingError:  # a corrupt compressed body: the status is what counts
        pass
    return b"".join(chunks)


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds a ``Retry-After`` value (seconds or an HTTP date) asks for, at most an hour."""
    value = (value or "").strip()
    if not value:
        return None
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)
