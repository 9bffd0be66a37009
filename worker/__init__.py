"""The worker side of news-ingest: the Celery app, the chain, the producer API and the CLI.

``from worker import enqueue`` is the scripting entry point. It is imported lazily because
the stage modules import :mod:`worker.app`, and the producer imports the stage modules.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from config import Settings
    from worker.intake import IntakeUrl
    from worker.producer import EnqueueResult


def enqueue(
    urls: Iterable[str | IntakeUrl], settings: Settings | None = None, batch: str | None = None
) -> EnqueueResult:
    """Send URLs down the pipeline as one batch (see :func:`worker.producer.enqueue`); an
    :class:`worker.intake.IntakeUrl` (``check_url(url, source=..., labels=...)``) carries its
    source, labels and discovery time onto its record."""
    from worker.producer import enqueue as _enqueue

    return _enqueue(urls, settings=settings, batch=batch)


__all__ = ["enqueue"]
