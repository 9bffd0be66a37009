"""The named-entity evaluation sets in ../shared and the scorer every NER figure uses.

Scoring convention (../shared/ner/README.md): each sentence's tokens joined by single spaces,
gold spans as character offsets, a predicted entity counts only with the exact span and
label; PER, ORG and LOC micro-averaged, MISC reported apart.

Sets (``SETS``; each name is ``<language>:<set>``):

* ``wikineural``: the WikiNEuRal test splits (fr, en, de, es, it; silver labels, Wikipedia).
* ``germeval-test``: GermEval 2014 re-split test (de, hand-labelled Wikipedia and news). The
  German model is trained on the re-split's train part only, so this part is held out.
* ``kind-wikinews`` / ``kind-fiction``: KIND test files (it, hand-labelled; evaluation only,
  never trained on).
* ``nl-kb-test``: the last 10 % of Europeana nl-kb (nl, hand-labelled historic newspapers;
  the Dutch model trains on the first 85 %, ``tools/ner_train/convert.py --split 0.85,0.05``).
"""

from __future__ import annotations

import gzip
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared"
NER = SHARED / "ner"
TRAIN = SHARED / "ner-train"

Span = tuple[int, int, str]
Sentence = tuple[str, set[Span]]
MAIN = ("PER", "ORG", "LOC")


def read_tokens(path: Path) -> list[list[tuple[str, str]]]:
    """Sentences of a conll file (``index<TAB>token<TAB>tag``) as (token, tag) lists."""
    opener = gzip.open if path.suffix == ".gz" else open
    sentences: list[list[tuple[str, str]]] = []
    tokens: list[tuple[str, str]] = []
    with opener(path, "rt", encoding="utf-8") as handle:
        for line in [*handle, "\n"]:
            line = line.rstrip("\n")
            if line:
                parts = line.split("\t")
                tokens.append((parts[1], parts[2] if len(parts) > 2 else "O"))
            elif tokens:
                sentences.append(tokens)
                tokens = []
    return sentences


def sentence(tokens: list[tuple[str, str]]) -> Sentence:
    """Text (tokens joined by single spaces) and gold spans of one BIO-tagged sentence."""
    offsets, position = [], 0
    for token, _ in tokens:
        offsets.append((position, position + len(token)))
        position += len(token) + 1
    spans: set[Span] = set()
    start, label = None, None
    for index, (_, tag) in enumerate([*tokens, ("", "O")]):
        continues = tag.startswith("I-") and tag[2:] == label
        if start is not None and not continues:
            spans.add((offsets[start][0], offsets[index - 1][1], str(label)))
            start = None
        if tag != "O" and not continues:
            start, label = index, tag[2:]
    return " ".join(token for token, _ in tokens), spans


def _file(path: Path) -> Callable[[], list[list[tuple[str, str]]]]:
    return lambda: read_tokens(path)


def _tail(path: Path, keep_from: float) -> Callable[[], list[list[tuple[str, str]]]]:
    def read() -> list[list[tuple[str, str]]]:
        tokens = read_tokens(path)
        # the same cut as convert.py --split 0.85,0.05: test starts at int(n * 0.90)
        return tokens[int(len(tokens) * keep_from) :]

    return read


SETS: dict[str, Callable[[], list[list[tuple[str, str]]]]] = {
    **{
        f"{lang}:wikineural": _file(NER / f"wikineural-{lang}-test.conllu.gz")
        for lang in ("fr", "en", "de", "es", "it")
    },
    "de:germeval-test": _file(TRAIN / "germeval2014-de" / "resplit" / "test.conll"),
    "it:kind-wikinews": _file(TRAIN / "evaluation-only" / "kind-it" / "wikinews" / "test.conll"),
    "it:kind-fiction": _file(TRAIN / "evaluation-only" / "kind-it" / "fiction" / "test.conll"),
    "nl:nl-kb-test": _tail(TRAIN / "europeana-newspapers" / "nl-kb" / "all.conll", 0.90),
}


def load_set(name: str, limit: int | None = None) -> list[Sentence]:
    """The sentences of ``SETS[name]`` (the first ``limit`` of them when given)."""
    tokens = SETS[name]()
    return [sentence(item) for item in tokens[: limit or None]]


@dataclass
class Score:
    """Counts per label."""

    tp: Counter[str] = field(default_factory=Counter)
    fp: Counter[str] = field(default_factory=Counter)
    fn: Counter[str] = field(default_factory=Counter)

    def add(self, gold: set[Span], predicted: set[Span]) -> None:
        for span in predicted:
            (self.tp if span in gold else self.fp)[span[2]] += 1
        for span in gold - predicted:
            self.fn[span[2]] += 1

    def prf(self, labels: Iterable[str]) -> tuple[float, float, float, int]:
        labels = list(labels)
        tp = sum(self.tp[label] for label in labels)
        fp = sum(self.fp[label] for label in labels)
        fn = sum(self.fn[label] for label in labels)
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return precision, recall, f1, tp + fp
