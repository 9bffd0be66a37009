"""The offline path: language, clean and entities on a page already in hand.

``ingest extract`` and the quality benchmarks run exactly the stage functions the Celery
tasks run, in the same order, so what they measure is what the workers produce.
"""

from __future__ import annotations

import gzip
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from config import Settings
from tasks.clean import clean_stage
from tasks.dedup import content_hash
from tasks.entities import ModelRegistry, entities_stage
from tasks.language import language_stage
from tasks.page_guard import PageBudget
from tasks.record import ArticleRecord, Job, record_id
from tasks.urls import canonicalize_url


def read_html_file(path: Path) -> str:
    """A local page (``.html`` or ``.html.gz``) as text."""
    from tasks.decoding import decode_html

    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    return decode_html(data)


def process_html(
    html: str,
    url: str,
    settings: Settings,
    registry: ModelRegistry | None,
) -> ArticleRecord:
    """Run the CPU stages on ``html`` as the workers do; raises the stages' errors."""
    try:
        identity = canonicalize_url(url)
    except Exception:
        identity = url
    job = Job(
        batch="offline",
        record=ArticleRecord(id=record_id(identity), url=url, final_url=url, fetched_at=datetime.now(UTC)),
    )
    budget = PageBudget.from_settings(settings)  # INGEST_HTML_* apply offline too
    steps: list[tuple[str, Callable[[Job], Job]]] = [
        ("language", lambda current: language_stage(current, html, settings.language_sample_chars, budget)),
        ("clean", lambda current: clean_stage(current, html, settings.language_sample_chars, budget)),
    ]
    if registry is not None:
        steps.append(
            ("entities", lambda current: entities_stage(current, registry, settings.entities_max_chars))
        )
    for name, step in steps:
        started = time.perf_counter()
        job = step(job)
        job = job.model_copy(update={"record": job.record.with_timing(name, time.perf_counter() - started)})
    return job.record.model_copy(update={"content_hash": content_hash(job.record.text)})
