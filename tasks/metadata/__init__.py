"""Article metadata from the page's own statements: JSON-LD, OpenGraph, meta tags, ``<time>``, URL.

Read from the lxml tree before the text extractor touches it, in order of trust:

* JSON-LD (schema.org ``NewsArticle`` and kin): headline, author (people), datePublished,
  dateModified, description, publisher, image, keywords, articleSection, isAccessibleForFree;
* OpenGraph / ``article:*`` / Twitter / Dublin Core / ``itemprop`` meta tags;
* the visible headline (``<h1>``), ``<time datetime>``, and bylines: ``rel=author``/``itemprop``,
  else an element of class ``byline``/``author`` or a link to an author page (full names only);
* the URL (``/2024/04/28/``) and, last, htmldate's heuristics for the date.

One module per thing extracted, each explaining its own rules:

* :mod:`~tasks.metadata.extract`: :class:`PageMetadata` and :func:`extract_metadata`, which
  assembles it (and reads the one-statement fields: description, image, tags, paywall);
* :mod:`~tasks.metadata.titles`: the headline, chosen by agreement among the title sources;
* :mod:`~tasks.metadata.headlines`: what each source states as the headline, and the heading
  the page shows;
* :mod:`~tasks.metadata.title_template`: the site's name and section labels a template writes
  around the headline, and their cutting;
* :mod:`~tasks.metadata.authors`: the bylines (people before agencies and the site itself);
* :mod:`~tasks.metadata.dates`: published and modified dates;
* :mod:`~tasks.metadata.sites`: the site's name, and telling it apart from a byline or a title tail;
* :mod:`~tasks.metadata.sections`: the section, a short label (never a headline in its place);
* :mod:`~tasks.metadata.statements`: the shared readers of ``<meta>`` tags and JSON-LD.

The names below are re-exported so that callers import from ``tasks.metadata`` alone.
"""

from tasks.metadata.authors import AGENCIES, choose_authors, choose_byline, clean_name, split_authors
from tasks.metadata.dates import parse_datetime, with_offset
from tasks.metadata.extract import PageMetadata, extract_metadata
from tasks.metadata.sites import SiteNames, page_site_name
from tasks.metadata.statements import article_object, fold, read_meta
from tasks.metadata.titles import (
    TITLE_SOURCES,
    choose_title,
    drop_disputed_kickers,
    h1_texts,
    strip_site_suffix,
    title_proposals,
    title_sources,
)

__all__ = [
    "AGENCIES",
    "TITLE_SOURCES",
    "PageMetadata",
    "SiteNames",
    "article_object",
    "choose_authors",
    "choose_byline",
    "choose_title",
    "clean_name",
    "drop_disputed_kickers",
    "extract_metadata",
    "fold",
    "h1_texts",
    "page_site_name",
    "parse_datetime",
    "read_meta",
    "split_authors",
    "strip_site_suffix",
    "title_proposals",
    "title_sources",
    "with_offset",
]
