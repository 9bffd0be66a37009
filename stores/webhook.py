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

Up to ``concurrency`` requests are in flight at once: a thread pool whose every worker
thread keeps one ``http.client`` connection alive from request to request and from batch to
batch (reopened when the receiver has closed it while idle, or after an error). The standard
library's client rather than httpx: httpx's per-request machinery held the GIL for 1.0-1.5 ms
a POST and capped the store near 1,000 records/s whatever the receiver; ``http.client`` costs
a fifth of that (``bench/stores.py``). It reads no proxy from the environment, follows no
redirect and retries nothing (the outbox retries). httpx still parses the URL and builds the
TLS context, once, at construction, so both are what they were: over https the certificate
and host name are verified against certifi's CA bundle (``SSL_CERT_FILE`` is not read),
credentials in the URL are sent as HTTP Basic, and the fragment is not sent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import select
import socket
import ssl
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime

import httpx

from config import Settings
from stores.base import Delivery, StoreUnavailable, WriteResult
from tasks.http_client import parse_retry_after

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
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL as exc:
            raise ValueError(f"webhook URL {url!r} is not an absolute http(s) URL: {exc}") from exc
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError(f"webhook URL {url!r} is not an absolute http(s) URL")
        if not secret:
            raise ValueError("the webhook store needs a secret to sign with")
        if concurrency < 1:
            raise ValueError(f"webhook concurrency must be >= 1, not {concurrency}")
        self.url = url
        self._secret = secret
        self.concurrency = concurrency
        self._timeout = timeout
        self._host = parsed.raw_host.decode("ascii")  # IDNA-encoded; an IPv6 address unbracketed
        # always explicit: with none, http.client would read an IPv6 address's last group as one
        self._port = parsed.port or (443 if parsed.scheme == "https" else 80)
        self._target = parsed.raw_path.decode("ascii")  # path and query, percent-encoded
        self._headers = {"User-Agent": user_agent, "Accept": "*/*"}
        if parsed.username or parsed.password:
            userpass = f"{parsed.username}:{parsed.password}".encode()
            self._headers["Authorization"] = "Basic " + base64.b64encode(userpass).decode("ascii")
        self._tls: ssl.SSLContext | None = None
        if parsed.scheme == "https":
            self._tls = httpx.create_ssl_context(trust_env=False)  # certifi's CAs, as before
            self._tls.set_alpn_protocols(["http/1.1"])
        self._local = threading.local()  # .connection: the worker thread's own
        self._connections: list[http.client.HTTPConnection] = []  # all of them, to close
        self._lock = threading.Lock()
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
            **self._headers,
            "Content-Type": "application/json",
            "X-Ingest-Signature": sign(self._secret, body),
            "Idempotency-Key": delivery.record_id,
        }
        connection = self._connection()
        try:
            connection.request("POST", self._target, body=body, headers=headers)
            response = connection.getresponse()
            head = response.read(_MAX_RESPONSE_BYTES)
            if not response.isclosed():  # longer than the cap: cut off, the connection with it
                connection.close()
        except (OSError, http.client.HTTPException) as exc:  # connect/read/write errors, timeouts, TLS
            connection.close()  # the next request opens a new one
            return _Outcome(delivery.entry_id, detail=f"{type(exc).__name__}: {exc}")
        except BaseException:
            connection.close()  # never leave it halfway through a request
            raise
        return _Outcome(
            delivery.entry_id,
            status=response.status,
            detail=head.decode("utf-8", "replace")[:_REASON_CHARS],
            retry_after=retry_after(response.getheader("Retry-After")),
        )

    def _connection(self) -> http.client.HTTPConnection:
        """This worker thread's connection: kept alive, or (re)opened by its next request."""
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is None:
            if self._tls is not None:
                connection = http.client.HTTPSConnection(
                    self._host, self._port, timeout=self._timeout, context=self._tls
                )
            else:
                connection = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        elif connection.sock is not None and _dropped(connection.sock):
            connection.close()  # closed by the receiver while idle: reopen rather than fail
        return connection

    def close(self) -> None:
        """Wait for requests in flight, then close the connections."""
        self._pool.shutdown(wait=True)
        with self._lock:
            connections, self._connections = self._connections, []
        for connection in connections:
            connection.close()


def _dropped(sock: socket.socket) -> bool:
    """Whether an idle keep-alive connection is unusable: readable means the receiver closed
    it (or sent what it should not have), either way not to be written to."""
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    readable, _, _ = select.select([sock], [], [], 0)
    return bool(readable)


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds a ``Retry-After`` value (seconds or an HTTP date) asks for, at most an hour."""
    seconds = parse_retry_after(value, now)
    return None if seconds is None else min(seconds, MAX_RETRY_AFTER)
