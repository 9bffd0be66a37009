"""What ``ingest status`` shows of a batch: the ledger's counts, read once (:class:`BatchStatus`).

Kept apart from :mod:`stores.ledger`, which writes them; both names are importable from there.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

#: How a URL can end. ``published``: a record was written; ``duplicate``: a record was
#: written with ``duplicate_of`` set (or dropped, if so configured); ``unchanged``: a
#: conditional re-fetch answered 304; ``seen``: already ingested inside the re-ingest window;
#: ``dead``: a dead letter was written.
OUTCOMES = ("published", "duplicate", "unchanged", "seen", "dead")


@dataclass
class BatchStatus:
    """Counts of one batch: totals, per outcome, per stage, per dead-letter reason."""

    batch: str
    total: int
    created_at: float
    outcomes: dict[str, int] = field(default_factory=dict)
    stages: dict[str, int] = field(default_factory=dict)
    retries: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)
    touched: float = 0.0
    """When a URL of the batch last moved (a stage done, a retry, an outcome), unix seconds."""
    resent: int = 0
    """URLs the reconciler sent again because their message was lost."""
    committed: int = 0
    """Outbox entries of the batch: its records and dead letters, each delivered to every store."""
    delivered: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)
    """Per store: entries it could not take, kept as dead letters naming it."""
    stage_seconds: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per stage: ``p50`` and ``p95`` seconds over its last URLs (:data:`stores.ledger.STAGE_SAMPLES`),
    and ``samples``."""

    def undelivered(self, store: str) -> int:
        """Entries of the batch that ``store`` has neither written nor given up on yet."""
        return max(self.committed - self.delivered.get(store, 0) - self.failed.get(store, 0), 0)

    def delivered_to(self, stores: list[str]) -> bool:
        """True when the batch is done and every entry reached (or failed for good at) each store."""
        return self.done and all(self.undelivered(store) == 0 for store in stores)

    @property
    def accounted(self) -> int:
        """URLs that reached an outcome."""
        return sum(self.outcomes.values())

    @property
    def done(self) -> bool:
        """True when every URL of the batch has its outcome."""
        return self.accounted >= self.total

    def seconds(self, now: float | None = None) -> float:
        """From enqueue to the last outcome once done (``touched``); to now while running."""
        end = self.touched if self.done else (now or time.time())
        return max(end - self.created_at, 0.0)

    def as_dict(self, stores: list[str] | None = None) -> dict[str, Any]:
        """JSON-ready form, as ``ingest status --json`` prints it (``stores``: the configured ones).

        ``urls_per_second``: URLs that reached their outcome over ``seconds`` (so far, while running).
        """
        seconds = self.seconds()
        return {
            "batch": self.batch,
            "total": self.total,
            "accounted": self.accounted,
            "pending": max(self.total - self.accounted, 0),
            "done": self.done,
            "created_at": self.created_at,
            "outcomes": {name: self.outcomes.get(name, 0) for name in OUTCOMES},
            "stages": self.stages,
            "retries": self.retries,
            "dead_letter_reasons": self.reasons,
            "committed": self.committed,
            "resent": self.resent,
            "touched": self.touched,
            "seconds": round(seconds, 3),
            "urls_per_second": round(self.accounted / seconds, 2) if seconds > 0 else None,
            "stage_seconds": self.stage_seconds,
            "delivery": {
                store: {
                    "delivered": self.delivered.get(store, 0),
                    "failed": self.failed.get(store, 0),
                    "pending": self.undelivered(store),
                }
                for store in dict.fromkeys([*(stores or []), *sorted({*self.delivered, *self.failed})])
            },
        }


def percentile(ordered: list[float], fraction: float) -> float:
    """The nearest-rank percentile of sorted values: a duration one of the URLs really took."""
    rank = max(math.ceil(fraction * len(ordered)), 1)
    return round(ordered[rank - 1], 6)
