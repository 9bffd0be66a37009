"""Mentions as models find them, normalised: our four labels, clean spans, a folded form.

Models disagree on label sets (OntoNotes' PERSON/GPE/NORP..., WikiNER's PER/LOC/MISC) and on
span edges ("the United Nations", "l'Etat islamique", "Kerry's"). Everything downstream
(merging, keys, evaluation) works on :class:`Mention` after :func:`normalise_mention`, so
these rules are written once.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, replace
from functools import lru_cache

#: spaCy labels (OntoNotes and WikiNER schemes) to ours; anything else (DATE, CARDINAL,
#: MONEY, ...) is not a name and is dropped.
LABEL_MAP: dict[str, str] = {
    "PER": "PER",
    "PERSON": "PER",
    "ORG": "ORG",
    "LOC": "LOC",
    "GPE": "LOC",
    "FAC": "LOC",
    "MISC": "MISC",
    "NORP": "MISC",
    "EVENT": "MISC",
    "WORK_OF_ART": "MISC",
    "PRODUCT": "MISC",
    "LAW": "MISC",
    "LANGUAGE": "MISC",
}
LABELS = ("PER", "ORG", "LOC", "MISC")

#: Lower-case articles and elisions that models include at the start of a span but that are
#: not part of the name ("the Pentagon", "l'Etat islamique"). Only lower-case forms are
#: stripped: a capitalised article is usually part of the name ("Le Monde", "Los Angeles").
LEADING_WORDS: dict[str, tuple[str, ...]] = {
    "en": ("the", "a", "an"),
    "fr": ("le", "la", "les", "du", "des", "un", "une"),
    "de": ("der", "die", "das", "den", "dem", "des", "ein", "eine"),
    "es": ("el", "la", "los", "las", "lo", "del"),
    "it": ("il", "lo", "la", "i", "gli", "le", "del", "della", "dei"),
    "pt": ("o", "a", "os", "as", "do", "da"),
    "nl": ("de", "het", "een"),
}
_ELISIONS = re.compile(r"^(?:l|d|qu|dell|all|nell|sull|dall)['’]", re.IGNORECASE)
_ELISION_LOWER = re.compile(r"^(?:l|d|qu|dell|all|nell|sull|dall)['’]")
_POSSESSIVE = re.compile(r"\s?['’]s$")
#: Abbreviations that end a name with their period ("Martin Luther King Jr.", "Acme Inc.").
_ABBREVIATION_END = (" Jr", " Sr", " Inc", " Co", " Ltd", " Corp", " St")
_INITIAL = re.compile(r"(?:^|[\s.])[A-Z]\.$")
_EDGE = "\"'«»“”„‘’‹›`()[]{}<>.,;:!?*•·-–—/\\|#"
_QUOTES = '"«»“”„‘’‹›`'
_SPACES = re.compile(r"\s+")


@dataclass(frozen=True)
class Mention:
    """One mention of a name: a span ``[start, end)`` of the document text, with our label.

    ``canonical`` is the text of the entity it refers to once merging has run (``"Lavrov"``
    -> ``"Sergueï Lavrov"``); ``key`` a join key when one is known (a GeoNames id).
    """

    text: str
    label: str
    start: int
    end: int
    method: str
    canonical: str | None = None
    key: str | None = None


def clean_text(text: str) -> str:
    """NFKC, typographic quotes straightened, whitespace folded to single spaces."""
    text = unicodedata.normalize("NFKC", text).replace("’", "'").replace("‘", "'")
    return _SPACES.sub(" ", text).strip()


@lru_cache(maxsize=65_536)
def fold(text: str) -> str:
    """An accent-, case- and punctuation-insensitive form: ``"États-Unis"`` -> ``"etats unis"``.

    Two surface forms with the same fold name the same thing inside one document, and the
    fold is the fallback join key across documents.
    """
    decomposed = unicodedata.normalize("NFKD", clean_text(text))
    stripped = "".join(char for char in decomposed if not unicodedata.combining(char))
    return " ".join(re.findall(r"\w+", stripped.casefold()))


def _is_cased(text: str) -> bool:
    return any(char.lower() != char.upper() for char in text)


def normalise_mention(document: str, mention: Mention, language: str | None) -> Mention | None:
    """The mention with our label and trimmed span, or None if it is not a name.

    ``mention.label`` may be a model's label (mapped through :data:`LABEL_MAP`) or ours.
    Trimming moves ``start``/``end`` so the span stays a slice of ``document``.
    """
    label = LABEL_MAP.get(mention.label)
    if label is None:
        return None
    start, end = mention.start, mention.end
    leading = LEADING_WORDS.get(language or "", ())
    changed = True
    while changed and start < end:
        changed = False
        span = document[start:end]
        stripped = span.lstrip(_EDGE + " ")
        if stripped != span:
            start += len(span) - len(stripped)
            changed = True
            continue
        first, _, rest = span.partition(" ")
        if rest and first in leading:
            start += len(first) + 1
            changed = True
            continue
        elision = _ELISION_LOWER.match(span)
        if elision and len(span) > elision.end():
            start += elision.end()
            changed = True
    for _ in range(3):  # "Kerry's", "Jones' ", "(UN)."
        span = document[start:end]
        stripped = span.rstrip(_EDGE + " ")
        if stripped.endswith(_ABBREVIATION_END) or _INITIAL.search(span):
            stripped = span.rstrip(_EDGE.replace(".", "") + " ")  # keep "Jr.", "U.S."
        if language == "en" and len(stripped) > 3 and _POSSESSIVE.search(stripped):
            stripped = _POSSESSIVE.sub("", stripped).rstrip()
        if stripped == span:
            break
        end -= len(span) - len(stripped)
    text = clean_text(document[start:end]).strip(_QUOTES)
    if len(text) < 2 or not any(char.isalpha() for char in text):
        return None
    if _is_cased(text) and not any(char.isupper() for char in text):
        return None  # "winter", "jihadistes": a cased name has a capital letter
    return replace(mention, text=text, label=label, start=start, end=end)


def normalise_mentions(document: str, mentions: list[Mention], language: str | None) -> list[Mention]:
    """:func:`normalise_mention` over a list, dropping non-names and exact duplicates."""
    seen: set[tuple[int, int]] = set()
    result = []
    for mention in mentions:
        normalised = normalise_mention(document, mention, language)
        if normalised is None or (normalised.start, normalised.end) in seen:
            continue
        seen.add((normalised.start, normalised.end))
        result.append(normalised)
    return result


def strip_elision(text: str) -> str:
    """``"l'Etat islamique"`` -> ``"Etat islamique"`` (any case), for lookups."""
    match = _ELISIONS.match(text)
    return text[match.end() :] if match and len(text) > match.end() else text
