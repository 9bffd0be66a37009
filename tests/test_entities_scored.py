"""Beam-scored entities: a probability floor, best spans first, never overlapping; the shipped
German pipeline through the project's path."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from config import Settings
from tasks.entities import build_registry
from tasks.ner.extract import extract_entities, raw_mentions
from tasks.ner.models import BUNDLED_MODELS, ModelRegistry, weights_sha256
from tasks.ner.scored import confident_spans

GERMAN = "de_news_ner"


def test_spans_below_the_floor_are_dropped_and_overlaps_go_to_the_likelier() -> None:
    scores = {
        (0, 2, "PER"): 0.97,
        (1, 2, "PER"): 0.02,  # inside the first, less likely
        (4, 5, "LOC"): 0.91,
        (4, 6, "ORG"): 0.93,  # overlaps the LOC and is likelier: it wins
        (8, 9, "ORG"): 0.40,
    }
    assert confident_spans(scores, 0.9) == [(0, 2, "PER", 0.97), (4, 6, "ORG", 0.93)]
    assert confident_spans(scores, 0.95) == [(0, 2, "PER", 0.97)]
    assert confident_spans(scores, 0.3) == [(0, 2, "PER", 0.97), (4, 6, "ORG", 0.93), (8, 9, "ORG", 0.40)]
    assert confident_spans({}, 0.0) == []


@pytest.fixture(scope="module")
def german() -> ModelRegistry:
    """The default registry: the bundled German pipeline, pinned, with its default floor."""
    return build_registry(Settings(_env_file=None), learn_names=False)  # type: ignore[call-arg]


TEXT = (
    "Bundeskanzler Olaf Scholz hat am Dienstag in Berlin mit dem französischen Präsidenten "
    "Emmanuel Macron über die Lage in der Ukraine gesprochen.\n\n"
    "Die Europäische Union will die Hilfen aufstocken, sagte Scholz nach dem Treffen."
)


def test_the_bundled_german_pipeline_loads_pinned_with_its_floor(german: ModelRegistry) -> None:
    loaded = german.model("de")
    assert loaded is not None and loaded.name == GERMAN
    assert Path(loaded.nlp.path) == BUNDLED_MODELS / GERMAN
    assert loaded.min_score is not None and 0.5 <= loaded.min_score < 1.0
    assert loaded.nlp.pipe_names == ["tok2vec", "ner"]
    # The pin covers the NER and the tok2vec it listens to (`cat ner/model tok2vec/model | sha256sum`).
    files = (BUNDLED_MODELS / GERMAN / "ner" / "model", BUNDLED_MODELS / GERMAN / "tok2vec" / "model")
    assert weights_sha256(loaded.nlp) == hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()
    assert (BUNDLED_MODELS / GERMAN / "LICENSE-DATA.md").is_file()


def test_german_entities_come_from_the_model(german: ModelRegistry) -> None:
    entities = {e.text: e for e in extract_entities(TEXT, "de", german, 20_000)}
    assert entities["Olaf Scholz"].label == "PER"
    assert entities["Olaf Scholz"].count == 2  # "Scholz" later is the same person
    assert entities["Emmanuel Macron"].label == "PER"
    assert entities["Berlin"].label == "LOC" and entities["Berlin"].key == "geonames:2950159"
    assert entities["Olaf Scholz"].method == f"spacy:{GERMAN}"


def test_a_higher_floor_keeps_a_subset(german: ModelRegistry) -> None:
    loaded = german.model("de")
    assert loaded is not None
    counts = []
    for floor in (0.0, 0.5, 0.99):
        registry = ModelRegistry({"de": GERMAN}, min_scores={GERMAN: floor})
        registry._loaded["de"] = type(loaded)(loaded.nlp, GERMAN, floor)
        counts.append({(m.start, m.end, m.label) for m in raw_mentions([TEXT], ["de"], registry)[0]})
    # Spans are taken best first, so what a floor keeps is what a lower floor kept above it.
    assert counts[2] <= counts[1] <= counts[0]
    assert len(counts[0]) > len(counts[2])
