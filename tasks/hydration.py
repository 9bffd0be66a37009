"""Article HTML carried in a script-rendered page's hydration data.

Pages built with React frameworks (Next.js ``__NEXT_DATA__`` and ``self.__next_f.push``
flight data, Nuxt, and similar) often render the article in the browser: the served DOM
has no paragraphs, but the article's HTML travels as a JSON string inside a ``<script>``.
When the extractor finds no text, this module finds that string (the JSON string literal
holding the most ``<p>`` paragraphs) and returns its paragraphs.
"""

from __future__ import annotations

import contextlib
import json
import re

import lxml.html
from lxml import etree

#: A JSON string literal that holds a paragraph tag, raw (``<p``) or escaped (``\\u003cp``).
_HTML_STRING = re.compile(r'"((?:[^"\\]|\\.){0,200000}?(?:<p[\s>]|\\u003cp[\s>\\])(?:[^"\\]|\\.)*)"')
_PARAGRAPH = re.compile(r"<p[\s>]", re.IGNORECASE)
_BLOCKS = ("p", "h2", "h3", "h4", "li", "blockquote")
#: At least this many paragraphs before a string counts as an article.
MIN_PARAGRAPHS = 3


def _decoded_strings(script_text: str) -> list[str]:
    """JSON string literals with paragraphs, decoded once or twice (flight data nests JSON in JS)."""
    found: list[str] = []
    texts = [script_text]
    stripped = script_text.strip()
    if stripped.startswith("self.__next_f.push(") and stripped.endswith(")"):
        with contextlib.suppress(ValueError):  # not JSON after all: scan the raw script
            texts = [str(part) for part in json.loads(stripped[len("self.__next_f.push(") : -1])]
    for text in texts:
        for match in _HTML_STRING.finditer(text):
            try:
                value = json.loads(f'"{match.group(1)}"')
            except ValueError:
                continue
            if isinstance(value, str):
                found.append(value)
    return found


def hydration_paragraphs(root: etree._Element) -> list[str]:
    """Paragraph texts of the article HTML embedded in the page's scripts, or []."""
    best = ""
    best_count = MIN_PARAGRAPHS - 1
    for script in root.iter("script"):
        text = script.text or ""
        if "<p" not in text and "u003cp" not in text:
            continue
        for candidate in _decoded_strings(text):
            count = len(_PARAGRAPH.findall(candidate))
            if count > best_count:
                best, best_count = candidate, count
    if not best:
        return []
    try:
        fragment = lxml.html.fragment_fromstring(best, create_parent="div")
    except (etree.ParserError, ValueError):
        return []
    etree.strip_elements(fragment, "script", "style", "figcaption", with_tail=False)
    for caption in fragment.xpath("//*[contains(concat(' ', @class, ' '), ' caption ')]"):
        caption.drop_tree()
    lines = []
    for element in fragment.iter(*_BLOCKS):
        if element.getparent() is not None and element.getparent().tag in _BLOCKS:
            continue
        text = " ".join(element.text_content().split())
        if text:
            lines.append(text)
    return lines
