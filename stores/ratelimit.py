"""A per-host request schedule in Redis, shared by every fetch worker process.

Each host has one key holding the earliest time its next request may start (Redis clock, so
the workers' clocks do not matter). :meth:`HostRateLimiter.reserve` books the next free slot
atomically (a Lua script) and says how long until it; the caller fetches at once when the
wait is zero and otherwise re-schedules the URL for that moment instead of sleeping in a
worker slot. Slots further away than ``horizon`` are not booked, so a host with a backlog of
thousands of URLs does not fill the schedule hours ahead: those URLs come back later and ask
again. Two, ten or fifty processes share the key, so together they keep the pace.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

_RESERVE = """
-- KEYS[1]: the host's next-free-slot key
-- ARGV: interval seconds, horizon seconds
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local interval = tonumber(ARGV[1])
local horizon = tonumber(ARGV[2])
local nxt = tonumber(redis.call('GET', KEYS[1]) or '0')
local slot = math.max(nxt, now)
local wait = slot - now
if wait > horizon then
  return {0, tostring(wait)}
end
local free_at = slot + interval
redis.call('SET', KEYS[1], string.format('%.6f', free_at), 'PX', math.ceil((free_at - now) * 1000) + 1000)
return {1, tostring(wait)}
"""

_PUSH_BACK = """
-- KEYS[1]: the host's next-free-slot key; ARGV[1]: seconds from now
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local free_at = now + tonumber(ARGV[1])
local nxt = tonumber(redis.call('GET', KEYS[1]) or '0')
if free_at > nxt then
  redis.call('SET', KEYS[1], string.format('%.6f', free_at), 'PX', math.ceil((free_at - now) * 1000) + 1000)
end
return 1
"""


@dataclass(frozen=True)
class Reservation:
    """The answer of :meth:`HostRateLimiter.reserve`.

    ``booked``: a slot is ours, starting in ``wait`` seconds (0: go now).
    Not booked: the schedule is full for longer than the horizon; ask again in ``wait``.
    """

    booked: bool
    wait: float


class HostRateLimiter:
    """Request slots per host under ``<prefix>:rate:<host>``."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self._client = client
        self._prefix = prefix
        self._reserve = client.register_script(_RESERVE)
        self._push_back = client.register_script(_PUSH_BACK)

    def _key(self, host: str) -> str:
        return f"{self._prefix}:rate:{host.lower()}"

    def reserve(self, host: str, interval: float, horizon: float) -> Reservation:
        """Book the next slot of ``host`` if it starts within ``horizon`` seconds.

        ``interval`` is the spacing this request imposes on the next one (1 / rate, or the
        site's Crawl-delay when larger).
        """
        booked, wait = self._reserve(keys=[self._key(host)], args=[max(interval, 0.0), max(horizon, 0.0)])
        return Reservation(booked=bool(int(booked)), wait=max(float(wait), 0.0))

    def push_back(self, host: str, seconds: float) -> None:
        """No request to ``host`` for ``seconds`` from any worker (the site said
        ``Retry-After``); slots already booked are kept."""
        self._push_back(keys=[self._key(host)], args=[max(seconds, 0.0)])
