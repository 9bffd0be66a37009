"""The fetcher's HTTP client and its bounded body reader.

One pooled :class:`httpx.Client` per process (it is thread- and greenlet-safe), whose every
TCP connection goes through :class:`tasks.ssrf.GuardedBackend`. Proxies from the environment
are ignored (``trust_env=False``): a proxy would connect on our behalf to an address the
guard never saw.
"""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpcore
import httpx

from tasks.content_encoding import ACCEPT_ENCODING, decoder_for
from tasks.errors import PermanentError, TransientError
from tasks.ssrf import GuardedBackend


class GuardedTransport(httpx.HTTPTransport):
    """httpx's transport on an httpcore pool whose connections the SSRF guard opens."""

    def __init__(
        self,
        backend: GuardedBackend,
        *,
        limits: httpx.Limits,
        http2: bool,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(limits=limits, http2=http2)
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl_context or httpx.create_ssl_context(),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=http2,
            network_backend=backend,
        )


class PerOriginTransport(httpx.BaseTransport):
    """One small connection pool per origin instead of one big pool.

    httpcore scans every connection of a pool for every request, so a single pool holding
    hundreds of connections costs more CPU than the request itself (measured: 2.5 M
    ``is_idle`` calls for 500 requests over 50 hosts). Pools per origin keep that scan to
    the few connections of one host. Beyond ``max_origins`` the oldest pools are dropped
    (their connections close when the last response using them is done).

    Finding an origin's pool takes no lock (a dict read is atomic): with 200 fetch threads,
    a lock taken on every request was where they waited most (py-spy ``--idle``).
    """

    def __init__(self, factory: Callable[[], httpx.BaseTransport], max_origins: int = 2048) -> None:
        self._factory = factory
        self._max_origins = max_origins
        self._pools: dict[tuple[str, str, int | None], httpx.BaseTransport] = {}
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        key = (request.url.scheme, request.url.host, request.url.port)
        transport = self._pools.get(key)
        if transport is None:
            with self._lock:
                transport = self._pools.get(key)
                if transport is None:
                    transport = self._pools[key] = self._factory()
                    while len(self._pools) > self._max_origins:
                        del self._pools[next(iter(self._pools))]
        return transport.handle_request(request)

    def close(self) -> None:
        with self._lock:
            pools = list(self._pools.values())
            self._pools.clear()
        for transport in pools:
            transport.close()


def build_client(
    backend: GuardedBackend,
    *,
    user_agent: str,
    host_connections: int,
    http2: bool,
    ssl_context: ssl.SSLContext | None = None,
) -> httpx.Client:
    """A pooled client whose connections are all checked by ``backend`` (``ssl_context``:
    certificate verification other than the system's, e.g. a test CA)."""
    context = ssl_context or httpx.create_ssl_context()
    limits = httpx.Limits(
        max_connections=host_connections, max_keepalive_connections=host_connections, keepalive_expiry=30
    )
    return httpx.Client(
        transport=PerOriginTransport(
            lambda: GuardedTransport(backend, limits=limits, http2=http2, ssl_context=context)
        ),
        headers={
            "User-Agent": user_agent,
            "Accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.1",
            "Accept-Encoding": ACCEPT_ENCODING,
        },
        follow_redirects=False,
        trust_env=False,
    )


def hop_timeout(connect: float, read: float, deadline: float) -> httpx.Timeout:
    """Timeouts of one request, none longer than what is left of the deadline."""
    left = max(deadline - time.monotonic(), 0.05)
    return httpx.Timeout(connect=min(connect, left), read=min(read, left), write=min(read, left), pool=left)


def read_body(
    response: httpx.Response,
    max_bytes: int,
    deadline: float,
    check_head: Callable[[bytes], None] | None = None,
) -> bytes:
    """The decoded body, whose first bytes ``check_head`` may refuse before the rest is read.

    ``too_large`` past ``max_bytes`` decoded bytes, ``timeout`` past the deadline (a server
    dribbling a byte a second trips the deadline, not the read timeout).

    Decompression is bounded per step (see :mod:`tasks.content_encoding`), so a gzip or
    brotli bomb never costs more memory than the cap.
    """
    declared = response.headers.get("content-length", "")
    encoding = response.headers.get("content-encoding")
    if declared.isdigit() and int(declared) > max_bytes and not encoding:
        raise PermanentError(f"Content-Length {declared} exceeds {max_bytes}", reason="too_large")
    decoder = decoder_for(encoding)
    chunks: list[bytes] = []
    size = 0
    for raw in response.iter_raw():
        out = decoder.decode(raw, max_bytes - size)
        while True:
            size += len(out)
            if size > max_bytes:
                raise PermanentError(f"body exceeds {max_bytes} bytes", reason="too_large")
            if check_head is not None and out:
                check_head(out)
                check_head = None
            chunks.append(out)
            if not decoder.has_pending():
                break
            out = decoder.decode(b"", max_bytes - size)
        if time.monotonic() > deadline:
            raise TransientError("request deadline exceeded while reading the body", reason="timeout")
    tail = decoder.decode(b"", max_bytes - size)
    if size + len(tail) > max_bytes:
        raise PermanentError(f"body exceeds {max_bytes} bytes", reason="too_large")
    chunks.append(tail)
    return b"".join(chunks)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds a ``Retry-After`` value asks for (delta seconds or an HTTP date); None if absent
    or unreadable. Shared by the fetcher and the webhook store, which cap it each their way."""
    value = (value or "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)


#: What a failed request raises, as the fetch stage and discovery both report it.
REQUEST_ERRORS = (httpx.TransportError, httpx.InvalidURL)


def request_failure(exc: Exception, url: str) -> tuple[str, str]:
    """The message and reason code (``timeout``, ``connect_error``, ``bad_url``) of one of
    :data:`REQUEST_ERRORS` raised while requesting ``url``."""
    if isinstance(exc, httpx.TimeoutException):
        return f"timed out: {exc!r}", "timeout"
    if isinstance(exc, httpx.InvalidURL):
        return f"invalid URL {url!r}: {exc}", "bad_url"
    return f"connection failed: {exc!r}", "connect_error"
