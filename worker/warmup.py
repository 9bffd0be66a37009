"""Load what the CPU stages need before the worker forks its pool.

Language detectors, spaCy pipelines and the gazetteer take seconds to load (tens of seconds
on a busy machine). Loaded lazily, that cost lands inside the first tasks of every pool
child, under their time limits, once per child. Loaded here, in the prefork parent, it is
paid once per worker and the children share the pages copy-on-write.
"""

from __future__ import annotations

import time

import structlog

from config import Settings

log = structlog.stdlib.get_logger("ingest.warmup")

#: A sentence per language: configured languages load their pipeline, others the fallback.
SAMPLES = {
    "fr": "Le président Emmanuel Macron a reçu mercredi à Paris le chancelier Olaf Scholz.",
    "en": "President Joe Biden met the German chancellor Olaf Scholz in Washington on Wednesday.",
    "de": "Bundeskanzler Olaf Scholz hat am Mittwoch in Berlin den Präsidenten Emmanuel Macron empfangen.",
}


def warm_up(settings: Settings) -> float:
    """Load the detectors, pipelines and gazetteer of the CPU stages; the seconds it took."""
    from tasks.entities import registry_for
    from tasks.langid import detect_language
    from tasks.ner.extract import extract_entities

    started = time.perf_counter()
    for text in SAMPLES.values():
        detect_language(text)
    registry = registry_for(settings.spacy_models, settings)
    for language in registry.languages:
        registry.model(language)
    for language, text in SAMPLES.items():
        extract_entities(text, language, registry, settings.entities_max_chars)
    seconds = time.perf_counter() - started
    log.info("worker.warmed_up", seconds=round(seconds, 2), pipelines=registry.languages)
    return seconds
