"""Score a spaCy pipeline on a conll file: exact span + label, PER/ORG/LOC micro P/R/F1 and per label.

Same convention as bench/entities.py (the scorer and sentence reader of bench/ner_sets.py): each
sentence's tokens are joined by single spaces, gold spans are
character offsets, a predicted entity counts only with the exact span and label. Model labels go
through tasks.ner.normalise.LABEL_MAP (PERSON->PER, GPE->LOC, ...). MISC is reported apart.

Modes:
* default ("raw"): the pipeline reads each whole sentence (``nlp.pipe``).
* ``--project``: the project's own path, tasks.ner.extract.raw_mentions (the model reads only the
  name-bearing windows of the text), as bench/entities.py measures "raw".

Usage:
  .venv/bin/python tools/ner_train/evaluate.py models/de_news_ner FILE.conll[.gz] [--lang de] [--project]
  (FILE may be ``wikineural-de`` as a shortcut for ../shared/ner/wikineural-de-test.conllu.gz)
Prints a markdown row per label and a JSON line with the figures; words/s is CPU time of the process.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
SHARED_NER = ROOT.parent / "shared" / "ner"
MAIN = ("PER", "ORG", "LOC")

from convert import read_conll  # noqa: E402

from bench.ner_sets import Score  # noqa: E402  (the bench's scorer, shared)
from bench.ner_sets import sentence as _sentence  # noqa: E402
from tasks.ner.normalise import LABEL_MAP  # noqa: E402

SCORER = "bench.ner_sets"


def predict_raw(model: str, texts: list[str]) -> tuple[list[set], float]:
    import spacy

    nlp = spacy.load(model)
    list(nlp.pipe(texts[:20]))  # warm up
    started = time.process_time()
    found = [
        {(e.start_char, e.end_char, LABEL_MAP[e.label_]) for e in doc.ents if e.label_ in LABEL_MAP}
        for doc in nlp.pipe(texts, batch_size=256)
    ]
    return found, time.process_time() - started


def predict_project(model: str, texts: list[str], language: str) -> tuple[list[set], float]:
    from tasks.ner.extract import raw_mentions
    from tasks.ner.models import LoadedModel, ModelRegistry, load_ner_pipeline

    registry = ModelRegistry({language: model})
    registry._loaded[language] = LoadedModel(load_ner_pipeline(model), model)
    started = time.process_time()
    mentions = raw_mentions(texts, [language] * len(texts), registry)
    elapsed = time.process_time() - started
    found = [{(m.start, m.end, LABEL_MAP[m.label]) for m in ms if m.label in LABEL_MAP} for ms in mentions]
    return found, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="pipeline directory or installed package name")
    parser.add_argument("conll")
    parser.add_argument("--lang", default="de")
    parser.add_argument("--project", action="store_true", help="score through tasks.ner.extract")
    parser.add_argument("--limit", type=int, default=0)
    args = parser.parse_args()
    path = args.conll
    if path.startswith("wikineural-") and not Path(path).exists():
        path = str(SHARED_NER / f"{path}-test.conllu.gz")
    sentences = [_sentence(tokens) for tokens in read_conll(path)]
    if args.limit:
        sentences = sentences[: args.limit]
    texts = [text for text, _ in sentences]
    if args.project:
        found, elapsed = predict_project(args.model, texts, args.lang)
    else:
        found, elapsed = predict_raw(args.model, texts)
    score = Score()
    for (_, gold), predicted in zip(sentences, found, strict=True):
        score.add(gold, predicted)
    words = sum(len(text.split()) for text in texts)
    mode = "project" if args.project else "raw"
    print(
        f"{args.model} on {path} ({len(texts)} sentences, {mode}, scorer: {SCORER}, "
        f"{words / elapsed:,.0f} words/s CPU)"
    )
    print("| labels | P | R | F1 | predicted |")
    print("|---|---|---|---|---|")
    result: dict[str, object] = {
        "model": args.model,
        "data": path,
        "mode": mode,
        "words_per_s": round(words / elapsed),
    }
    for name, labels in (
        ("PER", ("PER",)),
        ("ORG", ("ORG",)),
        ("LOC", ("LOC",)),
        ("PER+ORG+LOC", MAIN),
        ("MISC", ("MISC",)),
    ):
        p, r, f, n = score.prf(labels)
        print(f"| {name} | {p:.3f} | {r:.3f} | {f:.3f} | {n} |")
        result[name] = {"p": round(p, 4), "r": round(r, 4), "f": round(f, 4)}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
