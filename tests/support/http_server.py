"""A real HTTP server on 127.0.0.1 that serves test pages and misbehaves on purpose."""

from __future__ import annotations

import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TypeVar

from tests.support.pages import Page


class PageServer(ThreadingHTTPServer):
    """Serves ``/pages/<id>`` and a few failure routes; counts requests per path."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, pages: list[Page]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.pages = {page.id: page.html.encode("utf-8") for page in pages}
        self.hits: dict[str, int] = {}
        self.lock = threading.Lock()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.server_address[1]}"

    def url(self, page_id: str) -> str:
        """The URL of a served page."""
        return f"{self.base_url}/pages/{page_id}"


class _Handler(BaseHTTPRequestHandler):
    server: PageServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # silence stderr
        return

    def do_GET(self) -> None:
        with self.server.lock:
            self.server.hits[self.path] = self.server.hits.get(self.path, 0) + 1
        path = self.path.split("?", 1)[0]
        if path.startswith("/pages/") and path.removeprefix("/pages/") in self.server.pages:
            self._send(200, "text/html; charset=utf-8", self.server.pages[path.removeprefix("/pages/")])
        elif path == "/report.pdf":
            self._send(
                200,
                "application/pdf",
                b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n",
            )
        elif path == "/empty":
            self._send(200, "text/html; charset=utf-8", b"<html><body><nav>Home</nav></body></html>")
        elif path.startswith("/redirect/"):
            target = path.removeprefix("/redirect")
            self.send_response(302)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self._send(404, "text/html", b"<html><body>not found</body></html>")

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


Server = TypeVar("Server", bound=socketserver.BaseServer)


@contextmanager
def serve_in_thread(server: Server, poll_interval: float = 0.5) -> Iterator[Server]:
    """Serve ``server`` from a daemon thread for the duration of the block, then close it."""
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": poll_interval}, daemon=True
    )
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def serve_pages(pages: list[Page]) -> Iterator[PageServer]:
    """Run a :class:`PageServer` in a thread for the duration of the block."""
    with serve_in_thread(PageServer(pages)) as server:
        yield server
