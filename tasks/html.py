"""Cheap reads of a page's HTML with lxml and selectolax (a bs4 parse costs as much as trafilatura).

The page arrives as ``str`` (decoded by :mod:`tasks.decoding`); it is handed to lxml as UTF-8
bytes with the encoding stated, so a stale ``<meta charset>`` in the page can never make
lxml decode it a second time (mojibake such as ``GÃ¤rten``).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import lxml.html
from lxml import etree
from selectolax.lexbor import LexborHTMLParser, LexborNode

from tasks.page_guard import CpuGuard

_PARSERS = threading.local()  # an lxml parser must not be used by two threads at once
_TEXT_SELECTOR = "p, h2, h3, li, blockquote"
#: Containers whose text is never the article: page chrome and consent banners.
_CHROME_TAGS = frozenset({"header", "footer", "nav", "aside", "form", "button", "figcaption", "noscript"})
_CHROME_WORDS = ("cookie", "consent", "gdpr", "privacy", "newsletter", "banner", "modal", "popup")
_MARKER_SPLIT = re.compile(r"[^a-z]+")
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
#: Paragraphs shorter than this are menus, buttons and labels.
MIN_PARAGRAPH_CHARS = 40


@dataclass(frozen=True)
class PageSketch:
    """What the language stage needs from a page, without extracting the article."""

    declared_language: str | None
    title: str | None
    text_sample: str


def parse(html: str) -> etree._Element | None:
    """The lxml tree of ``html``, or None for an empty or unparseable page."""
    if not html or not html.strip():
        return None
    parser = getattr(_PARSERS, "parser", None)
    if parser is None:
        parser = _PARSERS.parser = lxml.html.HTMLParser(encoding="utf-8", remove_comments=True)
    try:
        root = lxml.html.document_fromstring(html.encode("utf-8", "surrogatepass"), parser=parser)
    except (etree.ParserError, ValueError, UnicodeError):
        return None
    return root if root is not None and len(root) else None


def declared_language(root: etree._Element) -> str | None:
    """The page's own language tag: ``<html lang>``, ``xml:lang`` or Content-Language / og:locale."""
    tag = root.get("lang") or root.get(_XML_LANG)
    if not tag:
        for meta in root.iterfind(".//head/meta"):
            key = (meta.get("http-equiv") or meta.get("property") or meta.get("name") or "").lower()
            if key in ("content-language", "og:locale", "language", "dc.language"):
                tag = meta.get("content")
                if tag:
                    break
    return tag.strip() if tag and tag.strip() else None


def iter_jsonld(root: etree._Element) -> Iterator[dict[str, Any]]:
    """Every JSON-LD object of the page, ``@graph`` members, ``mainEntity`` and lists flattened."""
    for script in root.iterfind(".//script[@type='application/ld+json']"):
        yield from jsonld_objects(script.text or "")


def jsonld_objects(raw: str) -> Iterator[dict[str, Any]]:
    """The objects of one JSON-LD block, ``@graph`` members and nested lists flattened.

    A ``WebPage``'s ``mainEntity`` (the article a page is about) comes right after its page.

    Pages often hold slightly broken JSON-LD (raw newlines in strings, HTML entities); a block
    that json cannot read with ``strict=False`` is skipped, never fatal.
    """
    raw = raw.strip()
    if not raw:
        return
    try:
        data = json.loads(raw, strict=False)
    except ValueError:
        return
    stack: list[Any] = [data]
    while stack:
        item = stack.pop(0)
        if isinstance(item, list):
            stack[0:0] = item
        elif isinstance(item, dict):
            yield item
            for key in ("mainEntity", "@graph"):
                nested = item.get(key)
                if isinstance(nested, (dict, list)):
                    stack.insert(0, nested)


def marker_words(element: etree._Element, with_id: bool = True) -> set[str]:
    """The lower-case words of an element's ``class`` (and ``id``): ``e-byline__author`` gives
    ``{"e", "byline", "author"}``. Words, not substrings: ``biology`` is not ``bio``."""
    marker = element.get("class") or ""
    if with_id:
        marker = f"{marker} {element.get('id') or ''}"
    return set(_MARKER_SPLIT.split(marker.lower())) - {""}


def _marks_chrome(tag: str, marker: str) -> bool:
    """Whether one element (its tag, its ``class`` and ``id``) is page chrome by itself."""
    if tag in _CHROME_TAGS:
        return True
    marker = marker.lower()
    return bool(marker.strip()) and any(word in marker for word in _CHROME_WORDS)


def is_chrome(element: etree._Element, memo: dict[etree._Element, bool] | None = None) -> bool:
    """True inside header/footer/nav/aside/forms or a cookie/consent/newsletter container.

    Pass the same ``memo`` for many elements of one tree: each ancestor is then judged once,
    so testing every element of a deep page costs O(elements), not O(elements x depth).
    """
    memo = {} if memo is None else memo
    path: list[etree._Element] = []
    node: etree._Element | None = element
    found = False
    while node is not None:
        known = memo.get(node)
        if known is not None:
            found = known
            break
        tag = node.tag if isinstance(node.tag, str) else ""
        if _marks_chrome(tag, f"{node.get('class') or ''} {node.get('id') or ''}"):
            found = True
            memo[node] = True
            break
        path.append(node)
        node = node.getparent()
    for below in path:  # every element on the way up has the answer of the first one that knew
        memo[below] = found
    return found


def _node_is_chrome(node: LexborNode, memo: dict[int, bool]) -> bool:
    """:func:`is_chrome` for a selectolax node (``memo`` keyed by node address)."""
    path: list[int] = []
    current: LexborNode | None = node
    found = False
    while current is not None and current.tag not in ("html", "-undef"):
        address = current.mem_id
        known = memo.get(address)
        if known is not None:
            found = known
            break
        attributes = current.attributes
        if _marks_chrome(current.tag or "", f"{attributes.get('class') or ''} {attributes.get('id') or ''}"):
            found = True
            memo[address] = True
            break
        path.append(address)
        current = current.parent
    for address in path:
        memo[address] = found
    return found


def _paragraphs(containers: list[LexborNode], max_chars: int, guard: CpuGuard | None) -> str:
    parts: list[str] = []
    size = 0
    seen: set[str] = set()
    chrome: dict[int, bool] = {}
    for container in containers:
        for count, node in enumerate(container.css(_TEXT_SELECTOR)):
            if guard is not None and not count % 256:
                guard.check("language sample")
            if _node_is_chrome(node, chrome):
                continue
            text = " ".join(node.text(separator="").split())
            if len(text) < MIN_PARAGRAPH_CHARS or text in seen:
                continue
            seen.add(text)
            parts.append(text)
            size += len(text) + 1
            if size >= max_chars:
                return " ".join(parts)[:max_chars]
    return " ".join(parts)[:max_chars]


def sketch(html: str, max_chars: int, guard: CpuGuard | None = None) -> PageSketch:
    """The declared language, the ``<title>`` and up to ``max_chars`` of article-like text.

    JSON-LD ``articleBody`` is the publisher's own statement of the article text; when the
    page has one it is the sample, otherwise paragraphs of the article container
    (``<article>``, ``<main>``, ``itemprop=articleBody``) are, or of the whole page when it
    has none; headers, footers, navigation and consent banners are skipped. Parsed with
    selectolax (lexbor), about twice as fast as lxml for this read-only pass.
    """
    if not html or not html.strip():
        return PageSketch(None, None, "")
    tree = LexborHTMLParser(html)
    html_node = tree.css_first("html")
    declared = None
    if html_node is not None:
        declared = html_node.attributes.get("lang") or html_node.attributes.get("xml:lang")
    if not declared:
        for meta in tree.css("meta"):
            attributes = meta.attributes
            name = attributes.get("http-equiv") or attributes.get("property") or attributes.get("name") or ""
            if name.lower() in ("content-language", "og:locale", "language", "dc.language"):
                declared = attributes.get("content")
                if declared:
                    break
    title_node = tree.css_first("title")
    title = " ".join(title_node.text().split()) if title_node is not None else None
    sample = ""
    for script in tree.css('script[type="application/ld+json"]'):
        for item in jsonld_objects(script.text()):
            body = item.get("articleBody")
            if isinstance(body, str) and len(body) >= MIN_PARAGRAPH_CHARS and "<" not in body[:200]:
                sample = " ".join(body[: max_chars * 2].split())[:max_chars]
                break
        if sample:
            break
    if not sample:
        tree.strip_tags(["script", "style", "template", "noscript"])
        scopes = tree.css('article, main, [itemprop="articleBody"]')
        sample = _paragraphs(scopes, max_chars, guard) if scopes else ""
        if len(sample) < max_chars // 4 and tree.body is not None:
            sample = _paragraphs([tree.body], max_chars, guard) or sample
    declared = declared.strip() if declared and declared.strip() else None
    return PageSketch(declared_language=declared, title=title or None, text_sample=sample)
