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
    Family(
        "ingest_intake_entries_total",
        "counter",
        "Intake stream entries the bridge (ingest intake) handled: enqueued (sent to fetch), seen, bad_url "
        "(dead letter), repeated (URL already in its batch), resent (a dead bridge's, sent again), "
        "done_before (enqueued by an earlier take, acknowledged only).",
        ("result",),
    ),
)
#: Discovery's delay, recorded where a record is stored (every process creates it, at 0).
DISCOVERY_DELAY = Family(
    "ingest_discovery_to_stored_seconds",
    "histogram",
    "Seconds from a URL's discovery in a feed or sitemap (its record's discovered_at) to its record "
    "being stored: made final in the outbox (each store's own lag: ingest_delivery_lag_seconds).",
)
#: What ``ingest watch`` records; ``source`` is a name of its sources file (``other`` past
#: them), so the file bounds the label.
WATCHED = (
    Family(
        "ingest_discovered_urls_total",
        "counter",
        "New URLs a poll of a source sent to the intake stream (not seen before).",
        ("source",),
    ),
    Family(
        "ingest_discovery_polls_total",
        "counter",
        "Polls of a source (its feeds and sitemaps read once).",
        ("source",),
    ),
    Family(
        "ingest_discovery_errors_total",
        "counter",
        "Feeds and sitemaps of a source that could not be read (or only in part), by reason.",
        ("source", "reason"),
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
FAMILIES = {family.name: family for family in (*RECORDED, DISCOVERY_DELAY, *WATCHED, *SCRAPED)}
