"""Entities for languages without a model: places, known names and one conservative rule.

A fallback that adds more wrong entities than right ones is worse than none, so each part
is tuned for precision (measured alone in ``bench/entities.py``):

* **places** from the gazetteer, matched as whole capitalised words that are not glued to
  other capitalised words ("Madrid", but not the "Madrid" of "Real Madrid");
* **known names**: people and organisations this deployment's models recognised with high
  confidence in other articles (:mod:`stores.names`), two words or more;
* **titles**: a person's title followed by two or three capitalised words
  ("Bundeskanzler Olaf Scholz", "presidente Sergio Mattarella").

Every mention is marked in ``method`` (``fallback:gazetteer``, ``fallback:names``,
``fallback:title``) so consumers can weigh or ignore it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache

from tasks.ner.gazetteer import Gazetteer
from tasks.ner.normalise import LEADING_WORDS, Mention, fold

_TOKEN = re.compile(r"\w+(?:[-'’.]\w+)*", re.UNICODE)
_SENTENCE_END = re.compile(r"[.!?:;»\"“”]\s*$")
MAX_NAME_WORDS = 6


def _words(text: str) -> list[str]:
    return text.split()


#: Titles that precede a person's full name, per language (lower-cased).
TITLES: dict[str, frozenset[str]] = {
    "de": frozenset(
        _words(
            "bundeskanzler bundeskanzlerin kanzler kanzlerin präsident präsidentin "
            "bundespräsident ministerpräsident ministerpräsidentin außenminister außenministerin "
            "innenminister innenministerin finanzminister finanzministerin papst herr frau "
            "trainer bürgermeister bürgermeisterin regierungschef regierungschefin"
        )
    ),
    "es": frozenset(
        _words(
            "presidente presidenta ministro ministra papa señor señora don doña alcalde alcaldesa "
            "rey reina canciller entrenador"
        )
    ),
    "it": frozenset(
        _words(
            "presidente ministro ministra papa signor signora premier sindaco re regina "
            "cancelliere allenatore"
        )
    ),
    "pt": frozenset(_words("presidente ministro ministra papa senhor senhora prefeito rei rainha")),
    "nl": frozenset(_words("premier president minister paus burgemeester koning koningin")),
    "fr": frozenset(_words("président présidente ministre pape maire roi reine")),
    "en": frozenset(_words("president minister pope mayor king queen chancellor")),
}


@dataclass(frozen=True)
class _Token:
    text: str
    start: int
    end: int
    capital: bool
    sentence_start: bool


def tokens(text: str) -> list[_Token]:
    """Word tokens with their offsets, whether capitalised and whether they open a sentence."""
    found: list[_Token] = []
    previous_end = 0
    for match in _TOKEN.finditer(text):
        word = match.group()
        start = match.start()
        if not found:
            opens = True
        elif start - previous_end == 1 and text[previous_end] == " ":
            opens = False  # the common case, decided without a regex
        else:
            between = text[previous_end:start]
            after_initial = len(found[-1].text) == 1 and found[-1].text.isupper()
            opens = "\n" in between or (bool(_SENTENCE_END.search(between)) and not after_initial)
        found.append(_Token(word, start, match.end(), word[:1].isupper(), opens))
        previous_end = match.end()
    return found


class Fallback:
    """Finds mentions in text of a language without a model.

    ``names`` returns the current known-names table (folded name -> (name, label)); it is a
    callable so the table can be refreshed from Redis without rebuilding the fallback.
    """

    def __init__(
        self,
        gazetteer: Gazetteer,
        names: Callable[[], Mapping[str, tuple[str, str]]] | None = None,
    ) -> None:
        self.gazetteer = gazetteer
        self.names = names
        self._stops: dict[str | None, frozenset[str]] = {}

    def _stop_words(self, language: str | None) -> frozenset[str]:
        if language not in self._stops:
            self._stops[language] = stop_words(language)
        return self._stops[language]

    def mentions(self, text: str, language: str | None) -> list[Mention]:
        """Mentions in ``text``, longest match first, never overlapping."""
        words = tokens(text)
        taken = [False] * len(words)
        found: list[Mention] = []
        if self.names is not None:
            known = self.names()
            if known:
                found += self._known_names(text, words, taken, known, language)
        found += self._titles(text, words, taken, language)
        found += self._places(text, words, taken, language)
        return sorted(found, key=lambda mention: mention.start)

    def _known_names(
        self,
        text: str,
        words: list[_Token],
        taken: list[bool],
        known: Mapping[str, tuple[str, str]],
        language: str | None,
    ) -> list[Mention]:
        found = []
        for index in range(len(words)):
            if taken[index] or not words[index].capital:
                continue
            for size in range(min(MAX_NAME_WORDS, len(words) - index), 1, -1):
                last = index + size - 1
                if not words[last].capital or any(taken[index : last + 1]):
                    continue
                span = text[words[index].start : words[last].end]
                hit = known.get(fold(span))
                if hit is None or _glued(words, index, last, self._stop_words(language)):
                    continue
                found.append(Mention(span, hit[1], words[index].start, words[last].end, "fallback:names"))
                taken[index : last + 1] = [True] * size
                break
        return found

    def _titles(
        self, text: str, words: list[_Token], taken: list[bool], language: str | None
    ) -> list[Mention]:
        titles = TITLES.get(language or "", frozenset())
        found = []
        for index, word in enumerate(words[:-2]):
            if word.text.casefold() not in titles:
                continue
            run = index + 1
            while run < len(words) and words[run].capital and not taken[run] and run - index <= 4:
                run += 1
            size = run - index - 1
            if not 2 <= size <= 3 or (run < len(words) and words[run].capital):
                continue
            if any(len(words[k].text) < 2 or words[k].text.isupper() for k in range(index + 1, run)):
                continue
            first, last = words[index + 1], words[run - 1]
            if not _same_line(text, first.start, last.end):
                continue
            found.append(
                Mention(text[first.start : last.end], "PER", first.start, last.end, "fallback:title")
            )
            taken[index + 1 : run] = [True] * size
        return found

    def _places(
        self, text: str, words: list[_Token], taken: list[bool], language: str | None
    ) -> list[Mention]:
        found = []
        index = 0
        while index < len(words):
            matched = 0
            if words[index].capital and not taken[index]:
                for size in range(min(4, len(words) - index), 0, -1):
                    last = index + size - 1
                    if not words[last].capital or any(taken[index : last + 1]):
                        continue
                    span = text[words[index].start : words[last].end]
                    place = self.gazetteer.local(fold(span), language)
                    if (
                        place is None
                        or _glued(words, index, last, self._stop_words(language))
                        or span.isupper()
                    ):
                        continue
                    if place.kind == "city" and _after_article(words, index, language):
                        continue  # "in der Mitte", "il Milan", "el Barcelona": not the city
                    found.append(
                        Mention(
                            span,
                            "LOC",
                            words[index].start,
                            words[last].end,
                            "fallback:gazetteer",
                            key=place.key,
                        )
                    )
                    matched = size
                    break
            index += matched or 1
        return found


#: Words that join a name to a longer one ("Golfo de México", "Università di Oxford",
#: "Delta del Niger", "Tower of London", "Staatsbibliothek zu Berlin").
CONNECTORS = frozenset(
    _words("de di del della dello dei degli delle des du da do dos das of von vom zu zum zur d l")
)


def _glued(words: list[_Token], first: int, last: int, stop_words: frozenset[str] = frozenset()) -> bool:
    """Whether the span is part of a longer name, so matching it alone would be wrong.

    It is when a capitalised word touches it ("Borussia Dortmund", "Manchester City"), when a
    connector joins it to one ("Golfo de México", "Delta del Niger"), or when a number
    follows ("Hannover 96"). A capitalised function word opening the sentence ("In Berlin")
    does not count.
    """
    if not words[first].sentence_start and first > 0:
        previous = words[first - 1]
        if previous.capital and not (previous.sentence_start and previous.text.casefold() in stop_words):
            return True
        if previous.text.casefold() in CONNECTORS and first > 1 and not previous.sentence_start:
            before = words[first - 2]
            if before.capital and not (before.sentence_start and before.text.casefold() in stop_words):
                return True
    if last + 1 < len(words) and not words[last + 1].sentence_start:
        following = words[last + 1]
        if following.capital or following.text[:1].isdigit():
            return True
        if following.text.casefold() in CONNECTORS and last + 2 < len(words):
            beyond = words[last + 2]
            if beyond.capital and not beyond.sentence_start:
                return True
    return False


@lru_cache(maxsize=64)
def stop_words(language: str | None) -> frozenset[str]:
    """spaCy's stop words of ``language`` (function words), empty when spaCy has none."""
    if not language:
        return frozenset()
    try:
        from spacy.util import get_lang_class

        return frozenset(get_lang_class(language).Defaults.stop_words)
    except ImportError:
        return frozenset()


def _after_article(words: list[_Token], index: int, language: str | None) -> bool:
    """Whether an article precedes the word (cities take none; clubs and nouns do)."""
    if index == 0 or words[index].sentence_start:
        return False
    previous = words[index - 1].text.casefold()
    return previous in LEADING_WORDS.get(language or "", ()) or previous in ("l", "d")


def _same_line(text: str, start: int, end: int) -> bool:
    return "\n" not in text[start:end]
