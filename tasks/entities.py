"""Stage 4, entities: people, organisations, places and other names in the article text.

A spaCy pipeline per language (chosen by ``INGEST_SPACY_MODELS``) is loaded lazily, once per
worker process, with only what its NER component needs. A language whose pipeline is not
installed gets an empty list. Labels are mapped to PER, ORG, LOC and MISC; non-names
(dates, numbers) are dropped; mentions of one name are merged with a count.
"""

from __future__ import annotations

import threading
import unicodedata
from dataclasses import dataclass
from typing import Any

import structlog

from tasks.record import Entity, Job
from worker.app import app
from worker.stage import StageTask, run_stage

STAGE = "entities"
log = structlog.stdlib.get_logger("ingest.entities")

#: spaCy labels (OntoNotes and WikiNER schemes) to ours; anything else is not a name.
LABEL_MAP: dict[str, str] = {
    "PER": "PER",
    "PERSON": "PER",
    "ORG": "ORG",
    "LOC": "LOC",
    "GPE": "LOC",
    "FAC": "LOC",
    "MISC": "MISC",
    "NORP": "MISC",
    "EVENT": "MISC",
    "WORK_OF_ART": "MISC",
    "PRODUCT": "MISC",
    "LAW": "MISC",
    "LANGUAGE": "MISC",
}
_NOT_NER = (
    "tagger",
    "morphologizer",
    "parser",
    "attribute_ruler",
    "lemmatizer",
    "senter",
    "trainable_lemmatizer",
)
_QUOTES = "\"'«»“”„‘’‹›`"


@dataclass(frozen=True)
class Mention:
    """One entity mention found by a model."""

    text: str
    label: str
    start: int


class ModelRegistry:
    """spaCy pipelines by language, each loaded on first use and kept for the process."""

    def __init__(self, models: dict[str, str]) -> None:
        self._models = models
        self._loaded: dict[str, Any] = {}
        self._missing: set[str] = set()
        self._lock = threading.Lock()

    def get(self, language: str | None) -> tuple[Any, str] | None:
        """The pipeline for ``language`` and its name, or None if none is installed."""
        if not language or language not in self._models or language in self._missing:
            return None
        name = self._models[language]
        with self._lock:
            if language not in self._loaded:
                try:
                    self._loaded[language] = load_ner_pipeline(name)
                except OSError as exc:  # spaCy's "can't find model"
                    log.warning("entities.model_missing", language=language, model=name, error=str(exc)[:200])
                    self._missing.add(language)
                    return None
        return self._loaded[language], name


def load_ner_pipeline(name: str) -> Any:
    """A spaCy pipeline with only the NER component and what it listens to."""
    import spacy

    nlp = spacy.load(name, exclude=list(_NOT_NER))
    if "tok2vec" in nlp.pipe_names:
        listeners = getattr(nlp.get_pipe("tok2vec"), "listening_components", [])
        if "ner" not in listeners:
            nlp.remove_pipe("tok2vec")
    return nlp


def normalize_entity_text(text: str) -> str:
    """NFKC, single spaces, surrounding quotes and punctuation stripped."""
    text = " ".join(unicodedata.normalize("NFKC", text).split())
    return text.strip(_QUOTES + " .,;:!?()[]")


def merge_mentions(mentions: list[Mention], method: str) -> list[Entity]:
    """One :class:`Entity` per (name, label), counted, ordered by first appearance."""
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for mention in mentions:
        label = LABEL_MAP.get(mention.label)
        text = normalize_entity_text(mention.text)
        if label is None or len(text) < 2:
            continue
        key = (text.casefold(), label)
        if key in merged:
            merged[key]["count"] += 1
        else:
            merged[key] = {"text": text, "label": label, "count": 1, "first_offset": mention.start}
    entities = [Entity(method=method, **fields) for fields in merged.values()]
    return sorted(entities, key=lambda entity: entity.first_offset)


def extract_entities(
    text: str, language: str | None, registry: ModelRegistry, max_chars: int
) -> list[Entity]:
    """Entities of ``text`` with the pipeline for ``language``; [] when there is none."""
    found = registry.get(language)
    if found is None or not text:
        return []
    nlp, name = found
    doc = nlp(text[:max_chars])
    mentions = [Mention(ent.text, ent.label_, ent.start_char) for ent in doc.ents]
    return merge_mentions(mentions, f"spacy:{name}")


_registry: ModelRegistry | None = None


def registry_for(models: dict[str, str]) -> ModelRegistry:
    """The process-wide model registry."""
    global _registry
    if _registry is None:
        _registry = ModelRegistry(models)
    return _registry


def entities_stage(job: Job, registry: ModelRegistry, max_chars: int) -> Job:
    """Fill the record's entities from its cleaned text."""
    entities = extract_entities(job.record.text, job.record.language, registry, max_chars)
    return job.model_copy(update={"record": job.record.model_copy(update={"entities": entities})})


@app.task(bind=True, base=StageTask, name="ingest.entities")
def entities(self: StageTask, job: dict[str, Any]) -> dict[str, Any]:
    """Celery wrapper of :func:`entities_stage`."""

    def stage(current: Job) -> Job:
        registry = registry_for(self.settings.spacy_models)
        return entities_stage(current, registry, self.settings.entities_max_chars)

    return run_stage(self, STAGE, job, stage)
