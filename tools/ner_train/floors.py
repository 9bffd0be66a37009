"""P/R/F1 of a beam-trained pipeline at each probability floor, through the project's own path.

The pipeline reads the name-bearing windows (tasks.ner.extract.name_bearing), its entities are
scored by the beam (tasks.ner.scored, floor 0, probabilities kept), then for each floor: the
entities at or above it, normalised and merged as the entities stage does, alone and with the
fallback's matches beside them (tasks.ner.extract.beside_model). Spans are taken best first, so
one beam pass gives every floor exactly.

The floor a pipeline ships with is chosen on its dev set (the lowest floor whose "plus fallback"
precision reaches the goal there), then read on the held-out sets.

Usage:
  .venv/bin/python tools/ner_train/floors.py models/de_news_ner de SET[,SET...] [--limit N]
  SET: a name of bench/ner_sets.SETS (``de:wikineural``, ``de:germeval-test``...) or a conll path.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bench.ner_sets import MAIN, SETS, Score, Sentence, load_set, read_tokens, sentence  # noqa: E402
from config import Settings  # noqa: E402
from tasks.entities import build_registry  # noqa: E402
from tasks.ner.extract import beside_model, name_bearing  # noqa: E402
from tasks.ner.fallback import stop_words  # noqa: E402
from tasks.ner.merge import resolve  # noqa: E402
from tasks.ner.models import load_ner_pipeline  # noqa: E402
from tasks.ner.normalise import Mention, normalise_mentions  # noqa: E402
from tasks.ner.scored import scored_entities  # noqa: E402

FLOORS = (0.0, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97)


def sentences_of(name: str, limit: int | None) -> list[Sentence]:
    if name in SETS:
        return load_set(name, limit)
    return [sentence(tokens) for tokens in read_tokens(Path(name))[: limit or None]]


def prf(score: Score, labels: tuple[str, ...] = MAIN) -> str:
    precision, recall, f1, _ = score.prf(labels)
    return f"{precision:.3f}/{recall:.3f}/{f1:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("language")
    parser.add_argument("sets")
    parser.add_argument("--limit", type=int, default=None)
    args = parser.parse_args()
    registry = build_registry(Settings(_env_file=None), learn_names=False)  # type: ignore[call-arg]
    assert registry.fallback is not None
    nlp = load_ner_pipeline(args.model)
    stops = stop_words(args.language)
    for name in args.sets.split(","):
        sentences = sentences_of(name, args.limit)
        texts = [text for text, _ in sentences]
        pieces = [
            (index, offset, part)
            for index, text in enumerate(texts)
            for offset, part in name_bearing(text, stops)
        ]
        started = time.process_time()
        scored = list(scored_entities(nlp, (part for _, _, part in pieces), 0.0))
        elapsed = time.process_time() - started
        fallback = [registry.fallback.mentions(text, args.language) for text in texts]
        words = sum(len(text.split()) for text in texts)
        print(f"\n### {name}: {len(texts)} sentences, {words / elapsed:,.0f} words/s (CPU, beam)")
        print("| floor | alone P/R/F1 | plus fallback P/R/F1 | PER | ORG | LOC |")
        print("|---|---|---|---|---|---|")
        for floor in FLOORS:
            found: list[list[Mention]] = [[] for _ in texts]
            for (index, offset, part), spans in zip(pieces, scored, strict=True):
                found[index].extend(
                    Mention(part[start:end], label, offset + start, offset + end, "spacy")
                    for start, end, label, probability in spans
                    if probability >= floor
                )
            alone, combined = Score(), Score()
            for (text, gold), mentions, extra in zip(sentences, found, fallback, strict=True):
                for score, chosen in ((alone, mentions), (combined, beside_model(mentions, extra))):
                    merged = resolve(
                        text, normalise_mentions(text, chosen, args.language), registry.gazetteer
                    )
                    score.add(gold, {(m.start, m.end, m.label) for m in merged if m.label in MAIN})
            print(
                f"| {floor} | {prf(alone)} | {prf(combined)} | {prf(combined, ('PER',))} | "
                f"{prf(combined, ('ORG',))} | {prf(combined, ('LOC',))} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
