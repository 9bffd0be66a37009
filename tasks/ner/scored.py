"""Entities a beam-trained NER is sure of: each span with its probability, kept above a floor.

A greedy transition-based NER gives one parse and no confidence. A pipeline trained with
spaCy's ``beam_ner`` keeps the ``beam_width`` best parses of a sentence; the probability of an
entity is the summed probability of the parses that contain it (``EntityRecognizer.scored_ents``).
Keeping only entities above a floor trades recall for precision, which is what a small model
trained on little data needs: the German pipeline (tools/ner_train/README.md) is right about
two thirds of its entities overall, and about 85 % of those it gives 0.9 or more.

Spans are taken best first and never overlap. A pipeline without a floor in
``INGEST_SPACY_MIN_SCORE`` runs as usual (``nlp.pipe``), beam-trained or not.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

#: Beam width when the pipeline's config does not give one (spaCy's ``beam_ner`` default is 32).
DEFAULT_BEAM_WIDTH = 8


def beam_width(nlp: Any) -> int:
    """The beam width the pipeline's NER was trained with (``components.ner.beam_width``)."""
    width = nlp.config["components"]["ner"].get("beam_width")
    return int(width) if width else DEFAULT_BEAM_WIDTH


def confident_spans(
    scores: dict[tuple[int, int, Any], float], floor: float
) -> list[tuple[int, int, Any, float]]:
    """Token spans ``(start, end, label, probability)`` with probability >= ``floor``, best
    first, none overlapping another kept one, returned in text order."""
    kept: list[tuple[int, int, Any, float]] = []
    for (start, end, label), probability in sorted(scores.items(), key=lambda item: -item[1]):
        if probability < floor:
            break
        if any(start < other_end and other_start < end for other_start, other_end, _, _ in kept):
            continue
        kept.append((start, end, label, probability))
    return sorted(kept, key=lambda span: span[0])


def _batches(texts: Iterable[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for text in texts:
        batch.append(text)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def scored_entities(
    nlp: Any, texts: Iterable[str], floor: float, batch_size: int = 256
) -> Iterator[list[tuple[int, int, str, float]]]:
    """For each text: ``(start_char, end_char, label, probability)`` of its confident entities."""
    ner = nlp.get_pipe("ner")
    before = [pipe for name, pipe in nlp.pipeline if name != "ner"]
    width = beam_width(nlp)
    for batch in _batches(texts, batch_size):
        docs = [nlp.make_doc(text) for text in batch]
        for pipe in before:  # the tok2vec the NER listens to sets doc.tensor
            docs = list(pipe.pipe(docs))
        beams = ner.beam_parse(docs, beam_width=width)
        for doc, scores in zip(docs, ner.scored_ents(beams), strict=True):
            found = []
            for start, end, label, probability in confident_spans(scores, floor):
                span = doc[start:end]
                name = label if isinstance(label, str) else nlp.vocab.strings[label]
                found.append((span.start_char, span.end_char, name, probability))
            yield found
