"""Who wrote the article: the bylines a page states, as a list of names.

Authors are the first source's (JSON-LD, meta ``author``, SEO plugins' "Written by", the page's
byline: ``rel=author``/``itemprop``, else an element of class ``byline``/``author`` or a link to
an author page, full names only) that names someone other than the site itself; the site's own
name (``ntv NACHRICHTEN``, ``LTO`` on lto.de) stands only when no source names anyone else
(:class:`~tasks.metadata.sites.SiteNames`). Wire agencies give way to a person who signs too.
E-mail addresses are not names.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from lxml import etree

from tasks.html import marker_words
from tasks.metadata.sites import SiteNames, name_key
from tasks.metadata.statements import fold, meta_values, schema_types, texts

#: Wire agencies: dropped from the authors when a person signs too, kept when they are the only byline.
AGENCIES = frozenset(
    {
        "afp",
        "agence france-presse",
        "agence france presse",
        "ap",
        "the associated press",
        "associated press",
        "reuters",
        "dpa",
        "epd",
        "kna",
        "sid",
        "ansa",
        "efe",
        "apa",
        "sda",
        "keystone-sda",
        "anp",
        "belga",
        "tt",
        "ntb",
        "ritzau",
        "pap",
        "ctk",
        "čtk",
        "tass",
        "xinhua",
        "yonhap",
        "kyodo",
        "anadolu ajansı",
        "iha",
        "dha",
        "europa press",
        "lusa",
        "upi",
        "bloomberg",
    }
)
_BYLINE_PREFIX = re.compile(
    r"^(?:by|von|par|por|door|av|af|från|ved|przez|autor(?:in)?|author|text|texto|"
    r"von\s+und\s+mit|written by|reported by)\s*:?\s+",
    re.IGNORECASE,
)
_AUTHOR_SPLIT = re.compile(r"\s*(?:;|,|\s&\s|\s(?:and|und|et|y|e|og|och|en|i|und)\s)\s*", re.IGNORECASE)
#: ``twitter:label1`` values that mean "written by" (Yoast SEO and kin, in the languages they ship).
_WRITTEN_BY = frozenset(
    {
        "written by",
        "verfasst von",
        "geschrieben von",
        "écrit par",
        "escrito por",
        "scritto da",
        "geschreven door",
        "skrevet av",
        "skrevet af",
        "skriven av",
        "napisane przez",
        "autor",
        "author",
    }
)
_EMAIL = re.compile(r"^\S+@\S+\.\w+$")
#: ``Jane Doe (jd)``, ``Jane Doe (``, ``신현주 기자`` (reporter), ``山田太郎記者``: notes after a name.
_TRAILING_NOTE = re.compile(r"\s*\([^)]*\)?\s*$|\s*(?:기자|記者|特派員|특파원)\s*$")
_NAME_NOISE = re.compile(r"https?://\S+|www\.\S+|@\S+")
_AUTHOR_META = (
    "author",
    "article:author",
    "og:article:author",
    "parsely-author",
    "sailthru.author",
    "dc.creator",
    "dcterms.creator",
    "byl",
    "cxenseparse:author",
)
#: Elements that may hold a byline by their class (``class="byline"``, ``article__author``); a cheap
#: XPath pre-filter, the class words are checked in Python (``authors-list`` is not ``author``).
_BYLINE_CLASS_XPATH = etree.XPath(
    "//*[self::span or self::div or self::p or self::a or self::address]"
    "[contains(@class, 'uthor') or contains(@class, 'yline')]"
)
#: A link to an author's page (``/author/jane-doe``, ``/autoren/name/max-kolter``).
_AUTHOR_LINK_XPATH = etree.XPath(
    "//a[contains(@href, '/author/') or contains(@href, '/authors/') or contains(@href, '/autor/')"
    " or contains(@href, '/autoren/') or contains(@href, '/auteur/') or contains(@href, '/autore/')]"
    "[string-length(normalize-space(.)) < 60]"
)


def clean_name(name: str) -> str:
    """``By JANE DOE`` -> ``Jane Doe``-ish: prefix, links and handles removed, spacing folded."""
    name = _NAME_NOISE.sub(" ", fold(name))
    name = _BYLINE_PREFIX.sub("", name)
    name = _TRAILING_NOTE.sub("", name).strip(" ,;|-–—·")
    if name.isupper() and len(name) > 4:
        name = name.title()
    return " ".join(name.split())


def split_authors(raw: Iterable[str]) -> list[str]:
    """Names in order, split on ``;``, ``,`` and "and"-words, without repeats.

    ``Emma-Mackenzie`` and ``Emma Mackenzie`` are the same name (a slug and its byline).
    """
    names: list[str] = []
    keys: set[str] = set()
    for value in raw:
        for part in _AUTHOR_SPLIT.split(fold(value)):
            if "://" in part or _EMAIL.match(part.strip()):
                continue  # an address, not a name
            name = clean_name(part)
            key = name_key(name)
            if not name or not key or key in keys or len(name) > 60 or name.startswith("http"):
                continue
            if len(name.split()) > 6 or not any(ch.isalpha() for ch in name):
                continue
            keys.add(key)
            names.append(name)
    return names


def choose_byline(site: SiteNames, *sources: Callable[[], list[str]]) -> list[str]:
    """The first source naming someone other than the site; the site's own name when none does.

    Sources are read lazily, in order: the page-wide byline searches cost more than the rest of
    the metadata together, and most pages sign in JSON-LD or meta tags.
    """
    read: list[list[str]] = []
    for source in sources:
        names = source()
        signed = site.drop_from(names)
        if signed:
            return signed
        read.append(names)
    return next((names for names in read if names), [])


def _written_by(meta: dict[str, list[str]]) -> list[str]:
    """Bylines in ``twitter:label1``/``twitter:data1`` pairs and ``twitter:misc:Written by`` (SEO plugins)."""
    found = list(meta.get("twitter:misc:written by", []))
    for index in range(1, 5):
        labels, data = meta.get(f"twitter:label{index}"), meta.get(f"twitter:data{index}")
        if labels and data and labels[0].casefold() in _WRITTEN_BY:
            found.append(data[0])
    return found


def _is_organization(name: str, site_name: str | None) -> bool:
    folded = name.casefold()
    if folded in AGENCIES or (site_name and folded == site_name.casefold()):
        return True
    return " " not in name and "." in name  # a domain such as ``lrt.lt``


def choose_authors(people: list[str], organizations: list[str], site_name: str | None = None) -> list[str]:
    """People who signed; agencies and the site itself only when nobody else did."""
    persons = [name for name in people if not _is_organization(name, site_name)]
    if persons:
        return persons
    agencies = [name for name in people if name.casefold() in AGENCIES]
    return agencies or people[:1] or organizations[:1]


def _jsonld_authors(article: dict[str, Any]) -> tuple[list[str], list[str]]:
    people: list[str] = []
    organizations: list[str] = []
    authors = article.get("author") or article.get("creator")
    for author in authors if isinstance(authors, list) else [authors]:
        if isinstance(author, dict):
            kinds = schema_types(author)
            target = organizations if "organization" in kinds or "newsmediaorganization" in kinds else people
            target.extend(texts(author.get("name")))
        elif isinstance(author, str):
            people.append(author)
    return split_authors(people), split_authors(organizations)


def _class_bylines(root: etree._Element) -> list[etree._Element]:
    """Short elements whose class has the word ``author`` or ``byline``, outside comments."""
    found = []
    for node in _BYLINE_CLASS_XPATH(root):
        if not {"author", "byline"} & marker_words(node, with_id=False):
            continue
        if len(" ".join(node.text_content().split())) >= 80:
            continue
        if not any("comment" in (parent.get("class") or "") for parent in node.iterancestors()):
            found.append(node)
            if len(found) == 2:
                break
    return found


def _byline_authors(root: etree._Element) -> list[str]:
    nodes = root.xpath(
        "//*[@rel='author'] | //*[@itemprop='author']//*[@itemprop='name'] | "
        "//*[@itemprop='author'][not(.//*[@itemprop='name'])]"
    )[:6]
    if nodes:
        return split_authors(" ".join(node.text_content().split()) for node in nodes)
    # A byline found by its class alone must look like a full name: not initials (``amw``, ``red``).
    nodes = _class_bylines(root) or _AUTHOR_LINK_XPATH(root)[:2]
    bylines = split_authors(" ".join(node.text_content().split()) for node in nodes)
    return [name for name in bylines if len(name.split()) >= 2]


def page_authors(
    root: etree._Element,
    meta: dict[str, list[str]],
    article: dict[str, Any],
    site: SiteNames,
    site_name: str | None,
) -> list[str]:
    """The article's authors, from the first source that signs (see the module docstring)."""
    jsonld_people, organizations = _jsonld_authors(article)
    people = choose_byline(
        site,
        lambda: jsonld_people,
        lambda: split_authors(meta_values(meta, _AUTHOR_META)),
        lambda: split_authors(_written_by(meta)),
        lambda: _byline_authors(root),
    )
    return choose_authors(people, organizations, site_name)
