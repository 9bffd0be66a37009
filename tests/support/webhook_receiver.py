"""A real webhook receiver on 127.0.0.1, for tests of the ``webhook`` store and of delivery.

It behaves like a careful receiver: every POST's ``X-Ingest-Signature`` is checked (constant
time) against :func:`stores.webhook.sign`, and ``Idempotency-Key`` is honoured (a second
POST of an accepted key answers 200 and changes nothing). What it answers otherwise is up to
the test's ``behaviour``::

    with serve_webhook("s3cret", behaviour=fail_first(503)) as receiver:
        ...  # point INGEST_WEBHOOK_URL at receiver.url
        assert set(receiver.accepted) == {...}
        assert all(post.signature_ok for post in receiver.posts)

``behaviour(key, attempt)`` is called for each signed POST of a key not yet accepted, with
``attempt`` = 1 for the key's first POST, 2 for its second, ...; it returns a status, or a
``(status, retry_after)`` pair to add a ``Retry-After`` header. It runs in the request's
own thread, so it may sleep to play a slow receiver. A 2xx answer accepts the record.
A POST whose signature is wrong answers 401; one without a key or a JSON body, 400.
"""

from __future__ import annotations

import hmac
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from stores.webhook import sign
from tests.support.http_server import serve_in_thread

#: ``behaviour(key, attempt)`` -> status, or (status, Retry-After value).
Behaviour = Callable[[str, int], int | tuple[int, str | int]]


def always(status: int = 200) -> Behaviour:
    """Answer ``status`` to every POST."""
    return lambda key, attempt: status


def fail_first(status: int = 503, times: int = 1, retry_after: str | int | None = None) -> Behaviour:
    """Answer ``status`` to each key's first ``times`` POSTs, then 200."""

    def behaviour(key: str, attempt: int) -> int | tuple[int, str | int]:
        if attempt > times:
            return 200
        return status if retry_after is None else (status, retry_after)

    return behaviour


@dataclass(frozen=True)
class Post:
    """One POST the receiver saw."""

    key: str
    """Its ``Idempotency-Key`` ("" if none)."""
    attempt: int
    """1 for the key's first POST, 2 for the next, ..."""
    status: int
    """What the receiver answered."""
    signature_ok: bool
    headers: dict[str, str]
    """Request headers, names lower-cased."""


class WebhookReceiver(ThreadingHTTPServer):
    """The server; read ``accepted``, ``posts`` and ``max_in_flight`` (all thread-safe)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, secret: str, behaviour: Behaviour, path: str = "/hook") -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.secret = secret
        self.behaviour = behaviour
        self.path = path
        self._lock = threading.Lock()
        self._accepted: dict[str, dict[str, Any]] = {}
        self._posts: list[Post] = []
        self._attempts: dict[str, int] = {}
        self._in_flight = 0
        self._max_in_flight = 0

    @property
    def url(self) -> str:
        """Where to POST: ``http://127.0.0.1:<port>/hook``."""
        return f"http://127.0.0.1:{self.server_address[1]}{self.path}"

    @property
    def accepted(self) -> dict[str, dict[str, Any]]:
        """Idempotency-Key -> the record (parsed) of its first accepted POST; a copy."""
        with self._lock:
            return dict(self._accepted)

    @property
    def posts(self) -> list[Post]:
        """Every POST seen, in arrival order of its answer; a copy."""
        with self._lock:
            return list(self._posts)

    @property
    def max_in_flight(self) -> int:
        """Most POSTs being handled at the same moment."""
        with self._lock:
            return self._max_in_flight

    def _handle(
        self, key: str, signature: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, str | None]:
        """Decide the answer to one POST and record it: (status, Retry-After or None)."""
        signature_ok = hmac.compare_digest(sign(self.secret, body).encode(), signature.encode())
        with self._lock:
            self._in_flight += 1
            self._max_in_flight = max(self._max_in_flight, self._in_flight)
            attempt = self._attempts[key] = self._attempts.get(key, 0) + 1
            duplicate = key in self._accepted
        status, retry_after = 200, None
        try:
            document = json.loads(body)
            if not isinstance(document, dict):
                raise ValueError("not an object")
        except ValueError:
            document = None
        if not signature_ok:
            status = 401
        elif not key or document is None:
            status = 400
        elif not duplicate:
            try:
                answer = self.behaviour(key, attempt)
            except Exception:  # a broken behaviour answers 500, never a false 200
                answer = 500
            status, retry_after = answer if isinstance(answer, tuple) else (answer, None)
        with self._lock:
            self._in_flight -= 1
            if 200 <= status < 300 and document is not None:
                self._accepted.setdefault(key, document)
            self._posts.append(Post(key, attempt, status, signature_ok, headers))
        return status, None if retry_after is None else str(retry_after)


class _Handler(BaseHTTPRequestHandler):
    server: WebhookReceiver
    protocol_version = "HTTP/1.1"
    #: Answer at once: with Nagle on, each answer waits ~40 ms for the client's delayed ACK.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: object) -> None:  # silence stderr
        return

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        if self.path != self.server.path:
            self._answer(404, None)
            return
        headers = {name.lower(): value for name, value in self.headers.items()}
        status, retry_after = self.server._handle(
            headers.get("idempotency-key", ""), headers.get("x-ingest-signature", ""), body, headers
        )
        self._answer(status, retry_after)

    def _answer(self, status: int, retry_after: str | None) -> None:
        body = json.dumps({"status": status}).encode()
        self.send_response(status)
        if retry_after is not None:
            self.send_header("Retry-After", retry_after)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@contextmanager
def serve_webhook(
    secret: str, behaviour: Behaviour | None = None, path: str = "/hook"
) -> Iterator[WebhookReceiver]:
    """Run a :class:`WebhookReceiver` in a thread for the duration of the block."""
    with serve_in_thread(
        WebhookReceiver(secret, behaviour or always(200), path), poll_interval=0.05
    ) as server:
        yield server
