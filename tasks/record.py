"""The typed records that travel through the pipeline.

``ArticleRecord`` is what downstream stores receive: one per article, versioned by
``schema_version`` so consumers can migrate. ``Job`` is the envelope a Celery message
carries between stages: the record plus what only the pipeline needs (the batch id and the
Redis key of the page body, which is stored once instead of riding in every message).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tasks.redact import redact_text, redact_url

SCHEMA_VERSION = 2

EntityLabel = Literal["PER", "ORG", "LOC", "MISC"]


class Entity(BaseModel):
    """A named entity of the article text, merged over its mentions."""

    model_config = ConfigDict(frozen=True)

    text: str = Field(description="Surface form of the entity (its longest mention).")
    label: EntityLabel = Field(description="PER, ORG, LOC or MISC.")
    count: int = Field(ge=1, description="Mentions in the text.")
    first_offset: int = Field(ge=0, description="Character offset of the first mention.")
    method: str = Field(
        description="What found it: `spacy:<pipeline>` for a model, `fallback:gazetteer`, "
        "`fallback:names` or `fallback:title` for a language without one, `rule:acronym`."
    )
    key: str | None = Field(
        default=None,
        description="Join key across articles and languages: `geonames:<id>` for a known place, "
        "else `<label>:<folded name>` (e.g. `per:serguei-lavrov`).",
    )


class ArticleRecord(BaseModel):
    """One normalized news article, as published to the stores."""

    model_config = ConfigDict(frozen=True)

    schema_version: int = SCHEMA_VERSION
    id: str = Field(description="Stable id: sha256 of the canonical URL, 32 hex characters.")
    url: str = Field(description="The URL as enqueued, without user info (credentials are never kept).")
    final_url: str | None = Field(default=None, description="URL after redirects.")
    canonical_url: str | None = Field(
        default=None, description="The page's <link rel=canonical>, absolute, null if none."
    )
    fetched_at: datetime | None = Field(default=None, description="When the page was fetched.")
    http_status: int | None = None
    content_type: str | None = None
    title: str | None = None
    authors: list[str] = Field(default_factory=list)
    published_at: str | None = Field(
        default=None, description="Publication date as ISO 8601, as precise as the page says."
    )
    modified_at: str | None = Field(
        default=None, description="Last modification date as ISO 8601, as precise as the page says."
    )
    description: str | None = None
    site_name: str | None = None
    top_image: str | None = Field(
        default=None, description="URL of the lead image (og:image, JSON-LD image)."
    )
    tags: list[str] = Field(
        default_factory=list, description="Keywords and tags the page gives (article:tag, JSON-LD keywords)."
    )
    section: str | None = Field(
        default=None, description="Section of the site (article:section, JSON-LD articleSection)."
    )
    paywalled: bool | None = Field(
        default=None,
        description="True when the page marks the article as not free (JSON-LD isAccessibleForFree: "
        "false) or its text ends with a notice that the article, or its rest, is for subscribers "
        "only (the notice itself is not in `text`); false when the page marks it free and shows no "
        "such notice; null when it says nothing.",
    )
    language: str | None = Field(default=None, description="ISO 639-1 code, null if unknown.")
    language_confidence: float | None = Field(
        default=None,
        description="Probability (0..1) that `language` is right, calibrated on the shared corpora "
        "(bench/language.py; cross-validated by site, expected calibration error 0.008): read from a "
        "table by the length of the text judged (under 25, 50 or 120 letters, or longer), how many of "
        "the three detectors (langdetect, pycld2, py3langid) put the language first, and whether the "
        "page's lang tag names it; at most 0.998. The text judged is the language stage's sample of the "
        "article (INGEST_LANGUAGE_SAMPLE_CHARS), or the extracted body when the clean stage's check "
        "disagrees. 0.3, a convention rather than a measurement, when the text has fewer than 3 letters "
        "and the page's tag alone gives the language; null when `language` is null.",
    )
    text: str = Field(default="", description="Article text, paragraphs separated by blank lines.")
    entities: list[Entity] = Field(default_factory=list)
    content_hash: str | None = Field(
        default=None, description="sha256 of the normalized text (exact-duplicate key)."
    )
    duplicate_of: str | None = Field(
        default=None,
        description="`id` of the first-seen member of this article's group of (near-)copies, "
        "null for the first. Every member of a group points at the same `id`.",
    )
    similarity: float | None = Field(
        default=None,
        description="For a copy: estimated Jaccard similarity (word 5-shingles, MinHash) to the "
        "closest earlier member of its group, 1.0 for an exact copy; null for the first.",
    )
    pipeline: dict[str, float] = Field(default_factory=dict, description="Seconds spent per stage.")
    source: str | None = Field(
        default=None,
        description="Name of the source the URL came from (the `source` of its intake stream entry, "
        "e.g. a feed or sitemap of the sources file), null when it was enqueued without one.",
    )
    labels: dict[str, str] = Field(
        default_factory=dict,
        description="The source's labels (string to string), carried from intake; empty when none.",
    )
    discovered_at: datetime | None = Field(
        default=None,
        description="When the URL was discovered (UTC): the entry's `discovered_at`, else the time it "
        "was added to the intake stream; null for a URL enqueued from a file or the Python API.",
    )

    @field_validator("discovered_at")
    @classmethod
    def _discovered_in_utc(cls, moment: datetime | None) -> datetime | None:
        """Naive means UTC; an offset is converted, so every record says it the same way."""
        if moment is None:
            return None
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)

    def with_timing(self, stage: str, seconds: float) -> ArticleRecord:
        """A copy with the stage's duration recorded."""
        return self.model_copy(update={"pipeline": {**self.pipeline, stage: round(seconds, 6)}})


def record_id(canonical_url: str) -> str:
    """The stable article id for a canonical URL."""
    return hashlib.sha256(canonical_url.encode("utf-8")).hexdigest()[:32]


class Job(BaseModel):
    """What one Celery message carries between two stages."""

    batch: str
    record: ArticleRecord
    body_key: str | None = Field(
        default=None, description="Redis key of the fetched page body (bytes, with a TTL)."
    )
    html_lang: str | None = Field(
        default=None, description="The page's declared language (<html lang>), for later stages."
    )


class DeadLetter(BaseModel):
    """A URL that could not be ingested, and why. Exactly one per failed URL."""

    model_config = ConfigDict(frozen=True)

    schema_version: int = SCHEMA_VERSION
    id: str | None = Field(description="Article id, null when the URL could not be parsed.")
    url: str
    batch: str
    stage: str = Field(description="Stage that failed: intake, fetch, language, clean, ...")
    reason: str = Field(description="Reason code from the closed list in tasks.errors.REASONS.")
    error: str = Field(description="Human-readable detail of the last error.")
    attempts: int = Field(ge=1, description="Tries of the failing stage, retries included.")
    failed_at: datetime
    store: str | None = Field(
        default=None,
        description="For a record that a store could not take (stage `deliver`): that store's name "
        "(`jsonl`, `postgres`, `redis_stream`, `webhook`). Null for a URL that failed in the pipeline.",
    )

    @field_validator("url")
    @classmethod
    def _no_password_in_url(cls, url: str) -> str:
        """A letter is logged, stored and shown: a password in its URL is masked (tasks.redact)."""
        return redact_url(url)

    @field_validator("error")
    @classmethod
    def _no_password_in_error(cls, error: str) -> str:
        """Error text often quotes the URL (``invalid URL 'https://u:p@h/'``): masked too."""
        return redact_text(error)


def json_schema() -> dict[str, object]:
    """The JSON Schema of the record, with the dead letter under ``$defs`` (``ingest schema``).

    Committed as ``schema/record.schema.json``; ``tests/test_schema.py`` keeps the two equal
    and validates what the pipeline emits against the committed file.
    """
    document: dict[str, object] = ArticleRecord.model_json_schema()
    defs = document.get("$defs")
    letter = DeadLetter.model_json_schema()
    document["$defs"] = {**(defs if isinstance(defs, dict) else {}), "DeadLetter": letter}
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return document
