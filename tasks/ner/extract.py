"""The whole entity path for one or many documents: model or fallback, normalise, merge.

Paragraphs, not documents, are what the model sees: ``nlp.pipe`` over the paragraphs of
every document in hand (one article in a worker, hundreds in a benchmark) batches them, which
runs the transition-based NER about 1.5 times faster than one long ``Doc`` per article, with
the same entities (no entity crosses a blank line). Only the words near a capitalised word
are sent (see :func:`name_bearing`).
"""

from __future__ import annotations

import re
from collections import defaultdict

from tasks.ner.fallback import stop_words
from tasks.ner.merge import resolve, to_entities
from tasks.ner.models import ModelRegistry
from tasks.ner.normalise import Mention, normalise_mentions
from tasks.ner.scored import scored_entities
from tasks.record import Entity

_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
#: Paragraphs per ``nlp.pipe`` batch.
BATCH_SIZE = 256


def cap_text(text: str, max_chars: int) -> str:
    """At most ``max_chars`` of ``text``, cut at a paragraph, sentence or word boundary."""
    if len(text) <= max_chars:
        return text
    head = text[:max_chars]
    for boundary in ("\n\n", ". ", " "):
        cut = head.rfind(boundary)
        if cut > max_chars // 2:
            return head[: cut + (1 if boundary == ". " else 0)]
    return head


def paragraphs(text: str) -> list[tuple[int, str]]:
    """``(offset, paragraph)`` for each non-empty paragraph of ``text``."""
    found = []
    start = 0
    for match in _PARAGRAPH_BREAK.finditer(text):
        if text[start : match.start()].strip():
            found.append((start, text[start : match.start()]))
        start = match.end()
    if text[start:].strip():
        found.append((start, text[start:]))
    return found


#: A sentence ends at . ! ? after a lower-case letter, digit or closing quote, before a capital.
_SENTENCE = re.compile(r"(?<=[^\W\d_A-Z0-9)\"”’»][.!?])\s+(?=[\"“‘«(]?[^\W\d_a-z])|(?<=[0-9)\"”’»][.!?])\s+")
#: Abbreviations after which a period does not end the sentence ("Mr. Smith", "St. Louis").
_ABBREVIATIONS = frozenset(
    re.findall(
        r"\w+",
        "mr mrs ms dr st sen rep gov gen lt col sgt capt cmdr jr sr prof inc co corp ltd mt ft "
        "no vs etc mme mlle mgr hr fr dott sig sra sta",
    )
)


def sentences(paragraph: str) -> list[tuple[int, str]]:
    """``(offset, sentence)`` of a paragraph, split conservatively (abbreviations kept)."""
    found: list[tuple[int, str]] = []
    start = 0
    for match in _SENTENCE.finditer(paragraph):
        head = paragraph[start : match.start()]
        last_word = head.rsplit(None, 1)[-1].rstrip(".").casefold() if head.strip() else ""
        if last_word in _ABBREVIATIONS:
            continue
        found.append((start, head))
        start = match.end()
    found.append((start, paragraph[start:]))
    return [(offset, sentence) for offset, sentence in found if sentence.strip()]


#: Words of context kept on each side of a capitalised word. The pipelines' token vectors
#: see 4 tokens either side (4 CNN layers of window 1), so farther words barely change
#: what the model says about a name.
CONTEXT_WORDS = 6
_WORDS = re.compile(r"\S+")


def name_bearing(text: str, stop_words: frozenset[str] = frozenset()) -> list[tuple[int, str]]:
    """The parts of ``text`` a model must read: the words around anything that may be a name.

    In a cased script every name we keep has a capital letter (lower-case mentions are
    dropped by :func:`tasks.ner.normalise.normalise_mention`), and the model's view of a
    word reaches 4 words either side. So each sentence is cut down to windows of
    :data:`CONTEXT_WORDS` words around its capitalised words, a capitalised function word
    opening the sentence ("The", "Le") not counting; a sentence with none is skipped. On the
    English corpus pages this halves the words the model reads and keeps 99% of the entities
    (bench/entities.py). Sentences without any cased letter (uncased scripts) are read whole.
    """
    parts: list[tuple[int, str]] = []
    for offset, paragraph in paragraphs(text):
        for start, sentence in sentences(paragraph):
            base = offset + start
            if sentence.lower() == sentence.upper():  # no cased letter: read it whole
                parts.append((base, sentence))
                continue
            words = list(_WORDS.finditer(sentence))
            marks = [
                index
                for index, word in enumerate(words)
                if not word.group().islower()
                and (index or word.group().strip('"“‘«(').casefold() not in stop_words)
                and any(char.isupper() for char in word.group())
            ]
            window_start, window_end = -1, -1
            for index in marks:
                low, high = max(0, index - CONTEXT_WORDS), min(len(words) - 1, index + CONTEXT_WORDS)
                if low > window_end + 1 and window_end >= 0:
                    first, last = words[window_start].start(), words[window_end].end()
                    parts.append((base + first, sentence[first:last]))
                    window_start = low
                elif window_end < 0:
                    window_start = low
                window_end = high
            if window_end >= 0:
                first, last = words[window_start].start(), words[window_end].end()
                parts.append((base + first, sentence[first:last]))
    return parts


def raw_mentions(
    texts: list[str], languages: list[str | None], registry: ModelRegistry, batch_size: int = BATCH_SIZE
) -> list[list[Mention]]:
    """Mentions as the model (or the fallback) finds them, before any normalisation.

    Model labels are kept as the model gives them (``GPE``, ``PERSON``...).
    """
    found: list[list[Mention]] = [[] for _ in texts]
    by_language: dict[str | None, list[int]] = defaultdict(list)
    for index, language in enumerate(languages):
        by_language[language].append(index)
    for language, indexes in by_language.items():
        model = registry.model(language)
        if model is None:
            if registry.fallback is not None:
                for index in indexes:
                    found[index] = registry.fallback.mentions(texts[index], language)
            continue
        stops = stop_words(language)
        pieces = [
            (index, offset, part) for index in indexes for offset, part in name_bearing(texts[index], stops)
        ]
        parts, method = (part for _, _, part in pieces), model.method
        if model.min_score is not None:
            for (index, offset, part), spans in zip(
                pieces, scored_entities(model.nlp, parts, model.min_score, batch_size), strict=True
            ):
                found[index].extend(
                    Mention(part[start:end], label, offset + start, offset + end, method)
                    for start, end, label, _ in spans
                )
        else:
            docs = model.nlp.pipe(parts, batch_size=batch_size)
            for (index, offset, _), doc in zip(pieces, docs, strict=True):
                found[index].extend(
                    Mention(ent.text, ent.label_, offset + ent.start_char, offset + ent.end_char, method)
                    for ent in doc.ents
                )
        if registry.fallback is not None and registry.fallback_beside(language):
            for index in indexes:
                found[index] = beside_model(found[index], registry.fallback.mentions(texts[index], language))
    return found


def beside_model(model: list[Mention], fallback: list[Mention]) -> list[Mention]:
    """The model's mentions plus the fallback's that overlap none of them.

    The fallback is tuned for precision (P 0.94-0.98 on WikiNEuRal de) and knows places and
    names a small model misses; where both found something the model's span wins, which
    measured better than the other way round on GermEval (bench/entities.py, "plus fallback").
    """
    taken = sorted((mention.start, mention.end) for mention in model)
    added = [
        mention
        for mention in fallback
        if not any(start < mention.end and mention.start < end for start, end in taken)
    ]
    return sorted([*model, *added], key=lambda mention: mention.start)


def document_mentions(
    texts: list[str],
    languages: list[str | None],
    registry: ModelRegistry,
    max_chars: int,
    batch_size: int = BATCH_SIZE,
) -> list[list[Mention]]:
    """Normalised, merged mentions of each document (what :func:`extract_many` counts)."""
    capped = [cap_text(text, max_chars) for text in texts]
    results = []
    for text, language, mentions in zip(
        capped, languages, raw_mentions(capped, languages, registry, batch_size), strict=True
    ):
        normalised = normalise_mentions(text, mentions, language)
        results.append(resolve(text, normalised, registry.gazetteer))
    return results


def extract_many(
    texts: list[str],
    languages: list[str | None],
    registry: ModelRegistry,
    max_chars: int,
    batch_size: int = BATCH_SIZE,
) -> list[list[Entity]]:
    """Entities of each document; documents of one language share ``nlp.pipe`` batches."""
    return [
        to_entities(mentions)
        for mentions in document_mentions(texts, languages, registry, max_chars, batch_size)
    ]


def extract_entities(
    text: str, language: str | None, registry: ModelRegistry, max_chars: int
) -> list[Entity]:
    """Entities of one document (an empty text has none)."""
    if not text.strip():
        return []
    return extract_many([text], [language], registry, max_chars)[0]
