"""Stage 5, dedup: one story, one canonical record, across outlets and across workers.

Two levels, on the cleaned article text only (page chrome never makes two pages alike):

* URL level, after fetch: the final URL after redirects and the page's
  ``<link rel=canonical>`` are canonicalised and looked up in the "already seen" set
  (:mod:`stores.seen`); a page published under one of those names by an earlier batch
  inside the re-ingest window ends as ``seen``. (The enqueued URL itself was checked at
  intake, before any fetch.)
* Content level: ``content_hash`` is the sha256 of the normalised text (exact copies), and
  the MinHash signature (:mod:`tasks.minhash`) goes through one atomic check-and-insert in
  the near-duplicate index (:mod:`stores.dedup_index`). A copy gets ``duplicate_of`` (the
  id of its group's first member) and ``similarity``; the first member gets null for both.

What a duplicate does downstream is decided in :mod:`tasks.publish`: published with
``duplicate_of`` set (default) or dropped (``dedup_drop_duplicates``), counted under the
``duplicate`` outcome either way.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import redis

from config import Settings
from stores.dedup_index import IndexParams, NearDuplicateIndex
from stores.seen import SeenUrls
from tasks.errors import PermanentError, StopPipeline
from tasks.minhash import content_hash, normalize_text, signature
from tasks.record import ArticleRecord, Job
from tasks.urls import canonical_link, try_canonicalize
from worker.app import app
from worker.stage import StageTask, run_stage

STAGE = "dedup"

__all__ = ["DedupIndexes", "check_seen", "content_hash", "dedup_stage", "normalize_text", "url_identities"]


def index_params(settings: Settings) -> IndexParams:
    """The near-duplicate index parameters in force."""
    return IndexParams(
        window=settings.dedup_ttl,
        generations=settings.dedup_generations,
        buckets=settings.dedup_buckets,
        num_perm=settings.dedup_num_perm,
        bands=settings.dedup_bands,
        shingle_words=settings.dedup_shingle_words,
        threshold=settings.dedup_threshold,
    )


class DedupIndexes:
    """The near-duplicate index of each partition (see ``dedup_partition``), made on first use."""

    def __init__(
        self, client: redis.Redis, prefix: str, params: IndexParams, partition: str = "none"
    ) -> None:
        if partition not in ("none", "language"):
            raise ValueError(f"dedup_partition must be `none` or `language`, not {partition!r}")
        self._client = client
        self._prefix = prefix
        self._params = params
        self._by_language = partition == "language"
        self._indexes: dict[str, NearDuplicateIndex] = {}

    @classmethod
    def from_settings(cls, client: redis.Redis, settings: Settings) -> DedupIndexes:
        """The indexes these settings describe."""
        return cls(client, settings.key_prefix, index_params(settings), settings.dedup_partition)

    def for_record(self, record: ArticleRecord) -> NearDuplicateIndex:
        """The index the record's article is matched in."""
        name = (record.language or "und") if self._by_language else "all"
        index = self._indexes.get(name)
        if index is None:
            index = self._indexes[name] = NearDuplicateIndex(self._client, self._prefix, self._params, name)
        return index


def url_identities(record: ArticleRecord) -> list[str]:
    """Canonical forms of every URL the record's page is known by, without repeats."""
    names = (try_canonicalize(url) for url in (record.url, record.final_url, record.canonical_url))
    return list(dict.fromkeys(name for name in names if name))


def check_seen(job: Job, seen: SeenUrls) -> None:
    """``StopPipeline("seen")`` if an earlier batch published this page under another name."""
    names = url_identities(job.record)
    for name, mark in zip(names, seen.lookup(names), strict=True):
        if mark and mark.record_id != job.record.id and mark.batch != job.batch:
            raise StopPipeline("seen", f"{name} was published as {mark.record_id} by batch {mark.batch}")


def dedup_stage(job: Job, indexes: DedupIndexes, seen: SeenUrls | None, html: str | None) -> Job:
    """Set ``canonical_url``, ``content_hash``, ``duplicate_of`` and ``similarity``.

    ``html`` (the fetched page) is only read for its ``<link rel=canonical>``.
    """
    record = job.record
    if html is not None:
        record = record.model_copy(
            update={"canonical_url": canonical_link(html, record.final_url or record.url)}
        )
        job = job.model_copy(update={"record": record})
    if seen is not None:
        check_seen(job, seen)
    index = indexes.for_record(record)
    params = index.params
    match = index.check_and_insert(record.id, signature(record.text, params.num_perm, params.shingle_words))
    record = record.model_copy(
        update={
            "content_hash": content_hash(record.text),
            "duplicate_of": match.duplicate_of,
            "similarity": match.similarity,
        }
    )
    return job.model_copy(update={"record": record})


@lru_cache(maxsize=4)
def _indexes(redis_url: str, prefix: str, params: IndexParams, partition: str) -> DedupIndexes:
    from stores.redis_client import redis_client

    return DedupIndexes(redis_client(redis_url), prefix, params, partition)


@app.task(bind=True, base=StageTask, name="ingest.dedup")
def dedup(self: StageTask, job: dict[str, Any]) -> dict[str, Any]:
    """Celery wrapper of :func:`dedup_stage`."""

    def stage(current: Job) -> Job:
        from stores.redis_client import client_for

        settings = self.settings
        html = None
        if current.body_key:
            try:
                html = self.bodies.get(current.body_key)
            except PermanentError:  # expired: only the canonical link is lost
                html = None
        indexes = _indexes(
            settings.effective_redis_url,
            settings.key_prefix,
            index_params(settings),
            settings.dedup_partition,
        )
        seen = SeenUrls(client_for(settings), settings.key_prefix, settings.seen_ttl)
        return dedup_stage(current, indexes, seen, html)

    return run_stage(self, STAGE, job, stage)
