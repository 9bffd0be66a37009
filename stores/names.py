"""Names this deployment's models recognised with high confidence, kept in Redis.

The fallback for languages without a model (:mod:`tasks.ner.fallback`) matches these names:
a person or organisation a model found in French or English articles is found again in a
German or Spanish one ("Wladimir Putin" aside, "Emmanuel Macron" is spelt the same
everywhere). A name counts as high-confidence only when it is a multi-word PER or ORG that
a model found in at least ``min_articles`` distinct articles, under the same label most
of the time; a one-article mistake never spreads.

Layout: one sorted set ``<prefix>:names`` whose members are ``LABEL<TAB>name`` and whose
scores count the articles that named it (one increment per article). It is trimmed to the
``max_names`` best-supported members so it cannot grow without bound. Redis errors never
fail a stage: the names are an optimisation, so they are logged and skipped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import cast

import redis
import structlog

from tasks.ner.normalise import fold
from tasks.record import Entity

log = structlog.stdlib.get_logger("ingest.entities")

#: Labels whose names are learned (places come from the gazetteer instead).
LEARNED_LABELS = ("PER", "ORG")


def is_confident(entity: Entity) -> bool:
    """Whether a model-found entity may teach the fallback: a multi-word PER or ORG name."""
    words = entity.text.split()
    return (
        entity.method.startswith("spacy:")
        and entity.label in LEARNED_LABELS
        and 2 <= len(words) <= 6
        and all(word[:1].isupper() or len(word) <= 3 for word in words)
        and words[-1][:1].isupper()
        and not entity.text.isupper()
    )


class NameStore:
    """The known-names table: recorded by the entity stage, read by the fallback."""

    def __init__(
        self,
        client: redis.Redis,
        prefix: str,
        min_articles: int = 3,
        max_names: int = 50_000,
        refresh_seconds: float = 300.0,
    ) -> None:
        self.client = client
        self.key = f"{prefix}:names"
        self.min_articles = min_articles
        self.max_names = max_names
        self.refresh_seconds = refresh_seconds
        self._table: dict[str, tuple[str, str]] = {}
        self._loaded_at = float("-inf")
        self._lock = threading.Lock()

    def record(self, entities: Iterable[Entity]) -> int:
        """Count one article's confident names; returns how many were counted."""
        members = {f"{entity.label}\t{entity.text}" for entity in entities if is_confident(entity)}
        if not members:
            return 0
        try:
            pipe = self.client.pipeline(transaction=False)
            for member in members:
                pipe.zincrby(self.key, 1, member)
            pipe.zcard(self.key)
            size = pipe.execute()[-1]
            if size > 2 * self.max_names:
                self.client.zremrangebyrank(self.key, 0, size - self.max_names - 1)
        except redis.RedisError as exc:
            log.warning("entities.names_unavailable", error=str(exc)[:200])
            return 0
        return len(members)

    def table(self) -> dict[str, tuple[str, str]]:
        """Folded name -> (name, label) of the names seen in ``min_articles`` articles or more.

        Cached for ``refresh_seconds``; on a Redis error the last table is kept.
        """
        now = time.monotonic()
        if now - self._loaded_at < self.refresh_seconds:
            return self._table
        with self._lock:
            if now - self._loaded_at >= self.refresh_seconds:
                try:
                    # withscores=True: (member, score) pairs
                    rows = cast(
                        "list[tuple[bytes | str, float]]",
                        self.client.zrangebyscore(self.key, self.min_articles, "+inf", withscores=True),
                    )
                    self._table = build_table(rows)
                except redis.RedisError as exc:
                    log.warning("entities.names_unavailable", error=str(exc)[:200])
                self._loaded_at = now
        return self._table


def build_table(rows: Iterable[tuple[bytes | str, float]]) -> dict[str, tuple[str, str]]:
    """The lookup table from ``(member, score)`` rows; a name's best-supported label wins."""
    best: dict[str, tuple[float, str, str]] = {}
    for member, score in rows:
        text = member.decode("utf-8") if isinstance(member, bytes) else member
        label, _, name = text.partition("\t")
        folded = fold(name)
        if folded and (folded not in best or best[folded][0] < score):
            best[folded] = (score, name, label)
    return {folded: (name, label) for folded, (_, name, label) in best.items()}
