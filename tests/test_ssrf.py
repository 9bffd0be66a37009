"""SSRF protection: refused addresses are decided at the connector and never dialled.

No test sends a packet anywhere but 127.0.0.1: the refused addresses (169.254.169.254,
10.0.0.1, ...) are stopped by the policy inside :class:`GuardedBackend` before
``open_socket`` runs, and the recording backend below proves it.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from config import Settings
from tasks.errors import IngestError, TransientError
from tasks.fetch import Fetcher, build_fetcher
from tasks.http_client import build_client
from tasks.ssrf import (
    AddressPolicy,
    GuardedBackend,
    Resolver,
    is_forbidden,
    resolve_within,
    system_resolver,
)
from tests.support.hostile_server import HostileServer, serve_hostile


class RecordingBackend(GuardedBackend):
    """The real guarded backend, noting every address it actually dials."""

    def __init__(self, policy: AddressPolicy, resolver: Resolver = system_resolver) -> None:
        super().__init__(policy, resolver)
        self.dialled: list[str] = []

    def open_socket(
        self, address: str, port: int, timeout: float | None, local_address: str | None
    ) -> socket.socket:
        self.dialled.append(address)
        if not ipaddress.ip_address(address).is_loopback:
            raise AssertionError(f"test tried to dial {address}")  # never leave loopback
        return super().open_socket(address, port, timeout, local_address)


@pytest.fixture
def server() -> Iterator[HostileServer]:
    with serve_hostile() as running:
        running.robots = None
        yield running


def _fetcher(settings: Settings, policy: AddressPolicy) -> tuple[Fetcher, RecordingBackend]:
    backend = RecordingBackend(policy)
    base = build_fetcher(settings.model_copy(update={"host_rate": 1000.0, "fetch_allow_private": False}))
    client = build_client(backend, user_agent=settings.user_agent, host_connections=10, http2=False)
    base.client.close()
    return Fetcher(base.settings, client, base.limiter, base.robots, base.validators), backend


@pytest.mark.parametrize(
    "address",
    [
        "169.254.169.254",  # cloud metadata
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "100.64.0.1",  # CGNAT
        "127.0.0.1",
        "0.0.0.0",
        "224.0.0.251",  # multicast
        "240.0.0.1",  # reserved
        "255.255.255.255",
        "198.18.0.1",
        "::1",
        "::",
        "::ffff:127.0.0.1",  # IPv4-mapped loopback
        "::ffff:169.254.169.254",  # IPv4-mapped metadata
        "::ffff:10.0.0.1",
        "::127.0.0.1",  # IPv4-compatible (deprecated)
        "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
        "2002:a00:1::1",  # 6to4 of 10.0.0.1
        "fe80::1",
        "fc00::1",
        "fd12:3456::1",
        "ff02::1",
        "2001:db8::1",
    ],
)
def test_non_public_addresses_are_forbidden(address: str) -> None:
    assert is_forbidden(ipaddress.ip_address(address))
    assert not AddressPolicy().allows(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert AddressPolicy().allows(ipaddress.ip_address(address))


def test_refusal_is_on_by_default() -> None:
    assert Settings(_env_file=None).fetch_allow_private is False  # type: ignore[call-arg]


def test_allowed_networks_exempt_only_themselves() -> None:
    policy = AddressPolicy.from_settings(False, ["10.20.0.0/16"])
    assert policy.allows(ipaddress.ip_address("10.20.3.4"))
    assert not policy.allows(ipaddress.ip_address("10.21.3.4"))
    assert not policy.allows(ipaddress.ip_address("169.254.169.254"))


def test_a_name_with_one_private_answer_is_refused() -> None:
    def resolver(host: str, port: int) -> list[str]:
        return ["93.184.216.34", "10.0.0.1"]

    with pytest.raises(IngestError) as caught:
        AddressPolicy().checked_addresses("rebind.example", 80, resolver)
    assert caught.value.reason == "blocked_address"


@pytest.mark.parametrize("target", ["http://169.254.169.254/latest/meta-data/", "http://10.0.0.1/admin"])
def test_redirect_to_internal_address_is_never_dialled(
    settings: Settings, server: HostileServer, target: str
) -> None:
    # The operator exempts loopback (where the test server is); everything else stays refused.
    fetcher, backend = _fetcher(settings, AddressPolicy.from_settings(False, ["127.0.0.0/8"]))
    try:
        with pytest.raises(IngestError) as caught:
            fetcher.fetch(server.url("/to/" + target), "rec")
    finally:
        fetcher.client.close()
    assert caught.value.reason == "blocked_address"
    assert server.hits["/to/" + target] == 1  # the first hop was served...
    assert set(backend.dialled) == {"127.0.0.1"}  # ...and the redirect target never dialled


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::ffff:127.0.0.1]", "[::1]", "127.1"])
def test_loopback_is_refused_before_connecting(settings: Settings, server: HostileServer, host: str) -> None:
    port = server.server_address[1]
    fetcher, backend = _fetcher(settings, AddressPolicy())
    try:
        with pytest.raises(IngestError) as caught:
            fetcher.fetch(f"http://{host}:{port}/page/x", "rec")
    finally:
        fetcher.client.close()
    assert caught.value.reason == "blocked_address"
    assert backend.dialled == []
    assert server.hits == {}


def test_allow_private_lets_loopback_through(settings: Settings, server: HostileServer) -> None:
    fetcher, backend = _fetcher(settings, AddressPolicy(allow_private=True))
    try:
        assert fetcher.fetch(server.url("/page/ok"), "rec").status == 200
    finally:
        fetcher.client.close()
    assert set(backend.dialled) == {"127.0.0.1"}


def test_default_fetcher_refuses_loopback(settings: Settings, server: HostileServer) -> None:
    fetcher = build_fetcher(settings.model_copy(update={"fetch_allow_private": False}))
    try:
        with pytest.raises(IngestError) as caught:
            fetcher.fetch(server.url("/page/x"), "rec")
    finally:
        fetcher.client.close()
    assert caught.value.reason == "blocked_address"
    assert server.hits == {}


class _TlsHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hosts: ClassVar[list[str]] = []

    def log_message(self, format: str, *args: object) -> None:
        return

    def do_GET(self) -> None:
        self.hosts.append(self.headers.get("Host", ""))
        body = b"<!DOCTYPE html><html><body><p>over TLS</p></body></html>"
        status = 404 if self.path == "/robots.txt" else 200
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_tls_keeps_the_host_name_while_dialling_the_checked_address(
    settings: Settings, tmp_path: Path
) -> None:
    """The socket goes to the resolved, checked IP; SNI, certificate check and Host header
    still use the URL's host name."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost"],
        check=True, capture_output=True,
    )  # fmt: skip
    server_names: list[str | None] = []
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    server_context.sni_callback = lambda sock, name, ctx: server_names.append(name)  # type: ignore[assignment,misc]
    _TlsHandler.hosts = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _TlsHandler)
    server.daemon_threads = True
    server.socket = server_context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    backend = RecordingBackend(AddressPolicy(allow_private=True))
    base = build_fetcher(settings.model_copy(update={"host_rate": 1000.0}))
    base.client.close()
    client = build_client(
        backend,
        user_agent=settings.user_agent,
        host_connections=4,
        http2=True,
        ssl_context=ssl.create_default_context(cafile=str(cert)),
    )
    fetcher = Fetcher(base.settings, client, base.limiter, base.robots, base.validators)
    try:
        page = fetcher.fetch(f"https://localhost:{port}/page", "rec")
    finally:
        client.close()
        server.shutdown()
        server.server_close()
    assert "over TLS" in page.html
    assert "127.0.0.1" in backend.dialled and "localhost" not in backend.dialled
    assert server_names and set(server_names) == {"localhost"}
    assert set(_TlsHandler.hosts) == {f"localhost:{port}"}


def test_a_lookup_that_never_answers_is_given_up_at_the_timeout() -> None:
    """A name server that hangs costs the request its connect timeout, not a worker slot."""
    released = threading.Event()

    def hanging_resolver(host: str, port: int) -> list[str]:
        released.wait(10)
        return ["10.0.0.1"]  # refused by the policy: never dialled, even if the lookup returned

    backend = RecordingBackend(AddressPolicy(), resolver=hanging_resolver)
    started = time.monotonic()
    try:
        with pytest.raises(TransientError) as caught:
            backend.connect_tcp("slow-dns.example", 80, timeout=0.3)
    finally:
        released.set()
    assert caught.value.reason == "dns_error"
    assert time.monotonic() - started < 2.0
    assert backend.dialled == []


def test_literal_addresses_are_not_looked_up_on_another_thread() -> None:
    threads: list[str] = []

    def recording_resolver(host: str, port: int) -> list[str]:
        threads.append(threading.current_thread().name)
        return [host]

    assert resolve_within(recording_resolver, 0.5, "127.0.0.1", 80) == ["127.0.0.1"]
    assert resolve_within(recording_resolver, 0.5, "news.example", 80) == ["news.example"]
    assert threads[0] == threading.current_thread().name
    assert threads[1].startswith("dns")
