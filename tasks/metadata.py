"""Article metadata from the page's own statements: JSON-LD, OpenGraph, meta tags, ``<time>``, URL.

Read from the lxml tree before the text extractor touches it, in order of trust:

* JSON-LD (schema.org ``NewsArticle`` and kin): headline, author (people), datePublished,
  dateModified, description, publisher, image, keywords, articleSection, isAccessibleForFree;
* OpenGraph / ``article:*`` / Twitter / Dublin Core / ``itemprop`` meta tags;
* the visible headline (``<h1>``), ``<time datetime>``, and bylines: ``rel=author``/``itemprop``,
  else an element of class ``byline``/``author`` or a link to an author page (full names only);
* the URL (``/2024/04/28/``) and, last, htmldate's heuristics for the date.

Authors are the first source's (JSON-LD, meta ``author``, SEO plugins' "Written by", the page's
byline) that names someone other than the site itself; the site's own name (``ntv NACHRICHTEN``,
``LTO`` on lto.de) stands only when no source names anyone else. E-mail addresses are not names.

The title is chosen by agreement: each source proposes a title, and the proposal most sources
share wins, ties going to JSON-LD, then Twitter, OpenGraph, ``<h1>`` and ``<title>``. The other
title statements in ``<meta>`` vote too (``title``, ``sailthru.title``, ``parsely-title``, Dublin
Core): the more independent sources, the fewer pages a single template's social headline
decides. (A microdata ``itemprop="headline"`` element would cost a scan of the whole tree.)

* A site suffix (``Headline | Site``, ``Headline - Section - Site``) is cut when another source
  shows the bare headline or when the tail names the site; after a separator without spaces
  (``Headline-SectionㅣSite``) only a short tail ending with the site's name is cut.
  The JSON-LD ``headline`` is the article's headline by definition, so its own tail is cut only
  when it names the site (``Headline - Current news`` stays).
* When another source gives the winner's very words with fewer quotation marks
  (``"Quoted lead"… rest`` and ``Quoted lead… rest``), the plainer one is taken: the marks are
  typography some templates add. Straight against curly marks is left to the vote.
* A leading kicker (``Topic: Headline``) is kept: pages show the bare headline in one source and
  the kicker in another both ways, and neither form is the rule. But when two sources put the same
  headline under two kickers with no word in common, the kickers are not part of it and both go.
"""

from __future__ import annotations

import html as html_lib
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

from lxml import etree

from tasks.html import iter_jsonld, marker_words

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
_TITLE_SEPARATORS = re.compile(r"\s+(?:[|｜·•»–—:-]|::|--)\s*|\s*[|｜：]\s*|\s*(?:--|::)\s*")
#: Separators without spaces (``…커졌다-정치ㅣ한국일보``; ``ㅣ`` is the Hangul letter used as a bar).
_TIGHT_SEPARATORS = re.compile(r"[-–—·•»/ㅣ]")
#: Quotation marks and apostrophes, straight, curly, angled and CJK.
_QUOTES = re.compile(r"[\"'‘’‚‛“”„‟«»‹›「」『』〝〞＂＇]")
_BYLINE_PREFIX = re.compile(
    r"^(?:by|von|par|por|door|av|af|från|ved|przez|autor(?:in)?|author|text|texto|"
    r"von\s+und\s+mit|written by|reported by)\s*:?\s+",
    re.IGNORECASE,
)
_AUTHOR_SPLIT = re.compile(r"\s*(?:;|,|\s&\s|\s(?:and|und|et|y|e|og|och|en|i|und)\s)\s*", re.IGNORECASE)
_WORDS = re.compile(r"\w+")
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
_HAS_OFFSET = re.compile(r"[+-]\d\d:\d\d$")
#: ``Jane Doe (jd)``, ``Jane Doe (``, ``신현주 기자`` (reporter), ``山田太郎記者``: notes after a name.
_TRAILING_NOTE = re.compile(r"\s*\([^)]*\)?\s*$|\s*(?:기자|記者|特派員|특파원)\s*$")
_URL_DATE = re.compile(r"/(20\d\d|19\d\d)[/-](0?[1-9]|1[0-2])[/-](0?[1-9]|[12]\d|3[01])(?:/|[^\d]|$)")
_NAME_NOISE = re.compile(r"https?://\S+|www\.\S+|@\S+")
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


def _types(item: dict[str, Any]) -> list[str]:
    kind = item.get("@type")
    kinds = kind if isinstance(kind, list) else [kind]
    return [str(k).lower().rsplit("/", 1)[-1] for k in kinds if k]


def article_object(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """The JSON-LD object describing the article (the first of an article type with a headline)."""
    best: dict[str, Any] = {}
    for item in objects:
        kinds = _types(item)
        if any(kind in _ARTICLE_TYPES for kind in kinds):
            if item.get("headline") or item.get("articleBody"):
                return item
            best = best or item
    if best:
        return best
    for item in objects:  # a WebPage that carries the headline
        if "webpage" in _types(item) and item.get("headline"):
            return item
    return {}


def _strings(value: Any) -> list[str]:
    """Names out of a JSON-LD value: a string, a list, or objects with ``name``."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return _strings(value.get("name") or value.get("@value") or value.get("url"))
    if isinstance(value, list):
        return [text for item in value for text in _strings(item)]
    return [str(value)]


def _first(*values: Any) -> str | None:
    for value in values:
        for text in _strings(value):
            cleaned = fold(text)
            if cleaned:
                return cleaned
    return None


def _names_site(tail: str, site: str) -> bool:
    """``tail`` (lower-cased) is the site's name, maybe with a section or two: ``news - srf``."""
    if not site or not tail:
        return False
    if site in tail:
        return len(_WORDS.findall(tail.replace(site, ""))) <= 2
    return tail in site


def strip_site_suffix(title: str, others: Iterable[str], site_name: str | None = None) -> str:
    """``Headline | Site`` -> ``Headline``.

    The tail goes when another source shows the bare headline, or when it names the site. Failing
    that, a separator without spaces (``Headline-SectionㅣSite``) cuts off a short tail that ends
    with the site's name: a hyphen or slash in a headline is usually part of a word, so nothing
    less than the site's name will do there.
    """
    pool = {other for other in others if other and other != title}
    site = (site_name or "").lower()
    for match in _TITLE_SEPARATORS.finditer(title):
        head, tail = title[: match.start()].strip(), title[match.end() :].strip().lower()
        if head and (head in pool or _names_site(tail, site)):
            return head
    if site:
        for match in _TIGHT_SEPARATORS.finditer(title):
            head, tail = title[: match.start()].strip(), title[match.end() :].strip().lower()
            if head and tail.endswith(site) and _names_site(tail, site):
                return head
    return title


def _quote_marks(text: str) -> int:
    return len(_QUOTES.findall(text))


def _unquoted(text: str) -> str:
    return " ".join(_QUOTES.sub("", text).split())


#: A kicker before the headline: ``Topic: Headline``, ``Topic - Headline``.
_KICKER_SEPARATOR = re.compile(r"\s*:\s+|\s+[-–—|]\s+")


def _after_kicker(title: str) -> tuple[str, str] | None:
    match = _KICKER_SEPARATOR.search(title)
    if match is None or match.start() == 0:
        return None
    return title[: match.start()], title[match.end() :]


def _unrelated(kicker: str, other: str) -> bool:
    """No word in common: two topics, not one headline's wording told two ways."""
    return not set(_WORDS.findall(kicker.lower())) & set(_WORDS.findall(other.lower()))


def drop_disputed_kickers(proposals: dict[str, str]) -> dict[str, str]:
    """Two sources with the same headline under different kickers give the bare headline.

    ``Iran attack: «Quote»`` (og:title) against ``Middle East - «Quote»`` (``<h1>``): the sources
    disagree on the kicker and agree on the rest, so the rest is the headline. Kickers that share a
    word (``Joburg has failed: …`` and ``Johannesburg has failed: …``) are one clause worded two
    ways, not two topics, and stay. A kicker that every
    source shows is kept (see the module docstring).
    """
    split = {source: _after_kicker(value) for source, value in proposals.items()}
    bare: set[str] = set()
    for source, parts in split.items():
        for other, other_parts in split.items():
            if source < other and parts and other_parts:
                (kicker, rest), (other_kicker, other_rest) = parts, other_parts
                if rest == other_rest and len(_WORDS.findall(rest)) >= 3 and _unrelated(kicker, other_kicker):
                    bare.add(rest)
    if not bare:
        return proposals
    return {
        source: parts[1] if parts and parts[1] in bare else proposals[source]
        for source, parts in split.items()
    }


#: Title sources, in the order that breaks a tie between proposals with as many votes.
TITLE_SOURCES = (
    "jsonld",
    "twitter",
    "og",
    "h1",
    "title",
    "meta",
    "sailthru",
    "parsely",
    "dc",
)


def h1_texts(root: etree._Element) -> list[str]:
    """The text of every ``<h1>``, whitespace folded, in page order."""
    return [" ".join(h1.text_content().split()) for h1 in root.iter("h1")]


def title_sources(
    root: etree._Element,
    meta: dict[str, list[str]],
    article: dict[str, Any],
    h1s: list[str] | None = None,
) -> dict[str, str]:
    """What each source gives as the title, as written (``""`` where a source is silent).

    ``h1s`` (from :func:`h1_texts`) saves a second scan when the caller has them already.
    """
    h1 = next((text for text in (h1_texts(root) if h1s is None else h1s) if text), "")
    title_element = root.find(".//title")
    return {
        "jsonld": fold(_first(article.get("headline")) or ""),
        "og": fold(_first(meta.get("og:title")) or ""),
        "twitter": fold(_first(meta.get("twitter:title")) or ""),
        "h1": fold(h1),
        "title": fold(title_element.text_content() if title_element is not None else ""),
        "meta": fold(_first(meta.get("title")) or ""),
        "sailthru": fold(_first(meta.get("sailthru.title")) or ""),
        "parsely": fold(_first(meta.get("parsely-title")) or ""),
        "dc": fold(_first(meta.get("dc.title"), meta.get("dcterms.title")) or ""),
    }


def title_proposals(candidates: dict[str, str], site_name: str | None) -> dict[str, str]:
    """Each source's title with its site tail and a disputed kicker cut: what goes to the vote."""
    present = {source: value for source, value in candidates.items() if value}
    pool = set(present.values())
    headline = present.get("jsonld")
    proposals = {
        source: strip_site_suffix(value, () if value == headline else pool, site_name)
        for source, value in present.items()
    }
    return drop_disputed_kickers(proposals)


def choose_title(candidates: dict[str, str], site_name: str | None) -> str | None:
    """The headline most sources agree on (see the module docstring)."""
    proposals = title_proposals(candidates, site_name)
    if not proposals:
        return None
    votes = Counter(proposals.values())
    best: str | None = None
    for source in TITLE_SOURCES:
        proposal = proposals.get(source)
        if proposal and (best is None or votes[proposal] > votes[best]):
            best = proposal
    if best is None:
        return None
    # The same words with fewer quotation marks: ``"Quoted lead"… rest`` -> ``Quoted lead… rest``.
    key = _unquoted(best)
    for proposal in proposals.values():
        if _quote_marks(proposal) < _quote_marks(best) and _unquoted(proposal) == key:
            best = proposal
    return best


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
        for text in _strings(value):
            parsed = parse_datetime(text)
            if parsed:
                return parsed
    return None


def _all_dates(*values: Any) -> list[str]:
    return [parsed for value in values for text in _strings(value) if (parsed := parse_datetime(text))]


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


def _meta_values(meta: dict[str, list[str]], keys: Iterable[str]) -> list[str]:
    return [value for key in keys for value in meta.get(key, [])]


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


def clean_name(name: str) -> str:
    """``By JANE DOE`` -> ``Jane Doe``-ish: prefix, links and handles removed, spacing folded."""
    name = _NAME_NOISE.sub(" ", fold(name))
    name = _BYLINE_PREFIX.sub("", name)
    name = _TRAILING_NOTE.sub("", name).strip(" ,;|-–—·")
    if name.isupper() and len(name) > 4:
        name = name.title()
    return " ".join(name.split())


def _name_key(name: str) -> str:
    return re.sub(r"\W+", "", name.casefold())


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
            key = _name_key(name)
            if not name or not key or key in keys or len(name) > 60 or name.startswith("http"):
                continue
            if len(name.split()) > 6 or not any(ch.isalpha() for ch in name):
                continue
            keys.add(key)
            names.append(name)
    return names


@dataclass(frozen=True)
class SiteNames:
    """The names a site goes by, to tell its own name from a byline.

    Pages often give the publisher as the author (``"author": {"@type": "Organization", "name":
    "n-tv NACHRICHTEN"}``, ``<meta name="author" content="LTO">``): that says who published the
    page, not who wrote it, and must not hide a byline that another source gives. It stands as the
    byline only when no source names anyone else.
    """

    keys: frozenset[str]
    acronyms: frozenset[str]

    @classmethod
    def of(cls, *names: Any) -> SiteNames:
        """From the site's names (og:site_name, publisher, application-name) and the page's URL."""
        keys: set[str] = set()
        acronyms: set[str] = set()
        for value in names:
            for text in _strings(value):
                if "://" in text:
                    host = (urlsplit(text).hostname or "").removeprefix("www.")
                    keys.update(_name_key(label) for label in host.split(".")[:-1] if len(label) >= 2)
                    continue
                keys.add(_name_key(text))
                words = _WORDS.findall(text)
                if len(words) >= 2:
                    acronyms.add("".join(word[0] for word in words).casefold())
        keys.discard("")
        return cls(frozenset(keys), frozenset(acronyms))

    def named(self, name: str) -> bool:
        """``name`` is the site's: ``ntv NACHRICHTEN`` for ntv.de, ``LTO`` for Legal Tribune Online."""
        key = _name_key(name)
        if not key:
            return False
        if key in self.keys or key in self.acronyms:
            return True
        # ``VnExpress`` for ``Báo VnExpress``, ``LBCI`` for ``LBCI Lebanon``: one word that begins or
        # ends a name of the site. A person's name has two words, and a short word (``Lee``) could
        # begin anything, so neither counts.
        if len(name.split()) > 1 or len(key) < 4:
            return False
        return any(site.startswith(key) or site.endswith(key) for site in self.keys)

    def drop_from(self, names: list[str]) -> list[str]:
        return [name for name in names if not self.named(name)]


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
            kinds = _types(author)
            target = organizations if "organization" in kinds or "newsmediaorganization" in kinds else people
            target.extend(_strings(author.get("name")))
        elif isinstance(author, str):
            people.append(author)
    return split_authors(people), split_authors(organizations)


#: Elements that may hold a byline by their class (``class="byline"``, ``article__author``); a cheap
#: XPath pre-filter, the class words are checked in Python (``authors-list`` is not ``author``).
_BYLINE_CLASS_XPATH = etree.XPath(
    "//*[self::span or self::div or self::p or self::a or self::address]"
    "[contains(@class, 'uthor') or contains(@class, 'yline')]"
)


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


#: A link to an author's page (``/author/jane-doe``, ``/autoren/name/max-kolter``).
_AUTHOR_LINK_XPATH = etree.XPath(
    "//a[contains(@href, '/author/') or contains(@href, '/authors/') or contains(@href, '/autor/')"
    " or contains(@href, '/autoren/') or contains(@href, '/auteur/') or contains(@href, '/autore/')]"
    "[string-length(normalize-space(.)) < 60]"
)


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


def _keywords(value: Any) -> list[str]:
    words: list[str] = []
    for text in _strings(value):
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


def _site_names(meta: dict[str, list[str]], article: dict[str, Any]) -> tuple[Any, Any, Any]:
    """What the page calls its site, in order of trust: og:site_name, the JSON-LD publisher's
    name, ``application-name``."""
    publisher = article.get("publisher")
    return (
        meta.get("og:site_name"),
        publisher.get("name") if isinstance(publisher, dict) else None,
        meta.get("application-name"),
    )


def page_site_name(meta: dict[str, list[str]], article: dict[str, Any]) -> str | None:
    """The site's name: og:site_name, else the JSON-LD publisher's, else ``application-name``."""
    return _first(*_site_names(meta, article))


def extract_metadata(root: etree._Element, url: str | None = None) -> PageMetadata:
    """The page's metadata (see the module docstring for the order of sources)."""
    meta = read_meta(root)
    objects = list(iter_jsonld(root))
    article = article_object(objects)
    names = _site_names(meta, article)
    site_name = _first(*names)
    h1s = h1_texts(root)
    candidates = title_sources(root, meta, article, h1s)
    site = SiteNames.of(*names, url)
    jsonld_people, organizations = _jsonld_authors(article)
    people = choose_byline(
        site,
        lambda: jsonld_people,
        lambda: split_authors(_meta_values(meta, _AUTHOR_META)),
        lambda: split_authors(_written_by(meta)),
        lambda: _byline_authors(root),
    )
    published = (
        _first_date(article.get("datePublished"), article.get("dateCreated"))
        or _first_date(_meta_values(meta, _PUBLISHED_META))
        or _time_element_date(root)
        or _url_date(url)
        or _htmldate(root, url)
    )
    published = with_offset(
        published,
        _all_dates(article.get("datePublished"), _meta_values(meta, _PUBLISHED_META), _time_values(root)),
    )
    modified = _first_date(article.get("dateModified")) or _first_date(_meta_values(meta, _MODIFIED_META))
    modified = with_offset(
        modified, _all_dates(article.get("dateModified"), _meta_values(meta, _MODIFIED_META))
    )
    canonical = root.xpath("string(//link[@rel='canonical']/@href)").strip()
    image = _first(meta.get("og:image"), article.get("image"), meta.get("twitter:image"))
    tags = _keywords(meta.get("article:tag")) or _keywords(article.get("keywords"))
    if not tags:
        tags = _keywords(meta.get("news_keywords") or meta.get("keywords"))
    body = article.get("articleBody")
    return PageMetadata(
        title=choose_title(candidates, site_name),
        title_candidates=tuple(dict.fromkeys(value for value in (*candidates.values(), *h1s) if value)),
        authors=choose_authors(people, organizations, site_name),
        published_at=published,
        modified_at=modified,
        description=_first(meta.get("og:description"), meta.get("description"), article.get("description")),
        site_name=site_name,
        canonical_url=urljoin(url or "", canonical) if canonical else None,
        top_image=urljoin(url or "", image) if image else None,
        tags=list(dict.fromkeys(tag for tag in (fold(t) for t in tags) if tag))[:30],
        section=_first(meta.get("article:section"), article.get("articleSection")),
        paywalled=_paywalled(article, meta),
        article_body=fold(body) if isinstance(body, str) and body.strip() else None,
    )
