"""The last line of "nothing stuck": URLs whose message the broker lost are sent again.

Acknowledgements, visibility timeouts and requeues cover a message a worker dropped. What
they cannot cover is a message the broker itself lost: a Redis without AOF that restarted,
or a worker killed in the instant between popping a message and recording it as unacked
(kombu's Redis transport does those in two commands). The batch ledger still knows every
URL of the batch (``open_batch`` keeps them), so :func:`reconcile` looks at the recent
unfinished batches: one in which no URL has moved for ``stuck_after`` seconds gets its URLs
without an outcome sent to the fetch stage again, with the intake fields kept for them
(``source``, ``labels``, ``discovered_at``). Every step is idempotent per URL (the
outcome is claimed once, the record committed once), so a URL that was merely slow ends
once all the same. ``ingest deliver`` runs it every 30 s; one process per batch per round
does the work (a Redis ``SET NX`` turn).
"""

from __future__ import annotations

import time

import structlog

from config import Settings
from stores.ledger import Ledger
from tasks.record import ArticleRecord, Job
from worker.pipeline import send_fetch

log = structlog.stdlib.get_logger("ingest.reconcile")

#: Batches looked at per round (most recent first).
RECENT_BATCHES = 200


def reconcile(settings: Settings, ledger: Ledger, now: float | None = None) -> int:
    """Send again the URLs without outcome of every idle unfinished batch; how many were sent."""
    now = now or time.time()
    sent = 0
    for batch in ledger.recent_batches(limit=RECENT_BATCHES):
        status = ledger.status(batch)
        if status is None or status.done or now - status.touched < settings.stuck_after:
            continue
        if not ledger.take_turn(batch, "reconcile", settings.stuck_after):
            continue
        missing = ledger.without_outcome(batch)
        fields = ledger.record_fields(batch, missing)  # source, labels, discovered_at
        for record_id, url in missing.items():
            record = ArticleRecord(id=record_id, url=url, **fields.get(record_id, {}))
            send_fetch([Job(batch=batch, record=record)], settings)
        if missing:
            ledger.resent(batch, len(missing))
            idle = round(now - status.touched)
            log.warning("reconcile.resent", batch=batch, urls=len(missing), idle_s=idle)
            sent += len(missing)
    return sent
