"""The section the article is filed under (``article:section``, JSON-LD ``articleSection``).

A section is a short label: ``Politics``, ``UK News``, ``Aerospace & Defense``, ``국제``. Some
templates fill ``article:section`` with the headline instead (the same sentence as ``og:title``,
quotation marks and all), and a headline in the section field is wrong for every consumer that
groups or filters by section. So each candidate, in the order of trust, is judged by its shape,
never by the site it comes from, and the first that looks like a label is taken. A value is not
a label when it

* is the page's title or description (from three words on: a section front may be titled with
  its own short label, ``Sport``, and that label is still the section);
* has more than :data:`MAX_WORDS` words or :data:`MAX_CHARS` characters;
* holds quotation marks, or ends a sentence (``… insieme». Il …``, ``… today!``). A full stop
  after a single letter is an abbreviation (``U.S.``) and does not count.

When no candidate looks like a label the page has no section: a headline is not a better
answer than none.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from tasks.metadata.statements import fold, texts

#: The most words a section label has (``Arts & Entertainment / Books & Literature`` has five).
MAX_WORDS = 5
#: The most characters a section label has.
MAX_CHARS = 60
#: From this many words on, a value equal to the title or the description is that, not a label.
_SAME_AS_TEXT_WORDS = 3
_WORDS = re.compile(r"\w+")
#: Quotation marks (apostrophes excepted: ``Editors’ Picks``, ``Women's Sport``).
_QUOTES = re.compile(r"[\"«»“”„‟‹›「」『』〝〞＂]")
#: The end of a sentence: a word of two letters or more, maybe a closing mark, then ``.!?…``
#: followed by a space or the end (``U.S.`` is an abbreviation, not a sentence).
_SENTENCE_END = re.compile(r"\w{2,}[\"»”’)]*[.!?…。！？](?:\s|$)|[!?…。！？]$")


def _key(text: str) -> str:
    return fold(text).casefold()


def is_label(value: str, texts_of_page: Iterable[str] = ()) -> bool:
    """Whether ``value`` is shaped like a section label (see the module docstring).

    ``texts_of_page`` are the page's title statements and description: a section that repeats
    one of them is a headline or a teaser, not a label.
    """
    words = _WORDS.findall(value)
    if not words or len(words) > MAX_WORDS or len(value) > MAX_CHARS:
        return False
    if _QUOTES.search(value) or _SENTENCE_END.search(value):
        return False
    if len(words) >= _SAME_AS_TEXT_WORDS:
        key = _key(value)
        return all(_key(text) != key for text in texts_of_page if text)
    return True


def choose_section(candidates: Iterable[Any], texts_of_page: Iterable[str] = ()) -> str | None:
    """The first candidate (``article:section`` values, then ``articleSection``) that is a label."""
    page_texts = [text for text in texts_of_page if text]
    for value in candidates:
        for text in texts(value):
            cleaned = fold(text)
            if cleaned and is_label(cleaned, page_texts):
                return cleaned
    return None
