"""Cheap reads of a page's HTML with lxml (about 7 ms a page, 15x faster than bs4)."""

from __future__ import annotations

from dataclasses import dataclass

import lxml.html
from lxml import etree

_TEXT_TAGS = ("p", "h1", "h2", "h3", "li", "blockquote")


@dataclass(frozen=True)
class PageSketch:
    """What the language stage needs from a page, without extracting the article."""

    declared_language: str | None
    title: str | None
    text_sample: str


def parse(html: str) -> etree._Element | None:
    """The lxml tree of ``html``, or None for an empty or unparseable page."""
    if not html.strip():
        return None
    try:
        return lxml.html.document_fromstring(html.encode("utf-8"))
    except (etree.ParserError, ValueError):
        return None


def sketch(html: str, max_chars: int) -> PageSketch:
    """The declared language, the ``<title>`` and up to ``max_chars`` of paragraph text."""
    root = parse(html)
    if root is None:
        return PageSketch(None, None, "")
    declared = root.get("lang") or root.get("{http://www.w3.org/XML/1998/namespace}lang")
    if not declared:
        metas = root.xpath(
            "//meta[translate(@http-equiv,'CONTENT-LANGUAGE','content-language')='content-language']/@content"
        )
        declared = metas[0] if metas else None
    titles = root.xpath("//title/text()")
    title = " ".join(titles[0].split()) if titles else None
    parts: list[str] = []
    size = 0
    for element in root.iter(*_TEXT_TAGS):
        text = " ".join(element.text_content().split())
        if len(text) < 40:  # menus, buttons and labels are short
            continue
        parts.append(text)
        size += len(text) + 1
        if size >= max_chars:
            break
    return PageSketch(
        declared_language=declared.strip() if declared else None,
        title=title,
        text_sample=" ".join(parts)[:max_chars],
    )
