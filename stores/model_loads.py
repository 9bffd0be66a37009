"""Which spaCy pipelines the CPU workers are loading right now, so ``ingest run`` can say so.

A pipeline not preloaded (``INGEST_PRELOAD_MODELS``) loads inside the first task that needs
it, for seconds during which the progress bar would otherwise stand still. The registry
(:class:`tasks.ner.models.ModelRegistry`) tells this board when a load starts and ends.

Layout: one hash ``<prefix>:models:loading``, a field ``<language>\\t<host>-<pid>`` per load
in progress whose value is the Unix time it began; the field is deleted when the load ends.
The hash expires :data:`STALE_AFTER` seconds after its last load began, and readers ignore
older fields, so a process killed while loading leaves nothing behind for long. Redis errors
never fail a load: they are logged and skipped.
"""

from __future__ import annotations

import os
import socket
import time

import redis
import structlog

log = structlog.stdlib.get_logger("ingest.entities")

#: Seconds after which a load still listed is taken to be a dead process's.
STALE_AFTER = 600


class ModelLoadBoard:
    """Pipelines being loaded now, by language, across the workers of one deployment."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        self.client = client
        self.key = f"{prefix}:models:loading"

    def _field(self, language: str) -> str:
        return f"{language}\t{socket.gethostname()}-{os.getpid()}"

    def loading(self, language: str, model: str) -> None:
        """This process starts loading ``language``'s pipeline."""
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.hset(self.key, self._field(language), repr(time.time()))
            pipe.expire(self.key, STALE_AFTER)
            pipe.execute()
        except redis.RedisError as exc:
            log.debug("ner.load_board_failed", language=language, model=model, error=str(exc))

    def loaded(self, language: str, model: str, seconds: float, ok: bool) -> None:
        """This process is done loading ``language``'s pipeline (``ok`` or not)."""
        try:
            self.client.hdel(self.key, self._field(language))
        except redis.RedisError as exc:
            log.debug("ner.load_board_failed", language=language, model=model, error=str(exc))

    def current(self, now: float | None = None) -> dict[str, float]:
        """Language -> seconds its longest-running load in progress has taken so far."""
        now = time.time() if now is None else now
        loads: dict[str, float] = {}
        for field, value in self.client.hgetall(self.key).items():
            language = (field.decode() if isinstance(field, bytes) else str(field)).split("\t", 1)[0]
            try:
                elapsed = now - float(value)
            except ValueError:
                continue
            if 0 <= elapsed < STALE_AFTER:
                loads[language] = max(elapsed, loads.get(language, 0.0))
        return loads
