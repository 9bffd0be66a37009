"""Kombu's Redis transport, with one redis-py client per channel instead of one per command.

Kombu's Redis channel builds a new ``redis.Redis`` object for every synchronous broker
operation (each publish, each ack, each delivery's unacked bookkeeping, each event flush).
The connections come from a shared pool, so nothing is reconnected, but since redis-py 5 a
client object copies its whole table of response callbacks when it is built. In a fetch
worker that table copying was 14% of the process's CPU (py-spy ``--gil`` on
``bench/fetch.py``): more than the HTTP client.

The channel here keeps one client for as long as its connection pool lives. A ``redis.Redis``
is safe to share between threads (each command borrows a pooled connection; pipelines are
separate objects), and the client is dropped with the pool, so a fork or a reconnect that
replaces the pool gets a fresh client too.

The transport is registered under the scheme ``redis`` (and ``rediss``), so every broker URL
the project uses, including the embedded ``redis+socket://``, goes through it; importing
:mod:`worker.app` is what registers it.
"""

from __future__ import annotations

from typing import Any

import redis
from kombu.transport import TRANSPORT_ALIASES
from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):
    """A Redis channel that reuses its synchronous client."""

    _sync_client: redis.Redis | None = None
    _sync_client_pool: Any = None

    def _create_client(self, asynchronous: bool = False) -> redis.Redis:
        if asynchronous:
            return super()._create_client(asynchronous=True)
        try:
            pool = self.pool
        except AttributeError as exc:
            # The connection was closed under the channel (kombu sets its ``client`` to None)
            # while the consumer, after losing Redis, closes the channel and restores the
            # unacknowledged messages. Building a pool then fails on ``None.hostname``, an
            # error Celery does not expect there: it stopped the whole worker ("Unrecoverable
            # error"). As a connection error it is ignored, the consumer reconnects, and the
            # messages come back after the visibility timeout.
            raise redis.ConnectionError("the broker connection was closed under the channel") from exc
        client = self._sync_client
        if client is None or self._sync_client_pool is not pool:
            client = super()._create_client(asynchronous=False)
            self._sync_client, self._sync_client_pool = client, pool
        return client


class Transport(kombu_redis.Transport):
    """Kombu's Redis transport with :class:`Channel`."""

    Channel = Channel


def register() -> None:
    """Route ``redis://``, ``rediss://`` and ``redis+socket://`` broker URLs to :class:`Transport`."""
    for scheme in ("redis", "rediss"):
        TRANSPORT_ALIASES[scheme] = f"{__name__}:Transport"
