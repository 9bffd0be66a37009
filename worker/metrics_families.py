"""The metric families of news-ingest: names, types, help and labels, in one table.

:mod:`worker.metrics` creates the recorded ones, :mod:`worker.metrics_collectors` produces the
scraped ones, and the tests check the Grafana dashboard's queries against this table (and
against what live processes serve).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Family:
    """One metric family as Prometheus shows it (counters with their ``_total``)."""

    name: str
    kind: Literal["counter", "gauge", "histogram"]
    help: str
    labels: tuple[str, ...] = ()


#: What the workers record (multiprocess values).
RECORDED = (
    Family("ingest_stage_duration_seconds", "histogram", "Seconds one attempt of a stage took.", ("stage",)),
    Family(
        "ingest_outcomes_total",
        "counter",
        "URLs ended per stage and outcome (published, duplicate, unchanged, seen, dead; reason: the "
        "dead-letter reason), and attempts sent round again (retried, deferred; reason: why).",
        ("stage", "outcome", "reason"),
    ),
    Family(
        "ingest_fetch_responses_total",
        "counter",
        "HTTP responses to page requests (redirect hops included), by status class.",
        ("status_class",),
    ),
    Family("ingest_records_total", "counter", "Records made final (published or duplicate)."),
    Family(
        "ingest_records_with_field_total",
        "counter",
        "Records made final with the field filled (title, date, authors, entities).",
        ("field",),
    ),
    Family("ingest_duplicates_total", "counter", "Records made final as copies of an earlier article."),
    Family(
        "ingest_deliveries_total",
        "counter",
        "Outbox entries per store: stored, failed (dead letter naming the store) or retried.",
        ("store", "result"),
    ),
)
#: What a scrape reads from the broker and the outbox (:mod:`worker.metrics_collectors`).
SCRAPED = (
    Family("ingest_queue_messages", "gauge", "Messages waiting in a Celery queue.", ("queue",)),
    Family(
        "ingest_delivery_lag_messages",
        "gauge",
        "Outbox entries the store's consumer group has not acknowledged (not yet read, or read and pending).",
        ("store",),
    ),
    Family(
        "ingest_delivery_lag_seconds",
        "gauge",
        "Age of the oldest outbox entry the store has not acknowledged (0 when it has them all).",
        ("store",),
    ),
    Family(
        "ingest_scrape_errors_total",
        "counter",
        "Scrapes of this process that could not read a source (broker, outbox).",
        ("source",),
    ),
)
FAMILIES = {family.name: family for family in (*RECORDED, *SCRAPED)}
