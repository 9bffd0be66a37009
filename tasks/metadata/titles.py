"""The article's headline, chosen by agreement among the page's title statements.

A page states its headline many times (JSON-LD ``headline``, ``og:title``, ``twitter:title``,
``<h1>``, ``<title>``, other ``<meta>`` titles), and each template dresses some of them up with
a site suffix, a kicker or quotation marks. No single source is right on every site, so each
source proposes a title, and the proposal most sources share wins, ties going to JSON-LD, then
Twitter, OpenGraph, ``<h1>`` and ``<title>``. The other title statements in ``<meta>`` vote too
(``title``, ``sailthru.title``, ``parsely-title``, Dublin Core): the more independent sources, the
fewer pages a single template's social headline decides. (A microdata ``itemprop="headline"``
element would cost a scan of the whole tree.)

* The ``<h1>`` source is the headline the page *shows*: the longest heading (``<h1>``-``<h6>``, or
  an element whose ``class``/``id`` says headline or title) that is a run of pieces of a title
  statement, when it is at least as long as the first ``<h1>`` or that ``<h1>`` is the site's
  masthead. Templates of every age give a section or the site's name an ``<h1>`` of its own
  (``Sports``, ``www.example.com``) and the headline another heading, while ``<title>`` names
  the story (``Site - Section - Headline``). Failing any, it is the first ``<h1>``.
* A site suffix (``Headline | Site``, ``Headline - Section - Site``) is cut when another source
  shows the bare headline or when the tail names the site; after a separator without spaces
  (``Headline-SectionㅣSite``) only a short tail ending with the site's name is cut.
  The JSON-LD ``headline`` is the article's headline by definition, so its own tail is cut only
  when it names the site (``Headline - Current news`` stays).
* ``<title>`` is the template's, and more goes there and from any source with its very words
  (never when they are the JSON-LD headline's): the run of its pieces that another source gives
  (``Site - Section - Headline`` with the headline in a heading); else the pieces at either end
  that name the site, by its name or its host (``icExample - Headline`` on icexample.co.uk,
  ``Headline - UPI.com``), with the section labels behind the same separator (``Site : Section :
  Headline``); else, in ``Headline - Section - Section - Site``, the labels after the one piece
  that is not a label. A title statement that is the site's name and nothing else proposes
  nothing.
* A ``<title>`` longer than any headline that holds markup (``BBC--> <script…``) swallowed the
  page through an unclosed comment or tag: only the text before the markup is its own.
* When another source gives the winner's very words with fewer quotation marks
  (``"Quoted lead"… rest`` and ``Quoted lead… rest``), the plainer one is taken: the marks are
  typography some templates add. Straight against curly marks is left to the vote.
* A leading kicker (``Topic: Headline``) is kept: pages show the bare headline in one source and
  the kicker in another both ways, and neither form is the rule. But when two sources put the same
  headline under two kickers with no word in common, the kickers are not part of it and both go.
* A page with no title statement at all (or only its site's name) still shows its headline: the
  first major heading that does not read as a label (``Bookmark with:``, ``Latest news``).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from lxml import etree

from tasks.metadata.sections import is_label
from tasks.metadata.sites import host_labels, name_key
from tasks.metadata.statements import first_text, fold

_TITLE_SEPARATORS = re.compile(r"\s+(?:[|｜·•»–—:-]|::|--)\s*|\s*[|｜：]\s*|\s*(?:--|::)\s*")
#: Separators without spaces (``…커졌다-정치ㅣ한국일보``; ``ㅣ`` is the Hangul letter used as a bar).
_TIGHT_SEPARATORS = re.compile(r"[-–—·•»/ㅣ]")
#: Quotation marks and apostrophes, straight, curly, angled and CJK.
_QUOTES = re.compile(r"[\"'‘’‚‛“”„‟«»‹›「」『』〝〞＂＇]")
_WORDS = re.compile(r"\w+")
#: A kicker before the headline: ``Topic: Headline``, ``Topic - Headline``.
_KICKER_SEPARATOR = re.compile(r"\s*:\s+|\s+[-–—|]\s+")
#: Where a title breaks into pieces: ``Site - Section - Headline``, ``Site > News > Headline``,
#: ``Headline|Site``, ``Site: Headline``. Pieces are matched in runs, so a colon or a dash inside
#: a headline splits nothing for good.
_PIECE_SEPARATORS = re.compile(r"\s+(?:[|｜·•»›>~–—:-]|::|--)\s+|\s*[|｜]\s*|(?<=\S):\s+|\s*(?:--|::)\s*")
#: More pieces than this and a title is a list, not a headline with its site around it.
_MAX_PIECES = 12
#: The fewest pieces of ``Headline - Section - Site`` for its labels to go without the site's name.
_LABEL_RUN_MIN_PIECES = 3
#: A host label shorter than this (``al``, ``tv``) begins or ends too many words to name the site.
_MIN_LABEL_CHARS = 3
#: Markup in a title's text (an unclosed comment or tag made the parser swallow the page).
_MARKUP = re.compile(r"<[!/a-zA-Z]|-->|/>")
_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
#: The headings that may stand for a headline when no title statement gives one.
_MAJOR_HEADINGS = frozenset({"h1", "h2", "h3", "marked"})
#: A ``class`` or ``id`` that marks an element as a headline (``storyheadline``, ``post-title``).
_HEADLINE_CLASS = re.compile(r"headline|title", re.IGNORECASE)
#: Elements that are never a visible headline, whatever their ``class``.
_NOT_SHOWN = frozenset({"html", "head", "body", "title", "meta", "link", "script", "style", "noscript"})
#: A heading with more characters than this is a box around a story, not a headline.
HEADING_MAX_CHARS = 300
#: The candidate that stands in when no title statement proposes anything (see title_sources).
FALLBACK_SOURCE = "heading"

#: Title sources, in the order that breaks a tie between proposals with as many votes.
TITLE_SOURCES = (
    "jsonld",
    "twitter",
    "og",
    "h1",
    "title",
    "meta",
    "sailthru",
    "parsely",
    "dc",
)


def title_pieces(title: str) -> list[tuple[int, int]]:
    """Where each piece of ``title`` starts and ends, split at the separators of a title."""
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _PIECE_SEPARATORS.finditer(title):
        if match.start() > start:
            spans.append((start, match.start()))
        start = match.end()
    if start < len(title):
        spans.append((start, len(title)))
    return spans


def title_runs(title: str) -> list[str]:
    """Every run of consecutive pieces of ``title`` (the whole title too), longest first."""
    spans = title_pieces(title)
    if len(spans) > _MAX_PIECES:
        return [title]
    runs = {
        title[spans[first][0] : spans[last][1]].strip()
        for first in range(len(spans))
        for last in range(first, len(spans))
    }
    return sorted((run for run in runs if run), key=len, reverse=True)


def _names_site(tail: str, site: str) -> bool:
    """``tail`` (lower-cased) is the site's name, maybe with a section or two: ``news - srf``."""
    if not site or not tail:
        return False
    if site in tail:
        return len(_WORDS.findall(tail.replace(site, ""))) <= 2
    return tail in site


@dataclass(frozen=True)
class _Site:
    """What names the page's site in its titles: its name and the labels of its host."""

    name: str  # lower-cased, "" when the page gives none
    labels: tuple[str, ...]  # the host's labels as name_key spells them
    keys: frozenset[str]  # the whole name, each label and the host, as name_key spells them

    @classmethod
    def of(cls, site_name: str | None, url: str | None) -> _Site:
        labels = host_labels(url)
        keys = {name_key(label) for label in labels}
        if labels:  # the registered domain: ``news.example.co.uk`` -> ``examplecouk``
            host = (urlsplit(url or "").hostname or "").lower()
            keys.add(name_key(host[host.rindex(labels[-1] + ".") :]))
        if site_name:
            keys.add(name_key(site_name))
        keys.discard("")
        return cls((site_name or "").lower(), tuple(name_key(label) for label in labels), frozenset(keys))

    def is_named(self, text: str) -> bool:
        """``text`` is the site's name and nothing else: ``TimesLeader.com``, ``www.example.com``."""
        key = name_key(text)
        return bool(key) and (key in self.keys or key.removeprefix("www") in self.keys)

    def named_in(self, piece: str) -> bool:
        """A piece of ``<title>`` names the site: it names it as :func:`_names_site` reads, or
        begins or ends with a label of the host (``icExample`` on icexample.co.uk, ``UPI.com``)."""
        if _names_site(piece.lower(), self.name):
            return True
        key = name_key(piece).removeprefix("www")
        return any(
            len(label) >= _MIN_LABEL_CHARS and (key.startswith(label) or key.endswith(label))
            for label in self.labels
        )


def _cut_site_pieces(title: str, site: _Site) -> str:
    """``title`` without the pieces at its ends that name the site (``Site - Headline``), and
    the section labels behind the same separator (``Site : Section : Headline``, ``Headline -
    Section - Site``). The separator must be the same: ``Site - Section - Kicker: Headline``
    keeps its kicker."""
    spans = title_pieces(title)
    if len(spans) < 2 or len(spans) > _MAX_PIECES:
        return title
    pieces = [title[start:end] for start, end in spans]
    # separators[i] stands between pieces[i] and pieces[i + 1]
    separators = [title[spans[i][1] : spans[i + 1][0]].strip() for i in range(len(spans) - 1)]
    first, last = 0, len(spans) - 1
    while last > first and site.named_in(pieces[last]):
        last -= 1
    if last < len(spans) - 1:
        template = separators[last]
        while last > first and separators[last - 1] == template and is_label(pieces[last]):
            last -= 1
    while first < last and site.named_in(pieces[first]):
        first += 1
    if first > 0:
        template = separators[first - 1]
        while first < last and separators[first] == template and is_label(pieces[first]):
            first += 1
    return title[spans[first][0] : spans[last][1]].strip()


def _cut_label_pieces(title: str) -> str:
    """``Headline - Section - Section - Site`` -> ``Headline``: when every piece but the first is
    a label, all behind one separator, they are the template's (and so, mirrored, for ``Site >
    Section > Headline``). When both ends could be the headline nothing is cut."""
    spans = title_pieces(title)
    if len(spans) < _LABEL_RUN_MIN_PIECES or len(spans) > _MAX_PIECES:
        return title
    pieces = [title[start:end] for start, end in spans]
    separators = {title[spans[i][1] : spans[i + 1][0]].strip() for i in range(len(spans) - 1)}
    if len(separators) != 1 or separators == {":"}:
        return title
    labels_after = all(is_label(piece) for piece in pieces[1:])
    labels_before = all(is_label(piece) for piece in pieces[:-1])
    if labels_after and not labels_before:
        return pieces[0]
    if labels_before and not labels_after:
        return pieces[-1]
    return title


def strip_site_suffix(
    title: str,
    others: Iterable[str],
    site_name: str | None = None,
    *,
    page_title: bool = False,
    url: str | None = None,
) -> str:
    """``Headline | Site`` -> ``Headline``.

    The tail goes when another source shows the bare headline, or when it names the site. Failing
    that, a separator without spaces (``Headline-SectionㅣSite``) cuts off a short tail that ends
    with the site's name: a hyphen or slash in a headline is usually part of a word, so nothing
    less than the site's name will do there.

    ``page_title``: ``title`` is the ``<title>`` element's text, which the template writes around
    the headline, so a run of its pieces that another source gives is taken first, and the site's
    pieces at either end (by ``site_name`` or the host of ``url``) and the section labels go (see
    the module docstring).
    """
    pool = {other for other in others if other and other != title}
    if page_title:
        run = next((run for run in title_runs(title) if run in pool), None)
        if run:
            return run
    site = (site_name or "").lower()
    for match in _TITLE_SEPARATORS.finditer(title):
        head, tail = title[: match.start()].strip(), title[match.end() :].strip().lower()
        if head and (head in pool or _names_site(tail, site)):
            return head
    if page_title:
        cut = _cut_site_pieces(title, _Site.of(site_name, url))
        if cut != title:
            return cut
    if site:
        for match in _TIGHT_SEPARATORS.finditer(title):
            head, tail = title[: match.start()].strip(), title[match.end() :].strip().lower()
            if head and tail.endswith(site) and _names_site(tail, site):
                return head
    return _cut_label_pieces(title) if page_title else title


def _quote_marks(text: str) -> int:
    return len(_QUOTES.findall(text))


def _unquoted(text: str) -> str:
    return " ".join(_QUOTES.sub("", text).split())


def _after_kicker(title: str) -> tuple[str, str] | None:
    match = _KICKER_SEPARATOR.search(title)
    if match is None or match.start() == 0:
        return None
    return title[: match.start()], title[match.end() :]


def _unrelated(kicker: str, other: str) -> bool:
    """No word in common: two topics, not one headline's wording told two ways."""
    return not set(_WORDS.findall(kicker.lower())) & set(_WORDS.findall(other.lower()))


def drop_disputed_kickers(proposals: dict[str, str]) -> dict[str, str]:
    """Two sources with the same headline under different kickers give the bare headline.

    ``Iran attack: «Quote»`` (og:title) against ``Middle East - «Quote»`` (``<h1>``): the sources
    disagree on the kicker and agree on the rest, so the rest is the headline. Kickers that share a
    word (``Joburg has failed: …`` and ``Johannesburg has failed: …``) are one clause worded two
    ways, not two topics, and stay. A kicker that every
    source shows is kept (see the module docstring).
    """
    split = {source: _after_kicker(value) for source, value in proposals.items()}
    bare: set[str] = set()
    for source, parts in split.items():
        for other, other_parts in split.items():
            if source < other and parts and other_parts:
                (kicker, rest), (other_kicker, other_rest) = parts, other_parts
                if rest == other_rest and len(_WORDS.findall(rest)) >= 3 and _unrelated(kicker, other_kicker):
                    bare.add(rest)
    if not bare:
        return proposals
    return {
        source: parts[1] if parts and parts[1] in bare else proposals[source]
        for source, parts in split.items()
    }


def h1_texts(root: etree._Element) -> list[str]:
    """The text of every ``<h1>``, whitespace folded, in page order."""
    return [" ".join(h1.text_content().split()) for h1 in root.iter("h1")]


def page_headings(root: etree._Element) -> list[tuple[str, str]]:
    """Every heading as ``(tag, text)``: ``<h1>``-``<h6>``, and elements whose ``class`` or ``id``
    names a headline or a title (``storyheadline``, ``post-title``; tag ``"marked"``), whitespace
    folded, in page order; the empty and the longer than :data:`HEADING_MAX_CHARS` left out."""
    found = []
    for element in root.iter():
        tag = element.tag
        if not isinstance(tag, str) or tag in _NOT_SHOWN:
            continue
        if tag not in _HEADINGS:
            if not _HEADLINE_CLASS.search(f"{element.get('class') or ''} {element.get('id') or ''}"):
                continue
            tag = "marked"
        text = _short_text(element)
        if text:
            found.append((tag, text))
    return found


def _short_text(element: etree._Element) -> str:
    """The element's text, whitespace folded; ``""`` past :data:`HEADING_MAX_CHARS`, and then read
    no further than ten times as many raw characters (a wrapper round the page is left unread)."""
    parts: list[str] = []
    size = 0
    for part in element.itertext():
        parts.append(part)
        size += len(part)
        if size > 10 * HEADING_MAX_CHARS:
            return ""
    text = " ".join("".join(parts).split())
    return text if len(text) <= HEADING_MAX_CHARS else ""


def visible_headline(
    h1s: list[str],
    headings: Iterable[str],
    statements: Iterable[str],
    site_name: str | None = None,
    url: str | None = None,
) -> str:
    """The headline the page shows: the heading that the title statements agree with.

    The longest heading that is a run of pieces of a title statement, if it is at least as long
    as the first ``<h1>`` (a section label is shorter than the headline) or that ``<h1>`` begins
    with the site's name (a masthead); else the first ``<h1>``.
    """
    first = next((text for text in h1s if text), "")
    runs = {run for statement in statements if statement for run in title_runs(statement)}
    if not runs:
        return first
    spans = title_pieces(first)
    masthead = bool(spans) and _Site.of(site_name, url).is_named(first[spans[0][0] : spans[0][1]])
    shown = [text for text in (first, *headings) if text in runs and (masthead or len(text) >= len(first))]
    return max(shown, key=len) if shown else first


def _page_title(root: etree._Element) -> str:
    """The ``<title>`` element's text, without the page it swallowed (see the module docstring)."""
    element = root.find(".//title")
    title = fold(element.text_content() if element is not None else "")
    markup = _MARKUP.search(title) if len(title) > HEADING_MAX_CHARS else None
    return title[: markup.start()].strip() if markup else title


def title_sources(
    root: etree._Element,
    meta: dict[str, list[str]],
    article: dict[str, Any],
    h1s: list[str] | None = None,
    url: str | None = None,
    site_name: str | None = None,
) -> dict[str, str]:
    """What each source gives as the title, as written (``""`` where a source is silent).

    ``h1s`` (from :func:`h1_texts`) saves a second scan when the caller has them already; ``url``
    and ``site_name`` tell a masthead ``<h1>`` (see :func:`visible_headline`). The entry
    :data:`FALLBACK_SOURCE` does not vote: it is the first major heading that does not read as a
    label, given only when no title statement names more than the site.
    """
    statements = {
        "jsonld": fold(first_text(article.get("headline")) or ""),
        "og": fold(first_text(meta.get("og:title")) or ""),
        "twitter": fold(first_text(meta.get("twitter:title")) or ""),
        "title": _page_title(root),
    }
    shown = page_headings(root)
    h1 = visible_headline(
        h1_texts(root) if h1s is None else h1s,
        (text for _, text in shown),
        statements.values(),
        site_name,
        url,
    )
    site = _Site.of(site_name, url)
    fallback = ""
    if not h1 and all(not value or site.is_named(value) for value in statements.values()):
        fallback = next((text for tag, text in shown if tag in _MAJOR_HEADINGS and not is_label(text)), "")
    return {
        "jsonld": statements["jsonld"],
        "og": statements["og"],
        "twitter": statements["twitter"],
        "h1": fold(h1),
        "title": statements["title"],
        "meta": fold(first_text(meta.get("title")) or ""),
        "sailthru": fold(first_text(meta.get("sailthru.title")) or ""),
        "parsely": fold(first_text(meta.get("parsely-title")) or ""),
        "dc": fold(first_text(meta.get("dc.title"), meta.get("dcterms.title")) or ""),
        FALLBACK_SOURCE: fold(fallback),
    }


def title_proposals(
    candidates: dict[str, str], site_name: str | None, url: str | None = None
) -> dict[str, str]:
    """Each source's title with its site tail and a disputed kicker cut: what goes to the vote.

    A statement that is only the site's name (by ``site_name`` or the host of ``url``) proposes
    nothing, and shows no other source its bare headline.
    """
    site = _Site.of(site_name, url)
    present = {
        source: value
        for source, value in candidates.items()
        if value and source != FALLBACK_SOURCE and not site.is_named(value)
    }
    pool = set(present.values())
    headline = present.get("jsonld")
    proposals = {
        source: strip_site_suffix(
            value,
            () if value == headline else pool,
            site_name,
            page_title=value == present.get("title") and value != headline,
            url=url,
        )
        for source, value in present.items()
    }
    return drop_disputed_kickers(
        {source: value for source, value in proposals.items() if not site.is_named(value)}
    )


def choose_title(candidates: dict[str, str], site_name: str | None, url: str | None = None) -> str | None:
    """The headline most sources agree on (see the module docstring)."""
    proposals = title_proposals(candidates, site_name, url)
    if not proposals:
        return candidates.get(FALLBACK_SOURCE) or None
    votes = Counter(proposals.values())
    best: str | None = None
    for source in TITLE_SOURCES:
        proposal = proposals.get(source)
        if proposal and (best is None or votes[proposal] > votes[best]):
            best = proposal
    if best is None:
        return None
    # The same words with fewer quotation marks: ``"Quoted lead"… rest`` -> ``Quoted lead… rest``.
    key = _unquoted(best)
    for proposal in proposals.values():
        if _quote_marks(proposal) < _quote_marks(best) and _unquoted(proposal) == key:
            best = proposal
    return best
