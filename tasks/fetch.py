"""Stage 1, fetch: download the page, safely and within bounds.

The pure part is :func:`fetch_page` (one URL in, one :class:`FetchedPage` or a typed error
out); the Celery task stores the page body once in Redis with a TTL and passes only its key
down the chain, so the CPU stages never carry whole pages in their messages.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from config import Settings, get_settings
from tasks.decoding import decode_html, ensure_html
from tasks.errors import PermanentError, TransientError
from tasks.record import Job
from tasks.urls import validate_url
from worker.app import app
from worker.stage import StageTask, run_stage

STAGE = "fetch"
_REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
_RETRY_CODES = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class FetchedPage:
    """A page as the server sent it, decoded to text."""

    url: str
    final_url: str
    status: int
    content_type: str | None
    html: str
    fetched_at: datetime


def check_host(host: str, port: int, *, allow_private: bool) -> None:
    """Refuse a host that resolves to a non-public address, before any connection is made."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise PermanentError(f"cannot resolve {host}: {exc}", reason="dns_error") from exc
    if allow_private:
        return
    for *_, sockaddr in infos:
        address = ipaddress.ip_address(sockaddr[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        if not address.is_global or address.is_multicast:
            raise PermanentError(f"{host} resolves to non-public address {address}", reason="blocked_address")


def fetch_page(url: str, client: httpx.Client, settings: Settings) -> FetchedPage:
    """GET ``url``, following redirects one checked hop at a time, within size and time caps."""
    current = validate_url(url)
    deadline = time.monotonic() + settings.fetch_deadline
    for _hop in range(settings.fetch_max_redirects + 1):
        parts = urlsplit(current)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        check_host(parts.hostname or "", port, allow_private=settings.fetch_allow_private)
        try:
            with client.stream("GET", current, follow_redirects=False) as response:
                if response.status_code in _REDIRECT_CODES and "location" in response.headers:
                    current = validate_url(urljoin(current, response.headers["location"]))
                    continue
                _raise_for_status(response)
                content_type = response.headers.get("content-type")
                body = _read_capped(response, settings.fetch_max_bytes, deadline, content_type)
                return FetchedPage(
                    url=url,
                    final_url=str(response.url),
                    status=response.status_code,
                    content_type=content_type,
                    html=decode_html(body, content_type),
                    fetched_at=datetime.now(UTC),
                )
        except httpx.TimeoutException as exc:
            raise TransientError(f"timed out: {exc!r}", reason="timeout") from exc
        except httpx.TransportError as exc:
            raise TransientError(f"connection failed: {exc!r}", reason="connect_error") from exc
    raise PermanentError(f"more than {settings.fetch_max_redirects} redirects", reason="too_many_redirects")


def _raise_for_status(response: httpx.Response) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    if status in _RETRY_CODES:
        raise TransientError(f"HTTP {status}", reason="server_error", retry_after=_retry_after(response))
    if status >= 500:
        raise TransientError(f"HTTP {status}", reason="server_error")
    raise PermanentError(f"HTTP {status}", reason="http_error")


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    return float(value) if value.strip().isdigit() else None


def _read_capped(
    response: httpx.Response, max_bytes: int, deadline: float, content_type: str | None
) -> bytes:
    """The decompressed body, refused past ``max_bytes`` or past the request deadline."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise PermanentError(f"Content-Length {declared} exceeds {max_bytes}", reason="too_large")
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        if not chunks:
            ensure_html(content_type, chunk)
        chunks.append(chunk)
        size += len(chunk)
        if size > max_bytes:
            raise PermanentError(f"body exceeds {max_bytes} bytes", reason="too_large")
        if time.monotonic() > deadline:
            raise TransientError("request deadline exceeded", reason="timeout")
    body = b"".join(chunks)
    if not body:
        ensure_html(content_type, body)
    return body


_local = threading.local()


def http_client(settings: Settings) -> httpx.Client:
    """One pooled client per thread of the fetch worker."""
    client: httpx.Client | None = getattr(_local, "client", None)
    if client is None:
        client = httpx.Client(
            timeout=httpx.Timeout(settings.fetch_read_timeout, connect=settings.fetch_connect_timeout),
            headers={"User-Agent": settings.user_agent, "Accept": "text/html,application/xhtml+xml"},
            follow_redirects=False,
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        )
        _local.client = client
    return client


@app.task(bind=True, base=StageTask, name="ingest.fetch")
def fetch(self: StageTask, job: dict[str, Any]) -> dict[str, Any]:
    """Fetch the page and store its body in Redis for the next stages."""

    def stage(current: Job) -> Job:
        settings = get_settings()
        page = fetch_page(current.record.url, http_client(settings), settings)
        body_key = self.bodies.put(current.record.id, page.html)
        record = current.record.model_copy(
            update={
                "final_url": page.final_url,
                "http_status": page.status,
                "content_type": page.content_type,
                "fetched_at": page.fetched_at,
            }
        )
        return current.model_copy(update={"record": record, "body_key": body_key})

    return run_stage(self, STAGE, job, stage)
