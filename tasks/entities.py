"""Stage 4, entities: people, organisations, places and other names in the article text.

Languages with a spaCy pipeline (``INGEST_SPACY_MODELS``) use it; every other language gets
the fallback (gazetteer places, names learned from other articles, a title rule), marked as
such in ``method``. Either way the mentions are normalised (PER/ORG/LOC/MISC, articles and
elisions stripped, NFKC) and merged (one entity per thing named, with a count, the offset of
its first mention and a join ``key``) by :mod:`tasks.ner`. Only the cleaned text is read,
never the page, so nothing comes from page chrome; the text sent to the model is capped
at ``INGEST_ENTITIES_MAX_CHARS``.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from typing import Any

import structlog

from config import Settings, get_settings
from tasks.ner.extract import extract_entities
from tasks.ner.fallback import Fallback
from tasks.ner.gazetteer import Gazetteer
from tasks.ner.models import ModelRegistry, load_ner_pipeline
from tasks.ner.normalise import LABEL_MAP, Mention
from tasks.record import Job
from worker.app import app
from worker.stage import StageTask, run_stage

__all__ = [
    "LABEL_MAP",
    "Mention",
    "ModelRegistry",
    "build_registry",
    "entities_stage",
    "extract_entities",
    "load_ner_pipeline",
    "registry_for",
]

STAGE = "entities"
log = structlog.stdlib.get_logger("ingest.entities")


def build_registry(
    settings: Settings, models: Mapping[str, str | Sequence[str]] | None = None, learn_names: bool = True
) -> ModelRegistry:
    """A registry for these settings: pinned pipelines, gazetteer, fallback, known names.

    ``learn_names=False`` leaves Redis out (no names recorded or matched, no pipeline loads
    announced on :class:`stores.model_loads.ModelLoadBoard`).
    """
    gazetteer = Gazetteer(settings.entities_gazetteer_min_population)
    names = None
    if learn_names:
        from stores.names import NameStore
        from stores.redis_client import client_for

        names = NameStore(
            client_for(settings),
            settings.key_prefix,
            min_articles=settings.entities_names_min_articles,
            max_names=settings.entities_names_max,
            refresh_seconds=settings.entities_names_refresh,
        )
    fallback = None
    if settings.entities_fallback:
        fallback = Fallback(gazetteer, names.table if names is not None else None)
    registry = ModelRegistry(
        settings.spacy_models if models is None else models,
        digests=settings.spacy_model_sha256,
        fallback=fallback,
        names=names,
        gazetteer=gazetteer,
        models_dir=settings.models_dir,
        fallback_beside_models=settings.entities_fallback_beside_models if fallback else (),
        min_scores=settings.spacy_min_score,
    )
    if names is not None:  # with Redis: `ingest run` shows the pipelines being loaded
        from stores.model_loads import ModelLoadBoard

        registry.watcher = ModelLoadBoard(names.client, settings.key_prefix)
    return registry


_registry: ModelRegistry | None = None
_registry_lock = threading.Lock()


def registry_for(
    models: Mapping[str, str | Sequence[str]], settings: Settings | None = None
) -> ModelRegistry:
    """The process-wide model registry (built on first call; later calls share it)."""
    global _registry
    with _registry_lock:
        if _registry is None:
            _registry = build_registry(settings or get_settings(), models)
    return _registry


def entities_stage(job: Job, registry: ModelRegistry, max_chars: int) -> Job:
    """Fill the record's entities from its cleaned text; teach the names store what a model found."""
    entities = extract_entities(job.record.text, job.record.language, registry, max_chars)
    if registry.names is not None and registry.model(job.record.language) is not None:
        registry.names.record(entities)
    return job.model_copy(update={"record": job.record.model_copy(update={"entities": entities})})


@app.task(bind=True, base=StageTask, name="ingest.entities")
def entities(self: StageTask, job: dict[str, Any]) -> dict[str, Any]:
    """Celery wrapper of :func:`entities_stage`."""

    def stage(current: Job) -> Job:
        registry = registry_for(self.settings.spacy_models, self.settings)
        return entities_stage(current, registry, self.settings.entities_max_chars)

    return run_stage(self, STAGE, job, stage)
