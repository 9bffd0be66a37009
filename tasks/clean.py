"""Stage 3, clean: the page cut down to the article, with its metadata.

One lxml parse serves everything: the metadata is read from the page's own statements
(:mod:`tasks.metadata`: JSON-LD, OpenGraph, meta tags, ``<time>``, URL), trafilatura (a
maintained main-content extractor) finds the article block on the same tree, and
:mod:`tasks.boilerplate` removes what it lets through (headline repeats, bylines, link
lists, captions, the lines of furniture boxes such as comment widgets, newsletter offers and
author bios, share buttons, ad labels, credits, template debris) and restores a visible
teaser it missed; :mod:`tasks.siblings` puts back paragraphs it dropped that the page marks
up exactly like the article's other paragraphs, and sub-headings it dropped between two of
its paragraphs. :mod:`tasks.paywall` cuts the subscriber-only notices and subscription offers
that end the text; a notice that the article is for subscribers sets the record's ``paywalled``.
JSON-LD ``articleBody``, then the article HTML in a script-rendered page's hydration data
(:mod:`tasks.hydration`), are the fallbacks when the extractor finds nothing. Finally the
language is checked on the extracted body, since that is what the record's ``language``
describes (the language stage only saw a sample of the page).

Hostile pages are bounded: the markup is checked against the page budget before lxml parses
it and the stage's CPU time is checked between the steps (:mod:`tasks.page_guard`,
``page_too_complex``), and a page whose text is a link list or a table dump is refused as
``not_article`` rather than published (:mod:`tasks.page_kind`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import trafilatura
from lxml import etree

from tasks.boilerplate import PageContext, add_lead, clean_lines, is_prose, key
from tasks.errors import PermanentError
from tasks.html import marker_words, parse
from tasks.hydration import hydration_paragraphs
from tasks.langid import LanguageGuess, detect_language, second_opinion
from tasks.metadata import PageMetadata, extract_metadata
from tasks.page_guard import CpuGuard, PageBudget, check_page
from tasks.page_kind import not_article
from tasks.page_layout import collapse_source_newlines, has_layout_tables, unwrap_layout_tables
from tasks.paywall import cut_paywall_notices
from tasks.readings import merge_readings
from tasks.record import SCHEMA_VERSION, Job
from tasks.siblings import restore_siblings, restore_subheadings
from worker.app import app
from worker.stage import StageTask, run_stage

STAGE = "clean"
#: Default characters of body text the language check reads (``language_sample_chars``).
DEFAULT_SAMPLE_CHARS = 1000


@dataclass(frozen=True)
class CleanArticle:
    """The article part of a page: its text and what the page says about it."""

    text: str
    metadata: PageMetadata = field(default_factory=PageMetadata)
    #: The text ended with a notice that the article, or its rest, is for subscribers
    #: (:mod:`tasks.paywall`; the notice is cut from ``text``).
    paywall_notice: bool = False


def _link_texts(root: etree._Element) -> tuple[frozenset[str], str]:
    """Texts of the page's links, and the long ones (teaser blocks) joined for substring tests.

    In-page anchors are left out: a table of contents repeats the article's headings.
    """
    texts = set()
    for anchor in root.iter("a"):
        href = anchor.get("href") or ""
        if href.startswith("#"):
            continue
        text = key(anchor.text_content())
        if text:
            texts.add(text)
    long_links = "\n".join(text for text in texts if text.count(" ") >= 3)
    return frozenset(texts), long_links


_CAPTION_CLASSES = etree.XPath(
    "//*[@class][contains(@class, 'caption') or contains(@class, 'legend')"
    " or contains(@class, 'photo-credit')]"
    "[string-length(normalize-space()) < 400]"
)


def _captions(root: etree._Element) -> frozenset[str]:
    """Texts that describe images: ``alt`` attributes and ``<figcaption>`` (captions are not article text)."""
    texts = {key(alt) for alt in root.xpath("//img/@alt") if len(alt) > 20}
    texts.update(key(caption.text_content()) for caption in root.iter("figcaption"))
    texts.update(key(node.text_content()) for node in _CAPTION_CLASSES(root))
    texts.discard("")
    return frozenset(texts)


#: Class or id words of page furniture boxes: comment widgets, newsletter and subscription
#: offers, related-story lists, author bios.
_FURNITURE_WORDS = frozenset(
    {"comment", "comments", "newsletter", "subscribe", "subscription", "signup", "promo", "related", "bio"}
)
#: A cheap first test on ``class`` and ``id`` before the words are checked.
_FURNITURE_HINT = re.compile(r"omment|ewsletter|ubscri|ignup|romo|elated|bio")
_BOXES = ("div", "section", "aside", "form")
#: A box holding more text than this (characters) is a layout wrapper, not furniture.
FURNITURE_MAX_CHARS = 3000


def furniture_lines(root: etree._Element) -> frozenset[str]:
    """Lines of the page's furniture boxes (see :data:`_FURNITURE_WORDS`)."""
    texts: set[str] = set()
    inside: set[etree._Element] = set()  # boxes within a box already read: their lines are in
    for box in root.iter(*_BOXES):
        names = f"{box.get('class') or ''} {box.get('id') or ''}"
        if box in inside or not _FURNITURE_HINT.search(names) or not marker_words(box) & _FURNITURE_WORDS:
            continue
        if len(box.text_content()) > FURNITURE_MAX_CHARS:
            continue
        texts.update(key(node.text_content()) for node in box.iter("p", "li", "h2", "h3", "h4"))
        inside.update(box.iterdescendants(*_BOXES))
    texts.discard("")
    return frozenset(texts)


def _shown(root: etree._Element, text_key: str) -> bool:
    """Whether ``text_key`` appears in the visible text of the page body."""
    visible = root.xpath("//body//text()[not(ancestor::script) and not(ancestor::style)]")
    return text_key in key(" ".join(visible))


def _paragraphs_of(body: str) -> list[str]:
    """JSON-LD ``articleBody`` as lines (it often has no breaks at all)."""
    return [line for line in (" ".join(part.split()) for part in body.splitlines()) if line]


def _extracted_lines(root: etree._Element, url: str | None) -> list[str]:
    """trafilatura's main text of the tree, as lines (the tree is not changed)."""
    document = trafilatura.bare_extraction(
        root,
        url=url,
        with_metadata=False,
        include_comments=False,
        include_tables=False,
        include_images=False,
        include_links=False,
    )
    raw = document.text if document is not None and not isinstance(document, dict) else None
    return (raw or "").splitlines()


def clean_article(
    html: str, url: str | None = None, language: str | None = None, budget: PageBudget | None = None
) -> CleanArticle:
    """Extract the article text and metadata; ``no_text`` if the page holds none.

    A page past ``budget`` (:mod:`tasks.page_guard`) ends as ``page_too_complex`` before any
    parser sees it, or once it has used the budget's CPU seconds; a link list or a table dump
    (:mod:`tasks.page_kind`) ends as ``not_article``. ``language`` (the language stage's
    guess) is accepted for language-aware cleaning; the current rules do not need it.
    """
    budget = budget or PageBudget()
    check_page(html, budget)
    guard = CpuGuard(budget.max_cpu_seconds)
    root = parse(html)
    if root is None:
        raise PermanentError("the page is empty or not HTML", reason="no_text")
    collapse_source_newlines(root)
    # A page laid out in tables is read twice: as served (trafilatura reads a copy of the
    # tree, so this one is left as it is), then with its layout tables unwrapped.
    served = _extracted_lines(root, url) if has_layout_tables(root) else None
    unwrap_layout_tables(root)
    metadata = extract_metadata(root, url)
    guard.check("metadata")
    link_texts, long_links = _link_texts(root)
    context = PageContext(
        titles=metadata.title_candidates,
        authors=tuple(metadata.authors),
        link_texts=link_texts,
        long_links=long_links,
        captions=_captions(root) | furniture_lines(root),
    )
    guard.check("page context")
    lines = clean_lines(_extracted_lines(root, url), context)
    if served is not None:
        # Layout tables unwrapped: trafilatura sometimes finds more of the article in the
        # page's own table layout. Both readings are cleaned, and merged paragraph by paragraph.
        lines = merge_readings(lines, clean_lines(served, context))
    guard.check("extraction")
    if lines:
        lines = restore_subheadings(root, restore_siblings(root, lines, guard), guard)
        lines = add_lead(lines, metadata.description, partial(_shown, root))
    elif metadata.article_body:
        lines = clean_lines(_paragraphs_of(metadata.article_body), context)
    else:
        lines = clean_lines(hydration_paragraphs(root), context)
    guard.check("cleaning")
    paywall = cut_paywall_notices(lines, root)
    lines = paywall.lines
    why_not = not_article(lines, root)
    if why_not:
        raise PermanentError(why_not, reason="not_article")
    text = "\n\n".join(lines)
    if not text or not (any(is_prose(line) for line in lines) or sum(ch.isalpha() for ch in text) >= 80):
        raise PermanentError("no article text found on the page", reason="no_text")
    return CleanArticle(text=text, metadata=metadata, paywall_notice=paywall.notice)


def body_language(
    text: str, prior: str | None, prior_confidence: float | None, declared: str | None, sample_chars: int
) -> LanguageGuess:
    """The language of the extracted body: the prior guess when pycld2 confirms it, else a full vote."""
    if prior and second_opinion(text, sample_chars) == prior:
        return LanguageGuess(prior, prior_confidence)
    return detect_language(text, declared, sample_chars)


def clean_stage(
    job: Job, html: str, sample_chars: int = DEFAULT_SAMPLE_CHARS, budget: PageBudget | None = None
) -> Job:
    """Fill the record's text, metadata and body language from the page."""
    current = job.record
    article = clean_article(html, current.final_url or current.url, current.language, budget)
    meta = article.metadata
    guess = body_language(
        article.text, current.language, current.language_confidence, job.html_lang, sample_chars
    )
    record = current.model_copy(
        update={
            "text": article.text,
            "title": meta.title,
            "authors": meta.authors,
            "published_at": meta.published_at,
            "modified_at": meta.modified_at,
            "description": meta.description,
            "site_name": meta.site_name,
            "canonical_url": meta.canonical_url,
            "top_image": meta.top_image,
            "tags": meta.tags,
            "section": meta.section,
            "paywalled": True if article.paywall_notice else meta.paywalled,
            "language": guess.language,
            "language_confidence": guess.confidence,
            # The text and ``paywalled`` are this version's, whatever version intake stamped.
            "schema_version": SCHEMA_VERSION,
        }
    )
    return job.model_copy(update={"record": record})


@app.task(bind=True, base=StageTask, name="ingest.clean")
def clean(self: StageTask, job: dict[str, Any]) -> dict[str, Any]:
    """Celery wrapper of :func:`clean_stage`."""

    def stage(current: Job) -> Job:
        html = self.bodies.get(current.body_key or "")
        budget = PageBudget.from_settings(self.settings)
        return clean_stage(current, html, self.settings.language_sample_chars, budget)

    return run_stage(self, STAGE, job, stage)
