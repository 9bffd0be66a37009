"""Line-level cleaning of an extractor's output: what trafilatura lets through, taken out.

Every rule here is about the *shape* of a line and the page it came from, never about a
publisher: a line that is the headline again, a byline or a bare date at the top; a line
whose whole text is a link (related stories, "read more"), or a short label and a link
(``Read also: <linked headline>``); a short line the page repeats
(share buttons, "advertisement" labels); template debris (``la boite:91290:box``,
``tpl:..._playlist.tpl:file``); and, at the head and the tail of the text, lines that are
not prose (menus, "Share", "Most read", credits). Short lines *between* prose paragraphs
are kept: those are the article's sub-headings.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from tasks.metadata import AGENCIES

_WORD = re.compile(r"\w+")
#: Soft hyphen, zero-width space, non-joiner, joiner, word joiner: formatting, not letters.
_INVISIBLE_IN_WORDS = re.compile("[\u00ad\u200b\u200c\u200d\u2060]")
_LIST_MARK = re.compile(r"^\s*(?:[-•*·▪►»>]|\d+[.)])\s+")
_SENTENCE_END = re.compile(r"[.!?…。！？:;\"'»”’)\]]\s*$")
_TEMPLATE_DEBRIS = re.compile(r"\b\w+:\d+:\w+\b|\.tpl\b|[{}]|\b(?:tpl|div|span|src|href)\s*[:=]")
_DATE_LINE = re.compile(
    r"^\W*(?:\d{1,4}[./-]\d{1,2}[./-]\d{1,4}|\d{1,2}\.?\s+\w+\.?\s+\d{4}|\w+\.?\s+\d{1,2},?\s+\d{4})"
    r"(?:\W+\d{1,2}[:.h]\d{2}(?:\s*\w{1,3})?)?\W*$",
)
#: An e-mail address or a copyright notice: contact boxes and credits, not article text.
_CONTACT_OR_CREDIT = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+|[©ⓒ]|^\W*copyright\b", re.IGNORECASE)
#: The word alone marks a credit only in a line that is not a sentence ("Copyright: AFP").
_COPYRIGHT_WORD = re.compile(r"\bcopyright\b", re.IGNORECASE)
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")
#: Wire agencies' names as lines: a credit on a line of its own is a byline, not text.
_AGENCY_KEYS = frozenset(" ".join(_WORD.findall(name)) for name in AGENCIES)
#: A line this long (characters) is prose whatever its punctuation.
PROSE_CHARS = 120
#: Lines with fewer words than this are labels, buttons or headings, unless CJK.
PROSE_WORDS = 8
#: What a line that is not prose costs the run of paragraphs it sits in (plus half its length).
NON_PROSE_PENALTY = 40
#: What a line already recognised as chrome costs the run (it is removed in any case).
CHROME_PENALTY = 10
#: A CJK character carries about as much text as three Latin ones.
CJK_WEIGHT = 3.0
#: Lines at the top (headline, kicker, byline, date) checked against the page's metadata.
HEAD_LINES = 5


def key(text: str) -> str:
    """Case- and punctuation-blind form of a line, for comparisons.

    Invisible characters inside words (soft hyphens, zero-width spaces and joiners) are dropped
    first: ``fyr\u00adir`` in the page and ``fyrir`` in the extracted text are one word.
    """
    if _INVISIBLE_IN_WORDS.search(text):  # rare: searching first is cheaper than always replacing
        text = _INVISIBLE_IN_WORDS.sub("", text)
    return " ".join(_WORD.findall(text.casefold()))


def compact(text: str) -> str:
    """:func:`key` without spaces: ``A<br>B`` read as ``AB`` and the lines ``A``, ``B`` compare equal."""
    return key(text).replace(" ", "")


@dataclass(frozen=True)
class PageContext:
    """What the cleaner knows about the page besides the extracted lines."""

    titles: tuple[str, ...] = ()
    authors: tuple[str, ...] = ()
    link_texts: frozenset[str] = field(default_factory=frozenset)
    captions: frozenset[str] = field(default_factory=frozenset)
    long_links: str = ""


def is_prose(line: str) -> bool:
    """A sentence-like paragraph rather than a label, a menu entry or a heading."""
    if _CJK.search(line):
        return len(line) >= 25 or (len(line) >= 8 and line.endswith(("。", "！", "？", "다.")))
    if len(line) >= PROSE_CHARS:
        return True
    return len(_WORD.findall(line)) >= PROSE_WORDS and bool(_SENTENCE_END.search(line))


def _is_title_line(line_key: str, title_keys: list[str]) -> bool:
    for title in title_keys:
        if line_key == title:
            return True
        if title in line_key and len(line_key) <= len(title) + 60:
            return True
        if line_key in title and len(line_key) >= 0.6 * len(title):
            return True
    return False


def _is_byline(line_key: str, author_keys: list[str]) -> bool:
    if not line_key or len(line_key.split()) > 12:
        return False
    return any(author and author in line_key for author in author_keys)


def clean_lines(lines: Iterable[str], context: PageContext) -> list[str]:
    """The article's paragraphs with page chrome removed (see the module docstring)."""
    items = [" ".join(line.split()) for line in lines]
    items = [line for line in items if line and _WORD.search(line)]
    keys = [key(_LIST_MARK.sub("", line)) for line in items]
    counts = Counter(k for k, line in zip(keys, items, strict=True) if not is_prose(line))
    title_keys = [k for k in (key(title) for title in context.titles) if len(k) >= 10]
    author_keys = [k for k in (key(author) for author in context.authors) if len(k) >= 3]
    chrome = [False] * len(items)
    seen_text = False
    for index, (line, line_key) in enumerate(zip(items, keys, strict=True)):
        chrome[index] = _is_chrome(line, line_key, context, counts)
        if not chrome[index] and index < HEAD_LINES and not seen_text:
            chrome[index] = (
                _is_title_line(line_key, title_keys)
                or _is_byline(line_key, author_keys)
                or bool(_DATE_LINE.match(line))
            )
        seen_text = seen_text or not chrome[index]
    start, end = _prose_run(items, chrome)
    return [line for line, junk in zip(items[start:end], chrome[start:end], strict=True) if not junk]


def _is_chrome(line: str, line_key: str, context: PageContext, counts: Counter[str]) -> bool:
    """Page furniture wherever it stands: links, captions, credits, debris, repeated labels."""
    prose = is_prose(line)
    words = len(line_key.split())
    return (
        (not prose and bool(_TEMPLATE_DEBRIS.search(line)))
        or (words < 30 and line_key in context.link_texts)
        or _is_labelled_link(line, context.link_texts)  # "Read also: <a linked headline>"
        or (words >= 4 and line_key in context.long_links)  # part of a teaser that is one link
        or (words < 40 and bool(_CONTACT_OR_CREDIT.search(line)))
        or (not prose and bool(_COPYRIGHT_WORD.search(line)))
        or line_key in context.captions
        or line_key in _AGENCY_KEYS  # a credit line: "Agence France-Presse", "dpa"
        or (not prose and counts[line_key] > 1)
    )


#: A short label before a colon: ``Read also:``, ``Les også:``, ``LIRE AUSSI :``.
_LABEL = re.compile(r"^\W*((?:\w+\W+){0,2}\w+)\s*:\s*(.+)$")


def _is_labelled_link(line: str, link_texts: frozenset[str]) -> bool:
    """A label of at most three words, a colon, and then one whole link: a teaser, whatever the language."""
    match = _LABEL.match(line)
    if match is None:
        return False
    linked = key(match.group(2))
    return linked in link_texts and len(linked.split()) >= 3


def _prose_run(lines: list[str], chrome: list[bool]) -> tuple[int, int]:
    """The densest run of prose: page chrome before and after the article cut off.

    Each prose line counts its length, any other line a penalty (a maximum-subarray
    search), so sub-headings between paragraphs stay while a block of buttons, labels,
    links and teasers separating a stray caption or a footer from the article ends the run.
    Lines already known to be chrome (and removed anyway) cost a little: a caption, a link
    and an ad label inside the article must not cut it in two.
    """
    best_sum, best = 0.0, (0, len(lines))
    run_sum, run_start = 0.0, 0
    for index, line in enumerate(lines):
        weight: float
        if chrome[index]:
            weight = -CHROME_PENALTY
        elif is_prose(line):
            weight = float(len(line)) * (CJK_WEIGHT if _CJK.search(line) else 1.0)
        else:
            weight = -(NON_PROSE_PENALTY + min(len(line), 200) / 2)
        if run_sum <= 0:
            run_sum, run_start = 0.0, index
        run_sum += weight
        if run_sum > best_sum:
            best_sum, best = run_sum, (run_start, index + 1)
    return best


def add_lead(lines: list[str], description: str | None, shown: Callable[[str], bool]) -> list[str]:
    """Put the page's visible teaser (its description) first when the extractor missed it.

    Many pages print the teaser above the body in a separate block that extractors skip.
    It is added only when it is prose, ``shown`` on the page (not just in ``<meta>``), and
    no line of the text already holds it.
    """
    description = " ".join((description or "").split())
    if not description or not is_prose(description) or not lines:
        return lines
    description_key = key(description)
    if len(description_key) < 40:
        return lines
    probe = description_key[:60]
    compact_probe = probe.replace(" ", "")  # also when the text runs it on without a space, or over lines
    if any(probe in key(line) for line in lines) or compact_probe in "".join(map(compact, lines)):
        return lines
    if not shown(description_key):
        return lines
    return [description, *lines]
