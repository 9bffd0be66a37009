"""SSRF protection: which addresses the fetcher may connect to, decided at connect time.

A URL from the open web must never make the ingester talk to its own network: the cloud
metadata service (169.254.169.254), a database on 10.0.0.5, Redis on 127.0.0.1. Checking the
host name before the request is not enough (DNS can answer differently the second time, and
every redirect hop is a new host), so the check lives in the connector itself:
:class:`GuardedBackend` is the httpcore network backend that resolves the host once, refuses
the connection if any address is not public, and opens the socket to the address it checked.
TLS still uses the host name (SNI and certificate check) and so does the ``Host`` header,
because httpcore takes both from the URL, not from the socket.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial

import httpcore
from httpcore._backends.sync import SyncStream

from tasks.errors import PermanentError, TransientError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Networks refused on top of what :attr:`ipaddress.IPv4Address.is_global` already refuses,
#: spelled out so the rule does not depend on the Python version's registry tables.
_FORBIDDEN: tuple[Network, ...] = tuple(
    ipaddress.ip_network(net)
    for net in (
        "0.0.0.0/8",  # "this network"
        "10.0.0.0/8",  # private
        "100.64.0.0/10",  # CGNAT (RFC 6598)
        "127.0.0.0/8",  # loopback
        "169.254.0.0/16",  # link-local, incl. cloud metadata 169.254.169.254
        "172.16.0.0/12",  # private
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # TEST-NET-1
        "192.88.99.0/24",  # 6to4 relay anycast
        "192.168.0.0/16",  # private
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # TEST-NET-2
        "203.0.113.0/24",  # TEST-NET-3
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, incl. broadcast
        "::/128",  # unspecified
        "::1/128",  # loopback
        "64:ff9b:1::/48",  # local-use NAT64
        "100::/64",  # discard
        "2001:db8::/32",  # documentation
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "fec0::/10",  # deprecated site-local
        "ff00::/8",  # multicast
    )
)

Resolver = Callable[[str, int], Sequence[str]]


class BlockedAddressError(PermanentError):
    """The host is, or resolves to, an address the fetcher must not reach."""

    def __init__(self, message: str) -> None:
        super().__init__(message, reason="blocked_address")


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (IPv4-mapped, 6to4, Teredo, NAT64), if any."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in ipaddress.ip_network("64:ff9b::/96"):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in ipaddress.ip_network("::/96"):  # deprecated IPv4-compatible ::a.b.c.d
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def is_forbidden(address: IPAddress) -> bool:
    """True for any address that is not plainly a public unicast address."""
    inner = embedded_ipv4(address)
    if inner is not None and is_forbidden(inner):
        return True
    if any(address in net for net in _FORBIDDEN if net.version == address.version):
        return True
    return not address.is_global or address.is_multicast or address.is_reserved


def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (a literal IP resolves to itself, without DNS)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        if exc.errno == socket.EAI_AGAIN:  # the resolver failed, not the name: try again later
            raise TransientError(f"cannot resolve {host} now: {exc}", reason="dns_error") from exc
        raise PermanentError(f"cannot resolve {host}: {exc}", reason="dns_error") from exc
    except UnicodeError as exc:
        raise PermanentError(f"bad host name {host!r}: {exc}", reason="bad_url") from exc
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


_lookups: ThreadPoolExecutor | None = None
_lookups_lock = threading.Lock()


def _lookup_pool() -> ThreadPoolExecutor:
    """Where lookups run, so that a caller can stop waiting for one (the lookup itself cannot
    be interrupted; it finishes in the background).

    Created on first use, after a gevent worker has patched ``threading``: its workers are
    then greenlets, and a greenlet never blocks on a real thread's queue.
    """
    global _lookups
    if _lookups is None:
        with _lookups_lock:
            if _lookups is None:
                _lookups = ThreadPoolExecutor(max_workers=32, thread_name_prefix="dns")
    return _lookups


def resolve_within(resolver: Resolver, timeout: float | None, host: str, port: int) -> Sequence[str]:
    """``resolver(host, port)``, given up after ``timeout`` seconds (``dns_error``, transient).

    A literal IP address needs no lookup and no worker thread.
    """
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        pass
    else:
        return resolver(host, port)
    if timeout is None:
        return resolver(host, port)
    future = _lookup_pool().submit(resolver, host, port)
    try:
        return future.result(timeout=timeout)
    except TimeoutError as exc:  # concurrent.futures' timeout is the builtin since 3.11
        raise TransientError(f"cannot resolve {host} within {timeout:.1f}s", reason="dns_error") from exc


@dataclass
class AddressPolicy:
    """The SSRF rule: public addresses only, unless the operator allowed more.

    ``allow_private`` turns the rule off (local testing); ``allowed_networks`` exempts
    networks the operator owns (an intranet news site) while keeping every other refusal.
    """

    allow_private: bool = False
    allowed_networks: Sequence[Network] = field(default_factory=tuple)

    @classmethod
    def from_settings(cls, allow_private: bool, networks: Iterable[str]) -> AddressPolicy:
        """The policy for the fetch settings."""
        return cls(allow_private, tuple(ipaddress.ip_network(net, strict=False) for net in networks))

    def allows(self, address: IPAddress) -> bool:
        """True if the fetcher may connect to ``address``."""
        if self.allow_private:
            return True
        candidates = [address]
        inner = embedded_ipv4(address)
        if inner is not None:
            candidates.append(inner)
        for candidate in candidates:
            if any(candidate in net for net in self.allowed_networks if net.version == candidate.version):
                return True
        return not is_forbidden(address)

    def checked_addresses(self, host: str, port: int, resolver: Resolver = system_resolver) -> list[str]:
        """The addresses to connect to for ``host``, all checked; refuses the host if any is not.

        Refusing when only one of several answers is private closes the trick of a DNS name
        with one public and one internal record.
        """
        addresses = resolver(host.strip("[]"), port)
        if not addresses:
            raise PermanentError(f"{host} has no address", reason="dns_error")
        for text in addresses:
            address = ipaddress.ip_address(text.split("%", 1)[0])
            if not self.allows(address):
                raise BlockedAddressError(f"{host} resolves to non-public address {address}")
        return list(addresses)


class GuardedBackend(httpcore.SyncBackend):
    """httpcore's socket backend, connecting only to addresses the policy checked.

    :meth:`open_socket` is the single place a TCP connection to a web server starts; the
    tests subclass it to prove that a refused address is never dialled.
    """

    def __init__(self, policy: AddressPolicy, resolver: Resolver = system_resolver) -> None:
        self.policy = policy
        self.resolver = resolver

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        """Resolve ``host`` once, check every address, connect to the first that answers.

        The lookup counts against ``timeout`` too: a name server that never answers must
        not hold a fetch slot past the request's deadline.
        """
        addresses = self.policy.checked_addresses(host, port, partial(resolve_within, self.resolver, timeout))
        last_error: OSError | None = None
        for address in addresses:
            try:
                sock = self.open_socket(address, port, timeout, local_address)
            except TimeoutError as exc:
                raise httpcore.ConnectTimeout(f"connect to {host} ({address}) timed out") from exc
            except OSError as exc:
                last_error = exc
                continue
            for option in socket_options or ():
                sock.setsockopt(*option)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return SyncStream(sock)
        raise httpcore.ConnectError(f"cannot connect to {host}: {last_error}") from last_error

    def open_socket(
        self, address: str, port: int, timeout: float | None, local_address: str | None
    ) -> socket.socket:
        """A TCP connection to an already-checked ``address``."""
        source = None if local_address is None else (local_address, 0)
        return socket.create_connection((address, port), timeout, source_address=source)
