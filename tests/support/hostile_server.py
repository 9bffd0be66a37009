"""A real HTTP server on 127.0.0.1 that misbehaves the ways the open web does.

Routes (each counts its hits and records when they arrived, for the politeness tests):

* ``/page/<name>``: a small article (UTF-8, with an ETag; answers 304 to a matching
  ``If-None-Match``);
* ``/hang``: headers, then nothing until the client gives up;
* ``/dribble``: one byte per second;
* ``/big`` and ``/big-chunked``: a 50 MB body, with and without Content-Length;
* ``/gzip-bomb`` and ``/br-bomb``: an endless stream of compressed zeros (10 GB declared by
  nothing; generated on the fly until the client hangs up);
* ``/loop``: redirects to itself;
* ``/to/<url>``: redirects to ``<url>`` (e.g. ``http://169.254.169.254/``);
* ``/429``: 429 with ``Retry-After: 1`` on the first hit, then the article;
* ``/503``: 503 on the first two hits, then the article;
* ``/cp1252``: a French article in windows-1252 with no charset anywhere;
* ``/fake.pdf``: a PDF labelled ``text/html``;
* ``/xhtml``: an article served as ``application/xhtml+xml``;
* ``/robots.txt``: ``robots`` (settable) or 404 when None, or ``robots_status`` if not 200;
* ``/private/...``: pages that robots.txt disallows.
"""

from __future__ import annotations

import random
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import brotli

ARTICLE_TEXT = (
    "Les enquêteurs évoquent une piste sérieuse après l'arrestation de Sergueï Volkov, "
    "soupçonné d'avoir financé une cellule liée à Al-Qaïda dans le sud du pays. "
    "Selon le parquet, l'homme aurait transféré plusieurs centaines de milliers d'euros "
    "vers des comptes ouverts à l'étranger au cours des deux dernières années."
)


_WORDS = (
    "gouvernement",
    "ministre",
    "élection",
    "région",
    "économie",
    "budget",
    "tribunal",
    "enquête",
    "police",
    "témoin",
    "village",
    "hôpital",
    "école",
    "université",
    "marché",
    "entreprise",
    "syndicat",
    "grève",
    "accord",
    "sommet",
    "frontière",
    "rapport",
    "chiffre",
    "hausse",
    "baisse",
    "récolte",
    "climat",
    "tempête",
    "incendie",
    "musée",
    "festival",
    "équipe",
    "match",
)


def article_html(title: str, paragraphs: int = 6, charset_meta: str | None = "utf-8") -> str:
    """A page with enough article text for the cleaning stage to keep it; its text differs
    from page to page (seeded by ``title``) so the dedup stage sees distinct articles."""
    rng = random.Random(title)
    meta = f'<meta charset="{charset_meta}">' if charset_meta else ""
    body = "\n".join(
        f"<p>{ARTICLE_TEXT if index == 0 else ''} "
        + " ".join(rng.choice(_WORDS) for _ in range(60))
        + ".</p>"
        for index in range(paragraphs)
    )
    return (
        f'<!DOCTYPE html><html lang="fr"><head>{meta}<title>{title}</title></head>'
        f"<body><article><h1>{title}</h1>{body}</article></body></html>"
    )


class HostileServer(ThreadingHTTPServer):
    """The server; ``hits`` and ``times`` are per path, ``robots`` is the robots.txt body."""

    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(self, host: str = "127.0.0.1") -> None:
        super().__init__((host, 0), _Handler)
        self.hits: dict[str, int] = {}
        self.times: list[tuple[float, str]] = []
        self.lock = threading.Lock()
        self.closing = threading.Event()
        self.robots: str | None = "User-agent: *\nDisallow: /private/\n"
        self.robots_status = 200

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def url(self, path: str) -> str:
        """The URL of ``path`` on this server."""
        return self.base_url + path

    def hit_times(self, prefix: str = "") -> list[float]:
        """Arrival times (monotonic) of the requests whose path starts with ``prefix``."""
        with self.lock:
            return [when for when, path in self.times if path.startswith(prefix)]


class _Handler(BaseHTTPRequestHandler):
    server: HostileServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        return

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        with self.server.lock:
            count = self.server.hits[path] = self.server.hits.get(path, 0) + 1
            self.server.times.append((time.monotonic(), path))
        try:
            self._route(path, count)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _route(self, path: str, count: int) -> None:
        server = self.server
        if path == "/robots.txt":
            if server.robots_status != 200:
                self._send(server.robots_status, "text/plain", b"robots.txt is down")
            elif server.robots is None:
                self._send(404, "text/plain", b"no robots here")
            else:
                self._send(200, "text/plain", server.robots.encode())
        elif path.startswith(("/page/", "/private/")):
            etag = f'"{path}-v1"'
            if self.headers.get("If-None-Match") == etag:
                self.send_response(304)
                self.send_header("ETag", etag)
                self.end_headers()
                return
            self._send(200, "text/html; charset=utf-8", article_html(path).encode(), {"ETag": etag})
        elif path == "/hang":
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.flush()
            server.closing.wait(60)
            self.close_connection = True
        elif path == "/dribble":
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", "100000")
            self.end_headers()
            self.wfile.write(b"<html>")
            for _ in range(60):
                if server.closing.wait(1.0):
                    break
                self.wfile.write(b" ")
                self.wfile.flush()
            self.close_connection = True
        elif path in {"/big", "/big-chunked"}:
            self._stream_big(chunked=path == "/big-chunked")
        elif path in {"/gzip-bomb", "/br-bomb"}:
            self._stream_bomb(brotli_coded=path == "/br-bomb")
        elif path == "/loop":
            self._redirect("/loop")
        elif path.startswith("/to/"):
            self._redirect(self.path.removeprefix("/to/"))
        elif path == "/429":
            if count == 1:
                self._send(429, "text/html", b"slow down", {"Retry-After": "1"})
            else:
                self._send(200, "text/html; charset=utf-8", article_html("after 429").encode())
        elif path == "/503":
            if count <= 2:
                self._send(503, "text/html", b"busy")
            else:
                self._send(200, "text/html; charset=utf-8", article_html("after 503").encode())
        elif path == "/cp1252":
            html = article_html("Affaire Volkov : les enquêteurs évoquent Al-Qaïda", charset_meta=None)
            self._send(200, "text/html", html.encode("cp1252"))
        elif path == "/fake.pdf":
            pdf = (
                b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\n" + b"0" * 5000 + b"\ntrailer<<>>\n%%EOF\n"
            )
            self._send(200, "text/html", pdf)
        elif path == "/xhtml":
            html = '<?xml version="1.0" encoding="utf-8"?>\n' + article_html("xhtml").replace(
                "<html", '<html xmlns="http://www.w3.org/1999/xhtml"', 1
            )
            self._send(200, "application/xhtml+xml", html.encode())
        else:
            self._send(404, "text/html", b"<html><body>not found</body></html>")

    def _send(
        self, status: int, content_type: str, body: bytes, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _stream_big(self, *, chunked: bool) -> None:
        size = 50 * 1024 * 1024
        block = (b"<p>" + b"x" * 1020 + b"</p>") * 64
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        if chunked:
            self.send_header("Connection", "close")
        else:
            self.send_header("Content-Length", str(size))
        self.end_headers()
        self.wfile.write(b"<html><body>")
        sent = 0
        while sent < size and not self.server.closing.is_set():
            self.wfile.write(block)
            sent += len(block)
        self.close_connection = True

    def _stream_bomb(self, *, brotli_coded: bool) -> None:
        """10 GB of zeros, compressed on the fly (about 10 MB on the wire for gzip)."""
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Encoding", "br" if brotli_coded else "gzip")
        self.send_header("Connection", "close")
        self.end_headers()
        zeros = b"\0" * (1024 * 1024)
        if brotli_coded:
            br = brotli.Compressor(quality=1)
            emit, finish = br.process, br.finish
        else:
            gz = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
            emit, finish = gz.compress, gz.flush
        self.wfile.write(emit(b"<html><body>"))
        for _ in range(10 * 1024):
            if self.server.closing.is_set():
                break
            data = emit(zeros)
            if data:
                self.wfile.write(data)
        self.wfile.write(finish())
        self.close_connection = True


@contextmanager
def serve_hostile(host: str = "127.0.0.1") -> Iterator[HostileServer]:
    """Run a :class:`HostileServer` in a thread for the duration of the block."""
    server = HostileServer(host)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.closing.set()
        server.shutdown()
        server.server_close()
