"""What each source states as the headline, and which heading is the one the page shows.

The title vote (:mod:`tasks.metadata.titles`) needs one candidate per source: JSON-LD
``headline``, ``og:title``, ``twitter:title``, ``<title>``, the other ``<meta>`` titles
(``title``, ``sailthru.title``, ``parsely-title``, Dublin Core) and the visible headline. The
statements are read as written; reading the visible one takes a walk over the page's headings,
and that is this module's job. (A microdata ``itemprop="headline"`` element would cost a scan of
the whole tree.)

* The ``<h1>`` source is the headline the page *shows*: the longest heading (``<h1>``-``<h6>``, or
  an element whose ``class``/``id`` says headline or title) that is a run of pieces of a title
  statement (:func:`~tasks.metadata.title_template.title_runs`), when it is at least as long as
  the first ``<h1>`` or that ``<h1>`` is the site's masthead. Templates of every age give a
  section or the site's name an ``<h1>`` of its own (``Sports``, ``www.example.com``) and the
  headline another heading, while ``<title>`` names the story (``Site - Section - Headline``).
  Failing any, it is the first ``<h1>``.
* A ``<title>`` longer than any headline that holds markup (``BBC--> <script…``) swallowed the
  page through an unclosed comment or tag: only the text before the markup is its own.
* A page with no title statement at all (or only its site's name) still shows its headline: the
  first major heading that does not read as a label (``Bookmark with:``, ``Latest news``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from lxml import etree

from tasks.metadata.sections import is_label
from tasks.metadata.statements import first_text, fold
from tasks.metadata.title_template import TitleSite, title_pieces, title_runs

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
    masthead = bool(spans) and TitleSite.of(site_name, url).is_named(first[spans[0][0] : spans[0][1]])
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
    site = TitleSite.of(site_name, url)
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
