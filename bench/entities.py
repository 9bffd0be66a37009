"""Entity quality, cost and the seed story, measured on ../shared.

Sections (each prints a table; pick with ``--only``):

* ``quality``: precision / recall / F1 per label and overall (PER+ORG+LOC, micro-averaged,
  exact span and label; MISC reported apart, as ``../shared/ner/README.md`` asks) on the
  WikiNEuRal test splits: each configured model on its language, "raw" (the model's spans
  with only the label mapping) and "ours" (after normalisation and merging), and the
  fallback alone on de, es, it (and fr, en for reference).
* ``seed``: the Le Soleil AFP story through the real offline path (page text -> HTML ->
  language, clean, entities): expected entities found with the right label, and entities
  that come from the page chrome.
* ``speed``: words/s per core and RSS of each model (NER only, paragraphs batched), each
  in a fresh process; and the whole CPU path (``worker.offline.process_html``) on the corpus
  pages with and without entities, one process; and what ``--cap`` costs in entities.

Run: ``.venv/bin/python bench/entities.py [--only quality,seed,speed] [--limit N]``
(``--only throughput`` runs the whole-path part of ``speed`` alone, ``--only rss`` the RSS
of a process that ran the path on every corpus page, with and without entities).
Timings are wall-clock on one process; the machine may be shared, so check ``uptime``.
The fallback is measured alone: gazetteer, title rule and acronym rule, without known
names (a deployment's Redis table of names its models found is empty here).
"""

from __future__ import annotations

import argparse
import html as html_lib
import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ner_sets import MAIN, NER, SETS, SHARED, Score, Span, load_set  # noqa: E402
from config import Settings  # noqa: E402
from tasks.entities import build_registry  # noqa: E402
from tasks.ner.extract import document_mentions, raw_mentions  # noqa: E402
from tasks.ner.merge import resolve  # noqa: E402
from tasks.ner.models import ModelRegistry, pipeline_names  # noqa: E402
from tasks.ner.normalise import LABEL_MAP, Mention, normalise_mentions  # noqa: E402

CORPUS = SHARED / "corpus" / "news"
SEED = SHARED / "examples"


def spans_of(mentions: list[Mention]) -> set[Span]:
    return {(m.start, m.end, m.label) for m in mentions if m.label in LABEL_MAP.values()}


def print_scores(set_label: str, title: str, score: Score) -> None:
    row = [set_label, title]
    for labels in (("PER",), ("ORG",), ("LOC",), MAIN, ("MISC",)):
        precision, recall, f1, _ = score.prf(labels)
        row.append(f"{precision:.3f}/{recall:.3f}/{f1:.3f}")
    print(f"| {' | '.join(row)} |", flush=True)


def quality(args: argparse.Namespace, registry: ModelRegistry) -> None:
    print("\n## Exact span match: P/R/F1 per label; overall = PER+ORG+LOC micro")
    print(
        "raw = the model's spans, labels mapped; ours = normalised and merged (the model alone); "
        "plus fallback = ours with the fallback's matches that overlap no model entity (what "
        "INGEST_ENTITIES_FALLBACK_BESIDE_MODELS turns on); fallback alone = a language without a model"
    )
    print("| set | run | PER | ORG | LOC | overall | MISC |")
    print("|---|---|---|---|---|---|---|")
    fallback_only = ModelRegistry({}, fallback=registry.fallback, gazetteer=registry.gazetteer)
    for set_name in args.sets:
        language = set_name.split(":")[0]
        try:
            sentences = load_set(set_name, args.limit)
        except FileNotFoundError as exc:
            print(f"| {set_name} | not found: {exc.filename} |")
            continue
        texts = [text for text, _ in sentences]
        languages: list[str | None] = [language] * len(texts)
        label = f"{set_name} ({len(texts)} sent.)"
        model = registry.model(language)
        if model is not None:
            started = time.process_time()
            found = raw_mentions(texts, languages, _alone(registry))
            elapsed = time.process_time() - started
            raw, ours = Score(), Score()
            for (text, gold), mentions in zip(sentences, found, strict=True):
                mapped = [
                    Mention(m.text, LABEL_MAP[m.label], m.start, m.end, m.method)
                    for m in mentions
                    if m.label in LABEL_MAP
                ]
                raw.add(gold, spans_of(mapped))
                ours.add(
                    gold,
                    spans_of(resolve(text, normalise_mentions(text, mentions, language), registry.gazetteer)),
                )
            words = sum(len(text.split()) for text in texts)
            print_scores(label, f"{model.name} raw ({words / elapsed:,.0f} w/s)", raw)
            print_scores(label, f"{model.name} ours", ours)
            combined = Score()
            for (_, gold), mentions in zip(
                sentences, document_mentions(texts, languages, _beside(registry), 10**9), strict=True
            ):
                combined.add(gold, spans_of(mentions))
            print_scores(label, f"{model.name} plus fallback", combined)
        if language in args.fallback_languages or model is None:
            score = Score()
            for (_, gold), mentions in zip(
                sentences, document_mentions(texts, languages, fallback_only, 10**9), strict=True
            ):
                score.add(gold, spans_of(mentions))
            print_scores(label, "fallback alone", score)
            if args.show_errors:
                _show_fallback_errors(sentences, texts, languages, fallback_only)


def _alone(registry: ModelRegistry) -> ModelRegistry:
    """``registry``'s loaded models without the fallback beside them."""
    return _variant(registry, ())


def _beside(registry: ModelRegistry) -> ModelRegistry:
    """``registry``'s loaded models with the fallback completing every language."""
    return _variant(registry, ("*",))


def _variant(registry: ModelRegistry, beside: tuple[str, ...]) -> ModelRegistry:
    variant = ModelRegistry(
        {}, fallback=registry.fallback, gazetteer=registry.gazetteer, fallback_beside_models=beside
    )
    variant._loaded = registry._loaded  # the same loaded pipelines, not loaded twice
    return variant


def _show_fallback_errors(
    sentences: list[tuple[str, set[Span]]],
    texts: list[str],
    languages: list[str | None],
    registry: ModelRegistry,
) -> None:
    wrong: Counter[str] = Counter()
    for (text, gold), mentions in zip(
        sentences, document_mentions(texts, languages, registry, 10**9), strict=True
    ):
        for m in mentions:
            if (m.start, m.end, m.label) not in gold:
                overlap = [f"{text[s:e]}/{lab}" for s, e, lab in gold if s < m.end and m.start < e]
                wrong[f"{m.text}/{m.label} {m.method} gold={overlap}"] += 1
    for item, count in wrong.most_common(40):
        print(f"    {count:4d} {item}")


def seed(registry: ModelRegistry, settings: Settings) -> None:
    from worker.offline import process_html

    expected = json.loads((SEED / "lesoleil-afp-syria.expected.json").read_text("utf-8"))
    page = (SEED / "lesoleil-afp-syria.page.txt").read_text("utf-8")
    blocks = [block.strip() for block in page.split("\n\n") if block.strip()]
    body = "".join(f"<p>{html_lib.escape(block)}</p>\n" for block in blocks)
    title = html_lib.escape(expected["title"])
    document = f'<html lang="fr"><head><title>{title}</title></head><body>{body}</body></html>'
    record = process_html(document, "https://www.lapresse.ca/le-soleil/monde/syrie.php", settings, registry)
    print("\n## Seed story (../shared/examples/lesoleil-afp-syria), whole offline path")
    aliases = {alias.casefold(): name for alias, name in expected["entity_aliases"].items()}
    got = {(aliases.get(e.text.casefold(), e.text), e.label) for e in record.entities}
    wanted = [(name, label) for label, names in expected["entities_expected"].items() for name in names]
    hits = [item for item in wanted if item in got]
    body_text = "\n".join(expected["body_paragraphs"]) + "\n" + expected["title"]
    chrome = [e.text for e in record.entities if e.text not in body_text]
    missing_per = [name for name, label in wanted if label == "PER" and (name, label) not in got]
    print(
        f"expected found with right label: {len(hits)}/{len(wanted)}; "
        f"missing: {sorted(set(wanted) - set(hits))}"
    )
    print(f"every expected PER: {not missing_per}; entities not in the article (chrome): {chrome}")
    for entity in record.entities:
        print(f"    {entity.label:4} {entity.text!r:45} x{entity.count} {entity.key} {entity.method}")


def _rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def model_cost(name: str, language: str) -> dict[str, float]:
    """In this (fresh) process: load time, RSS added and words/s of one model on corpus text."""
    from tasks.ner.models import LoadedModel, load_ner_pipeline, resolve_pipeline

    texts = _corpus_texts(language)
    if not texts:
        texts = [" ".join(text for text, _ in load_set(f"{language}:wikineural", 2000))]
    before = _rss_mb()
    started = time.perf_counter()
    nlp = load_ner_pipeline(resolve_pipeline(name, Settings(_env_file=None).models_dir))  # type: ignore[call-arg]
    load = time.perf_counter() - started
    registry = ModelRegistry({language: name})
    registry._loaded[language] = LoadedModel(nlp, name)
    raw_mentions(texts[:2], [language] * 2, registry)  # warm up
    words = sum(len(text.split()) for text in texts)
    started = time.process_time()
    raw_mentions(texts, [language] * len(texts), registry)
    elapsed = time.process_time() - started
    return {"load_s": load, "rss_mb": _rss_mb() - before, "words_per_s": words / elapsed, "words": words}


_TEXTS: dict[str, list[str]] = {}


def _corpus_pages() -> list[tuple[dict[str, object], str]]:
    from worker.offline import read_html_file

    rows = [json.loads(line) for line in (CORPUS / "index.jsonl").read_text("utf-8").splitlines()]
    return [(row, read_html_file(CORPUS / str(row["html"]))) for row in rows]


def _corpus_texts(language: str) -> list[str]:
    """Cleaned texts of the corpus pages in ``language`` (the pipeline's own clean stage)."""
    from worker.offline import process_html

    if not _TEXTS:
        settings = Settings(_env_file=None)  # type: ignore[call-arg]
        for row, page in _corpus_pages():
            try:
                record = process_html(page, str(row["url"]), settings, None)
            except Exception:
                continue
            _TEXTS.setdefault(record.language or "", []).append(record.text)
    texts = _TEXTS.get(language, [])
    return texts * max(1, 20_000 // max(1, sum(len(t.split()) for t in texts))) if texts else []


def speed(args: argparse.Namespace, settings: Settings) -> None:
    print("\n## Cost per model (NER only, paragraphs batched with nlp.pipe; fresh process each)")
    print(
        "| model | language | load s (wall) | RSS added MB | "
        "article words/s per core (CPU time; the model reads only the windows around capitals) |"
    )
    print("|---|---|---|---|---|")
    configured = [
        (language, name)
        for language, names in sorted(settings.spacy_models.items())
        for name in pipeline_names(names)
    ]
    for language, name in [*configured, ("fr", "fr_core_news_sm")]:
        cost, error = _in_fresh_process("--model-cost", f"{language}:{name}")
        if cost is None:
            print(f"| {name} | {language} | failed: {error} |")
            continue
        print(
            f"| {name} | {language} | {cost['load_s']:.1f} | {cost['rss_mb']:.0f} | "
            f"{cost['words_per_s']:,.0f} ({cost['words']:,.0f} words) |"
        )
    throughput(args, settings)


def _in_fresh_process(flag: str, value: str) -> tuple[dict[str, Any] | None, str]:
    """Run this script with ``flag value`` in a new process (memory and load time measured
    from a clean start); its last stdout line as JSON, or None and the error."""
    out = subprocess.run(
        [sys.executable, __file__, flag, value],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    if out.returncode:
        return None, str(out.stderr.strip().splitlines()[-1:])
    return json.loads(out.stdout.strip().splitlines()[-1]), ""


def worker_rss(with_entities: bool) -> dict[str, float]:
    """In this (fresh) process: RSS after the CPU path ran on every corpus page once."""
    from worker.offline import process_html

    pages = _corpus_pages()
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    before = _rss_mb()
    registry = build_registry(settings, learn_names=False) if with_entities else None
    for row, page in pages:
        try:
            process_html(page, str(row["url"]), settings, registry)
        except Exception:
            continue
    return {"before_mb": before, "after_mb": _rss_mb()}


def rss(args: argparse.Namespace) -> None:
    print("\n## RSS of one process running the CPU path on every corpus page (fresh process each)")
    print("| path | RSS before (pages in memory) MB | RSS after MB |")
    print("|---|---|---|")
    for flag in ("without", "with"):
        cost, error = _in_fresh_process("--worker-rss", flag)
        if cost is None:
            print(f"| {flag} entities | failed: {error} |")
            continue
        print(f"| {flag} entities | {cost['before_mb']:.0f} | {cost['after_mb']:.0f} |")


THROUGHPUT_HEADER = "| path | CPU s | words/s per core | pages/s per core | ratio to without | by method |"


def throughput(args: argparse.Namespace, settings: Settings) -> None:
    """The whole CPU path without entities, with them, and with them but German on the fallback
    (the German pipeline is the costliest per word and German the corpus's largest language)."""
    from worker.offline import process_html

    pages = _corpus_pages()
    registry = build_registry(settings, learn_names=False)
    without_german = settings.model_copy(
        update={"spacy_models": {k: v for k, v in settings.spacy_models.items() if k != "de"}}
    )
    paths: dict[str, ModelRegistry | None] = {
        "without entities": None,
        "with entities": registry,
        "with entities, German on the fallback": build_registry(without_german, learn_names=False),
    }

    def run(path: str) -> tuple[float, int, Counter[str]]:
        words, methods = 0, Counter[str]()
        started = time.process_time()
        for row, page in pages:
            try:
                record = process_html(page, str(row["url"]), settings, paths[path])
            except Exception:
                continue
            words += len(record.text.split())
            methods.update(entity.method.split(":")[0] for entity in record.entities)
            methods["pages without entity"] += not record.entities
        return time.process_time() - started, words, methods

    for path in paths:
        run(path)  # loads the models and the gazetteer; not timed
    best: dict[str, float] = {}
    words = 0
    methods: dict[str, Counter[str]] = {}
    for _ in range(args.repeat):
        for path in paths:
            elapsed, words, found = run(path)
            best[path] = min(best.get(path, float("inf")), elapsed)
            methods[path] = found
    print(
        f"\n## Whole CPU path on {len(pages)} corpus pages, one process, CPU seconds of the process "
        f"(best of {args.repeat}; CPU time, not wall time, so other load on a shared machine counts less)"
    )
    print(THROUGHPUT_HEADER)
    print("|---|---|---|---|---|---|")
    for path in paths:
        ratio = best["without entities"] / best[path]
        print(
            f"| {path} | {best[path]:.2f} | {words / best[path]:,.0f} | {len(pages) / best[path]:.1f} "
            f"| {ratio:.2f} | {dict(methods[path])} |"
        )
    print("bar (issue 17): with entities >= 0.55 of without")
    print(f"RSS of this process (two registries loaded; one: the RSS table below): {_rss_mb():.0f} MB")
    cap_cost(registry)


def cap_cost(registry: ModelRegistry) -> None:
    """Entities lost when the text sent to the model is capped, on the corpus pages."""
    from tasks.ner.extract import extract_many

    _corpus_texts("en")
    texts = [(language, text) for language, group in _TEXTS.items() for text in group]
    languages: list[str | None] = [language for language, _ in texts]
    full = extract_many([t for _, t in texts], languages, registry, 10**9)
    print("\n## Cost of INGEST_ENTITIES_MAX_CHARS on the corpus pages (entities kept vs no cap)")
    print("| cap | texts cut | entities kept |")
    print("|---|---|---|")
    total = sum(len(entities) for entities in full)
    for cap in (5_000, 10_000, 12_000, 15_000, 20_000):
        capped = extract_many([t for _, t in texts], languages, registry, cap)
        kept = sum(
            len({(e.text, e.label) for e in a} & {(e.text, e.label) for e in b})
            for a, b in zip(full, capped, strict=True)
        )
        cut = sum(len(t) > cap for _, t in texts)
        print(f"| {cap:,} | {cut}/{len(texts)} | {kept / total:.3f} ({kept}/{total}) |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="quality,seed,speed")
    parser.add_argument(
        "--sets", default=",".join(SETS), help=f"Evaluation sets, comma-separated (of {', '.join(SETS)})."
    )
    parser.add_argument("--fallback-languages", default="de,es,it,fr,en,nl")
    parser.add_argument("--limit", type=int, default=None, help="Sentences per language (default: all).")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--show-errors", action="store_true")
    parser.add_argument("--model-cost", help=argparse.SUPPRESS)
    parser.add_argument("--worker-rss", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker_rss:
        print(json.dumps(worker_rss(args.worker_rss == "with")))
        return
    if args.model_cost:
        language, name = args.model_cost.split(":", 1)
        print(json.dumps(model_cost(name, language)))
        return
    if not NER.is_dir() or not CORPUS.is_dir():
        sys.exit(
            f"bench/entities.py needs the shared data at {SHARED} (ner/, corpus/news, examples/): not found"
        )
    args.sets = args.sets.split(",")
    args.fallback_languages = args.fallback_languages.split(",")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    registry = build_registry(settings, learn_names=False)
    sections = args.only.split(",")
    if "quality" in sections:
        quality(args, registry)
    if "seed" in sections:
        seed(registry, settings)
    if "speed" in sections:
        speed(args, settings)
        rss(args)
    if "rss" in sections and "speed" not in sections:
        rss(args)
    elif "throughput" in sections:
        throughput(args, settings)


if __name__ == "__main__":
    main()
