"""The page's own statements about its article, read once and shared by every extractor.

A page describes its article in two machine-readable places: ``<meta>`` tags (OpenGraph,
``article:*``, Twitter, Dublin Core, ``itemprop``) and JSON-LD (schema.org ``NewsArticle`` and
kin). Titles, authors, dates and site names all read the same two sources, so they are parsed
here, once per page, into plain dicts; the helpers turn their loosely typed values (a string, a
list, an object with ``name``) into clean strings.
"""

from __future__ import annotations

import html as html_lib
from collections.abc import Iterable
from typing import Any

from lxml import etree

#: schema.org types whose object describes the article itself.
_ARTICLE_TYPES = (
    "article",
    "newsarticle",
    "reportagenewsarticle",
    "analysisnewsarticle",
    "opinionnewsarticle",
    "backgroundnewsarticle",
    "reviewnewsarticle",
    "blogposting",
    "liveblogposting",
    "socialmediaposting",
    "techarticle",
    "scholarlyarticle",
    "report",
)


def fold(text: str | None) -> str:
    """Whitespace folded, HTML entities decoded (JSON-LD often carries ``&#8217;``)."""
    if not text:
        return ""
    return " ".join(html_lib.unescape(str(text)).split())


def read_meta(root: etree._Element) -> dict[str, list[str]]:
    """``<meta>`` contents by lower-cased property/name/itemprop, in page order."""
    found: dict[str, list[str]] = {}
    for meta in root.iter("meta"):
        content = meta.get("content")
        if content is None:
            continue
        content = fold(content)
        if not content:
            continue
        for attribute in ("property", "name", "itemprop", "http-equiv"):
            key = meta.get(attribute)
            if key:
                found.setdefault(key.strip().lower(), []).append(content)
    return found


def meta_values(meta: dict[str, list[str]], keys: Iterable[str]) -> list[str]:
    """Every value of the ``keys`` tags, key by key, each in page order."""
    return [value for key in keys for value in meta.get(key, [])]


def schema_types(item: dict[str, Any]) -> list[str]:
    """A JSON-LD object's ``@type`` values, lower-cased, without a vocabulary URL."""
    kind = item.get("@type")
    kinds = kind if isinstance(kind, list) else [kind]
    return [str(k).lower().rsplit("/", 1)[-1] for k in kinds if k]


def article_object(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """The JSON-LD object describing the article (the first of an article type with a headline)."""
    best: dict[str, Any] = {}
    for item in objects:
        kinds = schema_types(item)
        if any(kind in _ARTICLE_TYPES for kind in kinds):
            if item.get("headline") or item.get("articleBody"):
                return item
            best = best or item
    if best:
        return best
    for item in objects:  # a WebPage that carries the headline
        if "webpage" in schema_types(item) and item.get("headline"):
            return item
    return {}


def texts(value: Any) -> list[str]:
    """Names out of a JSON-LD value: a string, a list, or objects with ``name``."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return texts(value.get("name") or value.get("@value") or value.get("url"))
    if isinstance(value, list):
        return [text for item in value for text in texts(item)]
    return [str(value)]


def first_text(*values: Any) -> str | None:
    """The first non-blank text of ``values`` (each read by :func:`texts`), folded."""
    for value in values:
        for text in texts(value):
            cleaned = fold(text)
            if cleaned:
                return cleaned
    return None
