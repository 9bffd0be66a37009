"""The article's headline, chosen by agreement among the page's title statements.

A page states its headline many times (JSON-LD ``headline``, ``og:title``, ``twitter:title``,
``<h1>``, ``<title>``, other ``<meta>`` titles), and each template dresses some of them up with
a site suffix, a kicker or quotation marks. No single source is right on every site, so each
source proposes a title, and the proposal most sources share wins, ties going to JSON-LD, then
Twitter, OpenGraph, ``<h1>`` and ``<title>``. The other title statements in ``<meta>`` vote too
(``title``, ``sailthru.title``, ``parsely-title``, Dublin Core): the more independent sources, the
fewer pages a single template's social headline decides.

The vote's own rules:

* A title statement that is the site's name and nothing else proposes nothing.
* When another source gives the winner's very words with fewer quotation marks
  (``"Quoted lead"… rest`` and ``Quoted lead… rest``), the plainer one is taken: the marks are
  typography some templates add. Straight against curly marks is left to the vote.
* A leading kicker (``Topic: Headline``) is kept: pages show the bare headline in one source and
  the kicker in another both ways, and neither form is the rule. But when two sources put the same
  headline under two kickers with no word in common, the kickers are not part of it and both go.

What comes before the vote has a module of its own, and its public names are re-exported here,
where callers import them from:

* :mod:`~tasks.metadata.headlines`: what each source states, and which heading the page shows
  as its headline (:func:`title_sources`, :func:`h1_texts`);
* :mod:`~tasks.metadata.title_template`: the cutting of what the template wrote around the
  headline, the site's name and its section labels (:func:`strip_site_suffix`).
"""

from __future__ import annotations

import re
from collections import Counter

from tasks.metadata.headlines import (
    FALLBACK_SOURCE,
    HEADING_MAX_CHARS,
    h1_texts,
    page_headings,
    title_sources,
    visible_headline,
)
from tasks.metadata.title_template import TitleSite, strip_site_suffix, title_pieces, title_runs

__all__ = [
    "FALLBACK_SOURCE",
    "HEADING_MAX_CHARS",
    "TITLE_SOURCES",
    "choose_title",
    "drop_disputed_kickers",
    "h1_texts",
    "page_headings",
    "strip_site_suffix",
    "title_pieces",
    "title_proposals",
    "title_runs",
    "title_sources",
    "visible_headline",
]

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


def title_proposals(
    candidates: dict[str, str], site_name: str | None, url: str | None = None
) -> dict[str, str]:
    """Each source's title with its site tail and a disputed kicker cut: what goes to the vote.

    A statement that is only the site's name (by ``site_name`` or the host of ``url``) proposes
    nothing, and shows no other source its bare headline.
    """
    site = TitleSite.of(site_name, url)
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
