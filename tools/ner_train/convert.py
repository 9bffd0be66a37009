"""Convert ``index<TAB>token<TAB>BIO-tag`` conll files into a spaCy DocBin (.spacy).

One sentence per Doc (tokens as given, separated by single spaces). Several inputs may be
concatenated; ``FILE*N`` repeats a file N times (a cheap way to weight GermEval above the
historic Europeana OCR text). ``--drop`` turns the listed labels into O (e.g. ``--drop MISC``).
``--split`` cuts a single input into train/dev/test by sentence position (for corpora without
official splits, e.g. Europeana nl-kb): ``--split 0.85,0.05`` keeps the first 85 % as train,
the next 5 % as dev, the rest as test, and writes ``OUT-train.spacy``, ``OUT-dev.spacy``,
``OUT-test.spacy`` and matching ``.conll`` copies of dev/test for tools/ner_train/evaluate.py.

Usage:
  python tools/ner_train/convert.py OUT.spacy --lang de IN.conll [IN2.conll*2 ...] [--drop MISC]
  python tools/ner_train/convert.py OUT --lang nl --split 0.85,0.05 IN.conll
"""

from __future__ import annotations

import argparse
import gzip
from pathlib import Path

import spacy
from spacy.tokens import Doc, DocBin

Sentence = list[tuple[str, str]]


def read_conll(path: str | Path) -> list[Sentence]:
    """Sentences of a conll file as lists of (token, BIO tag); ``.gz`` files are read too."""
    opener = gzip.open if str(path).endswith(".gz") else open
    sentences: list[Sentence] = []
    tokens: Sentence = []
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


def clean_tags(tags: list[str], drop: set[str]) -> list[str]:
    """Dropped labels -> O; a stray I- after O or another label becomes B- (valid BIO)."""
    out: list[str] = []
    previous = "O"
    for tag in tags:
        if tag != "O" and tag[2:] in drop:
            tag = "O"
        if tag.startswith("I-") and previous[2:] != tag[2:]:
            tag = "B-" + tag[2:]
        out.append(tag)
        previous = tag
    return out


def to_doc(nlp: spacy.Language, sentence: Sentence, drop: set[str]) -> Doc:
    words = [token for token, _ in sentence]
    tags = clean_tags([tag for _, tag in sentence], drop)
    return Doc(nlp.vocab, words=words, spaces=[True] * (len(words) - 1) + [False], ents=tags)


def write(nlp: spacy.Language, sentences: list[Sentence], out: Path, drop: set[str]) -> None:
    db = DocBin(store_user_data=False)
    for sentence in sentences:
        db.add(to_doc(nlp, sentence, drop))
    out.parent.mkdir(parents=True, exist_ok=True)
    db.to_disk(out)
    words = sum(len(s) for s in sentences)
    print(f"{out}: {len(sentences)} sentences, {words} tokens")


def write_conll(sentences: list[Sentence], out: Path) -> None:
    with open(out, "w", encoding="utf-8") as handle:
        for sentence in sentences:
            for index, (token, tag) in enumerate(sentence):
                handle.write(f"{index}\t{token}\t{tag}\n")
            handle.write("\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("inputs", nargs="+", help="conll files, FILE*N repeats a file N times")
    parser.add_argument("--lang", default="de")
    parser.add_argument("--drop", default="", help="comma-separated labels to turn into O")
    parser.add_argument("--split", default="", help="TRAIN,DEV fractions (rest = test)")
    args = parser.parse_args()
    nlp = spacy.blank(args.lang)
    drop = {label for label in args.drop.split(",") if label}
    sentences: list[Sentence] = []
    for item in args.inputs:
        path, _, times = item.partition("*")
        sentences.extend(read_conll(path) * int(times or 1))
    if not args.split:
        write(nlp, sentences, Path(args.out), drop)
        return
    train_part, dev_part = (float(x) for x in args.split.split(","))
    n_train = int(len(sentences) * train_part)
    n_dev = int(len(sentences) * (train_part + dev_part))
    parts = {"train": sentences[:n_train], "dev": sentences[n_train:n_dev], "test": sentences[n_dev:]}
    for name, part in parts.items():
        write(nlp, part, Path(f"{args.out}-{name}.spacy"), drop)
        if name != "train":
            write_conll(part, Path(f"{args.out}-{name}.conll"))


if __name__ == "__main__":
    main()
