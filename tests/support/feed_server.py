"""A real HTTP server on 127.0.0.1 serving feeds and sitemaps that the test changes between polls.

Each path is a :class:`Route` the test sets (and replaces) while the server runs: a body
with its content type, an optional ``ETag`` / ``Last-Modified`` honoured for conditional
requests (``304`` when the request's validators match), gzip as a Content-Encoding, a status
or a redirect. Every request is recorded with its time, path, status and whether it was
conditional, so a test can count polls per feed.
"""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.support.http_server import serve_in_thread


@dataclass(frozen=True)
class Route:
    """What one path answers."""

    body: bytes = b""
    content_type: str = "application/xml"
    status: int = 200
    etag: str | None = None
    last_modified: str | None = None
    gzip_encoding: bool = False
    location: str | None = None


@dataclass(frozen=True)
class Hit:
    """One request as the server saw it."""

    at: float
    path: str
    status: int
    conditional: bool


class FeedServer(ThreadingHTTPServer):
    """Serves :attr:`routes`; everything else (robots.txt included) is a 404."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes: dict[str, Route] = {}
        self.hits: list[Hit] = []
        self.lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"

    def set(self, path: str, route: Route) -> str:
        """Serve ``route`` at ``path`` from now on; returns its URL."""
        with self.lock:
            self.routes[path] = route
        return self.url(path)

    def hits_of(self, path: str) -> list[Hit]:
        with self.lock:
            return [hit for hit in self.hits if hit.path == path]


class _Handler(BaseHTTPRequestHandler):
    server: FeedServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        return

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        with self.server.lock:
            route = self.server.routes.get(path)
        conditional = "If-None-Match" in self.headers or "If-Modified-Since" in self.headers
        if route is None:
            self._record(path, 404, conditional)
            self._send(404, "text/plain", b"not found")
            return
        if route.location is not None:
            self._record(path, route.status or 302, conditional)
            self.send_response(route.status if route.status in (301, 302, 303, 307, 308) else 302)
            self.send_header("Location", route.location)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        unchanged = (route.etag is not None and self.headers.get("If-None-Match") == route.etag) or (
            route.etag is None
            and route.last_modified is not None
            and self.headers.get("If-Modified-Since") == route.last_modified
        )
        if unchanged:
            self._record(path, 304, conditional)
            self.send_response(304)
            self._validators(route)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self._record(path, route.status, conditional)
        body = gzip.compress(route.body) if route.gzip_encoding else route.body
        self.send_response(route.status)
        self.send_header("Content-Type", route.content_type)
        if route.gzip_encoding:
            self.send_header("Content-Encoding", "gzip")
        self._validators(route)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _validators(self, route: Route) -> None:
        if route.etag:
            self.send_header("ETag", route.etag)
        if route.last_modified:
            self.send_header("Last-Modified", route.last_modified)

    def _record(self, path: str, status: int, conditional: bool) -> None:
        with self.server.lock:
            self.server.hits.append(Hit(time.monotonic(), path, status, conditional))

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextmanager
def serve_feeds() -> Iterator[FeedServer]:
    """A :class:`FeedServer` in a thread for the duration of the block."""
    with serve_in_thread(FeedServer(), poll_interval=0.1) as server:
        yield server


# --- documents ----------------------------------------------------------------------------------
T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def http_date(when: datetime) -> str:
    return format_datetime(when.astimezone(UTC), usegmt=True)


def rss(items: list[tuple[str, str]], when: datetime = T0) -> bytes:
    """An RSS 2.0 feed of ``(url, title)`` items, newest first, a minute apart."""
    body = "".join(
        f"<item><title>{title}</title><link>{url}</link><guid>{url}</guid>"
        f"<pubDate>{http_date(when - timedelta(minutes=i))}</pubDate></item>"
        for i, (url, title) in enumerate(items)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Feed</title>'
        f"<link>http://127.0.0.1/</link>{body}</channel></rss>"
    ).encode()


def atom(items: list[tuple[str, str]], when: datetime = T0) -> bytes:
    body = "".join(
        f"<entry><title>{title}</title><link rel='alternate' href='{url}'/><id>{url}</id>"
        f"<published>{(when - timedelta(minutes=i)).isoformat()}</published>"
        f"<updated>{(when - timedelta(minutes=i)).isoformat()}</updated></entry>"
        for i, (url, title) in enumerate(items)
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>A</title>'
        f"<id>urn:feed</id><updated>{when.isoformat()}</updated>{body}</feed>"
    ).encode()


def json_feed(items: list[tuple[str, str]], when: datetime = T0) -> bytes:
    import json

    return json.dumps(
        {
            "version": "https://jsonfeed.org/version/1.1",
            "title": "J",
            "items": [
                {
                    "id": url,
                    "url": url,
                    "title": title,
                    "date_published": (when - timedelta(minutes=i)).isoformat(),
                }
                for i, (url, title) in enumerate(items)
            ],
        }
    ).encode()


def sitemap(urls: list[str], when: datetime = T0) -> bytes:
    body = "".join(f"<url><loc>{url}</loc><lastmod>{when.isoformat()}</lastmod></url>" for url in urls)
    return (
        '<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        f"{body}</urlset>"
    ).encode()


def news_sitemap(items: list[tuple[str, str]], when: datetime = T0) -> bytes:
    body = "".join(
        f"<url><loc>{url}</loc><news:news><news:publication><news:name>Example</news:name>"
        f"<news:language>en</news:language></news:publication>"
        f"<news:publication_date>{(when - timedelta(minutes=i)).isoformat()}</news:publication_date>"
        f"<news:title>{title}</news:title></news:news></url>"
        for i, (url, title) in enumerate(items)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
        f'xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">{body}</urlset>'
    ).encode()


def sitemap_index(urls: list[str]) -> bytes:
    body = "".join(f"<sitemap><loc>{url}</loc></sitemap>" for url in urls)
    return (
        '<?xml version="1.0" encoding="UTF-8"?><sitemapindex '
        f'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{body}</sitemapindex>'
    ).encode()
