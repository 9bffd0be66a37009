"""When the article was published and last modified, as ISO 8601.

Dates are read in order of trust: JSON-LD ``datePublished``/``dateCreated``/``dateModified``,
then the meta tags that publishing systems write (``article:published_time``, Dublin Core,
``parsely-pub-date``…), then ``<time datetime>``, then a date in the URL (``/2024/04/28/``),
and last htmldate's heuristics (publication date only). The first source that parses wins;
a UTC offset another source gives for the same moment is then added, because pages often
state a naive time in one place and the same time with its offset in another.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any

from lxml import etree

from tasks.metadata.statements import meta_values, texts

_HAS_OFFSET = re.compile(r"[+-]\d\d:\d\d$")
_URL_DATE = re.compile(r"/(20\d\d|19\d\d)[/-](0?[1-9]|1[0-2])[/-](0?[1-9]|[12]\d|3[01])(?:/|[^\d]|$)")
_PUBLISHED_META = (
    "article:published_time",
    "og:published_time",
    "og:article:published_time",
    "datepublished",
    "pubdate",
    "publishdate",
    "publish-date",
    "published-date",
    "publication_date",
    "date",
    "dc.date",
    "dc.date.issued",
    "dcterms.date",
    "dcterms.created",
    "sailthru.date",
    "parsely-pub-date",
    "cxenseparse:recs:publishtime",
    "article.published",
    "original-publish-date",
)
_MODIFIED_META = (
    "article:modified_time",
    "og:updated_time",
    "og:article:modified_time",
    "datemodified",
    "dcterms.modified",
    "last-modified",
    "lastmod",
    "article.updated",
)


def parse_datetime(value: str | None) -> str | None:
    """A page's date or time as ISO 8601 (offset kept when given; ``Z`` -> ``+00:00``), else None."""
    if not value:
        return None
    text = value.strip()
    if not text:
        return None
    text = re.sub(r"\s*([+-]\d\d)(\d\d)$", r"\1:\2", text)  # +0200 -> +02:00
    text = re.sub(r"(\d)\s*(?:UTC|GMT)$", r"\1+00:00", text)
    text = re.sub(r"(\d\d:\d\d(?::\d\d)?)\s+([+-]\d\d:\d\d)$", r"\1\2", text)
    candidate = text.replace("Z", "+00:00") if text.endswith("Z") else text
    try:
        moment = datetime.fromisoformat(candidate)
    except ValueError:
        try:
            return date.fromisoformat(text[:10]).isoformat() if re.match(r"\d{4}-\d\d-\d\d", text) else None
        except ValueError:
            return None
    if re.fullmatch(r"\d{4}-\d\d-\d\d", candidate):
        return moment.date().isoformat()
    return moment.isoformat()


def _first_date(*values: Any) -> str | None:
    for value in values:
        for text in texts(value):
            parsed = parse_datetime(text)
            if parsed:
                return parsed
    return None


def _all_dates(*values: Any) -> list[str]:
    return [parsed for value in values for text in texts(value) if (parsed := parse_datetime(text))]


def _time_values(root: etree._Element) -> list[str]:
    return [str(value) for value in root.xpath("//time/@datetime")[:10]]


def with_offset(chosen: str | None, others: list[str]) -> str | None:
    """``chosen`` with a UTC offset taken from another source naming the same moment.

    Pages often give a naive time in one place (JSON-LD) and the same time with its offset
    in another (``article:published_time``); the aware one is the better record.
    """
    if not chosen or _HAS_OFFSET.search(chosen):
        return chosen
    for other in others:
        if _HAS_OFFSET.search(other) and other[:-6].startswith(chosen):
            return other
    return chosen


def _url_date(url: str | None) -> str | None:
    match = _URL_DATE.search(url or "")
    if not match:
        return None
    try:
        return date(int(match[1]), int(match[2]), int(match[3])).isoformat()
    except ValueError:
        return None


def _time_element_date(root: etree._Element) -> str | None:
    for time_element in root.xpath("//article//time[@datetime] | //time[@datetime]")[:5]:
        parsed = parse_datetime(time_element.get("datetime"))
        if parsed:
            return parsed
    return None


def _htmldate(root: etree._Element, url: str | None) -> str | None:
    """htmldate's fast heuristics (original date), the last resort."""
    from htmldate import find_date

    try:
        found = find_date(root, url=url, original_date=True, extensive_search=False, outputformat="%Y-%m-%d")
    except Exception:  # htmldate is a heuristic; a bad page must not fail the stage
        return None
    return found or None


def published_at(
    root: etree._Element, meta: dict[str, list[str]], article: dict[str, Any], url: str | None
) -> str | None:
    """The publication date or time: the first source that gives one (see the module docstring)."""
    published = (
        _first_date(article.get("datePublished"), article.get("dateCreated"))
        or _first_date(meta_values(meta, _PUBLISHED_META))
        or _time_element_date(root)
        or _url_date(url)
        or _htmldate(root, url)
    )
    return with_offset(
        published,
        _all_dates(article.get("datePublished"), meta_values(meta, _PUBLISHED_META), _time_values(root)),
    )


def modified_at(meta: dict[str, list[str]], article: dict[str, Any]) -> str | None:
    """The last modification: JSON-LD ``dateModified``, else the meta tags; None when neither says."""
    modified = _first_date(article.get("dateModified")) or _first_date(meta_values(meta, _MODIFIED_META))
    return with_offset(modified, _all_dates(article.get("dateModified"), meta_values(meta, _MODIFIED_META)))
