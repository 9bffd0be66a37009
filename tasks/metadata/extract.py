"""One page's metadata record: :class:`PageMetadata`, assembled by :func:`extract_metadata`.

The page's statements (:mod:`tasks.metadata.statements`) are parsed once here and handed to each
field's extractor: titles, authors, dates, site names and sections have modules of their own;
the fields that are read straight off one or two statements (description, canonical URL, image,
tags, paywall) are read here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin

from lxml import etree

from tasks.html import iter_jsonld
from tasks.metadata.authors import page_authors
from tasks.metadata.dates import modified_at, published_at
from tasks.metadata.sections import choose_section
from tasks.metadata.sites import SiteNames, site_names
from tasks.metadata.statements import article_object, first_text, fold, read_meta, texts
from tasks.metadata.titles import choose_title, h1_texts, title_sources


@dataclass(frozen=True)
class PageMetadata:
    """Everything the page says about its article, beside the text."""

    title: str | None = None
    title_candidates: tuple[str, ...] = ()
    authors: list[str] = field(default_factory=list)
    published_at: str | None = None
    modified_at: str | None = None
    description: str | None = None
    site_name: str | None = None
    canonical_url: str | None = None
    top_image: str | None = None
    tags: list[str] = field(default_factory=list)
    section: str | None = None
    paywalled: bool | None = None
    article_body: str | None = None


def _keywords(value: Any) -> list[str]:
    words: list[str] = []
    for text in texts(value):
        words.extend(part.strip() for part in text.split(","))
    return words


def _paywalled(article: dict[str, Any], meta: dict[str, list[str]]) -> bool | None:
    values = [article.get("isAccessibleForFree")]
    parts = article.get("hasPart")
    for part in parts if isinstance(parts, list) else [parts]:
        if isinstance(part, dict):
            values.append(part.get("isAccessibleForFree"))
    values.extend(meta.get("isaccessibleforfree", []))
    verdict: bool | None = None
    for value in values:
        if value is None:
            continue
        free = str(value).strip().lower() not in ("false", "0", "no")
        if not free:
            return True
        verdict = False
    return verdict


def extract_metadata(root: etree._Element, url: str | None = None) -> PageMetadata:
    """The page's metadata (see :mod:`tasks.metadata` for the order of sources)."""
    meta = read_meta(root)
    objects = list(iter_jsonld(root))
    article = article_object(objects)
    names = site_names(meta, article)
    site_name = first_text(*names)
    h1s = h1_texts(root)
    candidates = title_sources(root, meta, article, h1s, url, site_name)
    authors = page_authors(root, meta, article, SiteNames.of(*names, url), site_name)
    canonical = root.xpath("string(//link[@rel='canonical']/@href)").strip()
    image = first_text(meta.get("og:image"), article.get("image"), meta.get("twitter:image"))
    tags = _keywords(meta.get("article:tag")) or _keywords(article.get("keywords"))
    if not tags:
        tags = _keywords(meta.get("news_keywords") or meta.get("keywords"))
    body = article.get("articleBody")
    title = choose_title(candidates, site_name, url)
    title_candidates = tuple(dict.fromkeys(value for value in (*candidates.values(), *h1s) if value))
    description = first_text(meta.get("og:description"), meta.get("description"), article.get("description"))
    return PageMetadata(
        title=title,
        title_candidates=title_candidates,
        authors=authors,
        published_at=published_at(root, meta, article, url),
        modified_at=modified_at(meta, article),
        description=description,
        site_name=site_name,
        canonical_url=urljoin(url or "", canonical) if canonical else None,
        top_image=urljoin(url or "", image) if image else None,
        tags=list(dict.fromkeys(tag for tag in (fold(t) for t in tags) if tag))[:30],
        section=choose_section(
            (meta.get("article:section"), article.get("articleSection")),
            (title or "", *title_candidates, description or ""),
        ),
        paywalled=_paywalled(article, meta),
        article_body=fold(body) if isinstance(body, str) and body.strip() else None,
    )
