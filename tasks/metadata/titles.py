"""The article's headline, chosen by agreement among the page's title statements.

A page states its headline many times (JSON-LD ``headline``, ``og:title``, ``twitter:title``,
``<h1>``, ``<title>``, other ``<meta>`` titles), and each template dresses some of them up with
a site suffix, a kicker or quotation marks. No single source is right on every site, so each
source proposes a title, and the proposal most sources share wins, ties going to JSON-LD, then
Twitter, OpenGraph, ``<h1>`` and ``<title>``. The other title statements in ``<meta>`` vote too
(``title``, ``sailthru.title``, ``parsely-title``, Dublin Core): the more independent sources, the
fewer pages a single template's social headline decides. (A microdata ``itemprop="headline"``
element would cost a scan of the whole tree.)

* A site suffix (``Headline | Site``, ``Headline - Section - Site``) is cut when another source
  shows the bare headline or when the tail names the site; after a separator without spaces
  (``Headline-SectionㅣSite``) only a short tail ending with the site's name is cut.
  The JSON-LD ``headline`` is the article's headline by definition, so its own tail is cut only
  when it names the site (``Headline - Current news`` stays).
* When another source gives the winner's very words with fewer quotation marks
  (``"Quoted lead"… rest`` and ``Quoted lead… rest``), the plainer one is taken: the marks are
  typography some templates add. Straight against curly marks is left to the vote.
* A leading kicker (``Topic: Headline``) is kept: pages show the bare headline in one source and
  the kicker in another both ways, and neither form is the rule. But when two sources put the same
  headline under two kickers with no word in common, the kickers are not part of it and both go.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

from lxml import etree

from tasks.metadata.statements import first_text, fold

_TITLE_SEPARATORS = re.compile(r"\s+(?:[|｜·•»–—:-]|::|--)\s*|\s*[|｜：]\s*|\s*(?:--|::)\s*")
#: Separators without spaces (``…커졌다-정치ㅣ한국일보``; ``ㅣ`` is the Hangul letter used as a bar).
_TIGHT_SEPARATORS = re.compile(r"[-–—·•»/ㅣ]")
#: Quotation marks and apostrophes, straight, curly, angled and CJK.
_QUOTES = re.compile(r"[\"'‘’‚‛“”„‟«»‹›「」『』〝〞＂＇]")
_WORDS = re.compile(r"\w+")
#: A kicker before the headline: ``Topic: Headline``, ``Topic - Headline``.
_KICKER_SEPARATOR = re.compile(r"\s*:\s+|\s+[-–—|]\s+")

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


def _names_site(tail: str, site: str) -> bool:
    """``tail`` (lower-cased) is the site's name, maybe with a section or two: ``news - srf``."""
    if not site or not tail:
        return False
    if site in tail:
        return len(_WORDS.findall(tail.replace(site, ""))) <= 2
    return tail in site


def strip_site_suffix(title: str, others: Iterable[str], site_name: str | None = None) -> str:
    """``Headline | Site`` -> ``Headline``.

    The tail goes when another source shows the bare headline, or when it names the site. Failing
    that, a separator without spaces (``Headline-SectionㅣSite``) cuts off a short tail that ends
    with the site's name: a hyphen or slash in a headline is usually part of a word, so nothing
    less than the site's name will do there.
    """
    pool = {other for other in others if other and other != title}
    site = (site_name or "").lower()
    for match in _TITLE_SEPARATORS.finditer(title):
        head, tail = title[: match.start()].strip(), title[match.end() :].strip().lower()
        if head and (head in pool or _names_site(tail, site)):
            return head
    if site:
        for match in _TIGHT_SEPARATORS.finditer(title):
            head, tail = title[: match.start()].strip(), title[match.end() :].strip().lower()
            if head and tail.endswith(site) and _names_site(tail, site):
                return head
    return title


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


def title_sources(
    root: etree._Element,
    meta: dict[str, list[str]],
    article: dict[str, Any],
    h1s: list[str] | None = None,
) -> dict[str, str]:
    """What each source gives as the title, as written (``""`` where a source is silent).

    ``h1s`` (from :func:`h1_texts`) saves a second scan when the caller has them already.
    """
    h1 = next((text for text in (h1_texts(root) if h1s is None else h1s) if text), "")
    title_element = root.find(".//title")
    return {
        "jsonld": fold(first_text(article.get("headline")) or ""),
        "og": fold(first_text(meta.get("og:title")) or ""),
        "twitter": fold(first_text(meta.get("twitter:title")) or ""),
        "h1": fold(h1),
        "title": fold(title_element.text_content() if title_element is not None else ""),
        "meta": fold(first_text(meta.get("title")) or ""),
        "sailthru": fold(first_text(meta.get("sailthru.title")) or ""),
        "parsely": fold(first_text(meta.get("parsely-title")) or ""),
        "dc": fold(first_text(meta.get("dc.title"), meta.get("dcterms.title")) or ""),
    }


def title_proposals(candidates: dict[str, str], site_name: str | None) -> dict[str, str]:
    """Each source's title with its site tail and a disputed kicker cut: what goes to the vote."""
    present = {source: value for source, value in candidates.items() if value}
    pool = set(present.values())
    headline = present.get("jsonld")
    proposals = {
        source: strip_site_suffix(value, () if value == headline else pool, site_name)
        for source, value in present.items()
    }
    return drop_disputed_kickers(proposals)


def choose_title(candidates: dict[str, str], site_name: str | None) -> str | None:
    """The headline most sources agree on (see the module docstring)."""
    proposals = title_proposals(candidates, site_name)
    if not proposals:
        return None
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
