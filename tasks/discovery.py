"""Discovery, the pure part: a feed's or a sitemap's bytes in, the article URLs it lists out.

No network here: :mod:`worker.discovery_fetch` fetches the documents (politely, through the
SSRF guard) and hands their bodies to :func:`parse_document`, which sniffs what the body is
and gives it to the library made for it (``bench/discovery.py`` measured the choice):

- RSS 0.9x/1.0/2.0 and Atom: **feedparser** (lenient: a broken feed still yields what it
  could read, and says it was broken);
- JSON Feed 1.0/1.1: the standard ``json`` module and a pydantic model of the spec;
- XML sitemaps, sitemap indexes and Google News sitemaps (``news:publication_date``,
  ``news:title``): **lxml**'s incremental parser, entities and the network off;
- robots.txt ``Sitemap:`` lines: **protego**, the robots.txt parser the fetch stage uses;
- a plain-text sitemap: one URL per line.

A gzipped body (``.xml.gz`` served as a file, not as a Content-Encoding) is inflated here,
bounded by the same cap as the download. A document that is not well formed yields the
entries read before the fault, with :attr:`Document.problem` set: the caller counts it as
an error and does not remember the document's validators, so the next poll reads it whole.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urljoin, urlsplit

import feedparser
from lxml import etree
from protego import Protego
from pydantic import BaseModel, ConfigDict, ValidationError

from tasks.content_encoding import ZlibDecoder
from tasks.errors import IngestError

DocumentKind = Literal["rss", "atom", "json_feed", "sitemap", "sitemap_index", "robots", "text"]

#: Why a discovery request or document failed: the fetch stage's reasons that a request can
#: end with, and the ones only discovery has. Bounded, so they can label a metric.
DISCOVERY_REASONS = (
    "bad_url",
    "blocked_address",
    "dns_error",
    "connect_error",
    "timeout",
    "http_error",
    "server_error",
    "rate_limited",
    "too_many_redirects",
    "too_large",
    "bad_encoding",
    "robots_disallowed",
    "robots_unavailable",
    "bad_feed",  # not a feed or sitemap we can read, or not well formed
    "host_busy",  # the host's request schedule (shared with the fetch workers) was full
    "too_many_sitemaps",  # a sitemap index led to more sitemaps than the cap
)

_SITEMAP_NS = "http://www.sitemaps.org/schemas/sitemap/0.9"
_NEWS_NS = "http://www.google.com/schemas/sitemap-news/0.9"
_GZIP_MAGIC = b"\x1f\x8b"
_FEED_ROOTS = frozenset({"rss", "feed", "RDF", "channel"})
_SITEMAP_ROOTS = frozenset({"urlset", "sitemapindex"})


class DiscoveryError(Exception):
    """A discovery request or document failed, for ``reason`` (one of :data:`DISCOVERY_REASONS`)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        if reason not in DISCOVERY_REASONS:
            raise ValueError(f"unknown discovery reason {reason!r}")
        self.reason = reason


def reason_of(exc: BaseException) -> str:
    """The discovery reason of an exception raised while fetching or parsing a document."""
    if isinstance(exc, DiscoveryError):
        return exc.reason
    if isinstance(exc, IngestError) and exc.reason in DISCOVERY_REASONS:
        return exc.reason
    return "bad_feed" if isinstance(exc, IngestError) else "connect_error"


@dataclass(frozen=True)
class Entry:
    """One article URL a document lists, with what the document says about it."""

    url: str
    title: str | None = None
    published_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def date(self) -> datetime | None:
        """The publication date, else the last modification."""
        return self.published_at or self.updated_at


@dataclass(frozen=True)
class Document:
    """What one fetched document holds: article entries, or further sitemaps to read."""

    kind: DocumentKind
    entries: tuple[Entry, ...] = ()
    sitemaps: tuple[str, ...] = ()
    problem: str | None = None
    """Set when the document was malformed: ``entries`` are those read before the fault."""

    @property
    def is_index(self) -> bool:
        """True for a document that only points at other sitemaps (index, robots.txt)."""
        return self.kind in ("sitemap_index", "robots")


@dataclass
class _Collector:
    """Entries gathered in document order, each URL once (the first mention wins)."""

    base: str
    entries: list[Entry] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)

    def add(self, url: str | None, **fields: Any) -> None:
        absolute = _absolute(self.base, url)
        if absolute is not None and absolute not in self.seen:
            self.seen.add(absolute)
            self.entries.append(Entry(absolute, **fields))


def _absolute(base: str, url: str | None) -> str | None:
    """``url`` made absolute against ``base``; None unless it is an http(s) URL with a host."""
    if not url:
        return None
    url = url.strip()
    # Most documents list absolute URLs: joining is then a no-op that costs most of the parse.
    absolute = url if url.startswith(("http://", "https://")) else urljoin(base, url)
    parts = urlsplit(absolute)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return absolute


def gunzip(data: bytes, max_bytes: int) -> bytes:
    """A gzip file's content, at most ``max_bytes`` of it (``too_large`` past, ``bad_encoding``
    when corrupt): a gzip bomb costs the cap, never more."""
    decoder = ZlibDecoder(gzip=True)
    out = decoder.decode(data, max_bytes)
    if len(out) > max_bytes or decoder.has_pending():
        raise DiscoveryError(f"gzipped document inflates past {max_bytes} bytes", reason="too_large")
    return out


def parse_document(
    body: bytes, url: str, content_type: str | None = None, max_bytes: int = 50_000_000
) -> Document:
    """The entries (or child sitemaps) of the document ``url`` answered with ``body``.

    Raises :class:`DiscoveryError` ``bad_feed`` when the body is none of the formats above,
    or is one of them with nothing readable in it.
    """
    if body.startswith(_GZIP_MAGIC):
        body = gunzip(body, max_bytes)
    head = body[:1024].lstrip(b"\xef\xbb\xbf \t\r\n")
    declared = (content_type or "").split(";", 1)[0].strip().lower()
    if head.startswith((b"{", b"[")) or declared in ("application/feed+json", "application/json"):
        return parse_json_feed(body, url)
    if head.startswith(b"<"):
        root = _root_name(body)
        if root in _SITEMAP_ROOTS:
            return parse_sitemap(body, url)
        if root in _FEED_ROOTS or root is None:
            return parse_feed(body, url, content_type)
        raise DiscoveryError(f"{url}: <{root}> is neither a feed nor a sitemap", reason="bad_feed")
    if urlsplit(url).path.endswith("/robots.txt"):
        return parse_robots(body, url)
    return parse_text_sitemap(body, url)


def _root_name(body: bytes) -> str | None:
    """The local name of the document element, or None if the XML breaks before it."""
    parser = etree.XMLPullParser(events=("start",), resolve_entities=False, no_network=True, load_dtd=False)
    try:
        for start in range(0, min(len(body), 64 * 1024), 4096):
            parser.feed(body[start : start + 4096])
            for _event, element in parser.read_events():
                return str(etree.QName(element).localname)
    except etree.XMLSyntaxError:
        return None
    return None


# --- feeds ------------------------------------------------------------------------------------
def _feed_date(entry: Any, key: str) -> datetime | None:
    parsed = dict.get(entry, f"{key}_parsed")  # not feedparser's own get: it maps updated to published
    if not parsed:
        return None
    try:  # a time.struct_time in UTC
        year, month, day, hour, minute, second = (int(part) for part in parsed[:6])
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except (TypeError, ValueError):
        return None


def parse_feed(body: bytes, url: str, content_type: str | None = None) -> Document:
    """An RSS or Atom feed, read by feedparser (from the bytes: it never fetches)."""
    declared = (content_type or "").lower()
    if "xml" not in declared and "rss" not in declared and "atom" not in declared:
        content_type = "application/xml"  # what the sniffing found; else feedparser flags text/plain
    # A stream, never a string: feedparser fetches a string that looks like a URL or a path.
    # Links are resolved against Content-Location; the HTML of descriptions is not read, so
    # neither resolved nor sanitized (half of feedparser's time on a long feed).
    parsed = feedparser.parse(
        io.BytesIO(body),
        response_headers={"content-location": url, "content-type": content_type or "application/xml"},
        resolve_relative_uris=False,
        sanitize_html=False,
    )
    version = str(parsed.get("version") or "")
    problem = None
    fault = parsed.get("bozo_exception")
    if parsed.get("bozo") and not isinstance(fault, feedparser.ThingsNobodyCaresAboutButMe):
        problem = f"not well formed: {fault}"  # an encoding override is not a fault
    if not version and not parsed.entries:
        raise DiscoveryError(f"{url}: not a feed ({problem or 'no RSS or Atom element'})", reason="bad_feed")
    collected = _Collector(url)
    for item in parsed.entries:
        link = item.get("link")
        if not link and item.get("guidislink"):
            link = item.get("id")
        collected.add(
            link,
            title=(item.get("title") or "").strip() or None,
            published_at=_feed_date(item, "published"),
            updated_at=_feed_date(item, "updated"),
        )
    kind: DocumentKind = "atom" if version.startswith("atom") else "rss"
    return Document(kind, tuple(collected.entries), problem=problem)


class _JsonFeedItem(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str | int | None = None
    url: str | None = None
    external_url: str | None = None
    title: str | None = None
    date_published: datetime | None = None
    date_modified: datetime | None = None


class _JsonFeed(BaseModel):
    """The parts of a JSON Feed (https://www.jsonfeed.org/version/1.1/) discovery reads."""

    model_config = ConfigDict(extra="ignore")

    version: str
    items: list[dict[str, Any]]


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def parse_json_feed(body: bytes, url: str) -> Document:
    """A JSON Feed: ``items[].url`` (else ``external_url``, else an ``id`` that is a URL)."""
    try:
        feed = _JsonFeed.model_validate(json.loads(body))
    except (ValueError, RecursionError, ValidationError) as exc:
        raise DiscoveryError(f"{url}: not a JSON Feed: {str(exc)[:200]}", reason="bad_feed") from exc
    if "jsonfeed.org" not in feed.version:
        raise DiscoveryError(f"{url}: not a JSON Feed (version {feed.version[:80]!r})", reason="bad_feed")
    collected = _Collector(url)
    skipped = 0
    for raw in feed.items:
        try:
            item = _JsonFeedItem.model_validate(raw)
        except ValidationError:
            skipped += 1
            continue
        ident = str(item.id) if item.id is not None else None
        link = item.url or item.external_url or (ident if ident and ident.startswith("http") else None)
        collected.add(
            link,
            title=(item.title or "").strip() or None,
            published_at=_utc(item.date_published),
            updated_at=_utc(item.date_modified),
        )
    problem = f"{skipped} items unreadable" if skipped else None
    return Document("json_feed", tuple(collected.entries), problem=problem)


# --- sitemaps ---------------------------------------------------------------------------------
def _w3c_date(text: str | None) -> datetime | None:
    """A sitemap date (W3C Datetime: ``2025-03-01``, ``2025-03-01T12:00:00Z``, with an offset)."""
    if not text:
        return None
    try:
        return _utc(datetime.fromisoformat(text.strip().replace("Z", "+00:00")))
    except ValueError:
        return None


_NS = f"{{{_SITEMAP_NS}}}"
_NEWS = f"{{{_NEWS_NS}}}"
#: The elements read, in the sitemap namespace and without it (sitemaps written without theirs).
_ENTRY_TAGS = (f"{_NS}url", f"{_NS}sitemap", "url", "sitemap")


def _text(element: etree._Element, *tags: str) -> str | None:
    for tag in tags:
        text = element.findtext(tag)
        if text and text.strip():
            return text.strip()
    return None


def parse_sitemap(body: bytes, url: str) -> Document:
    """A ``<urlset>`` (Google News fields included) or a ``<sitemapindex>``.

    Read incrementally (lxml's ``iterparse``), each ``<url>`` cleared once read, so a 50 MB
    sitemap is never one tree in memory; entities and the network stay off.
    """
    collected = _Collector(url)
    children: list[str] = []
    problem = None
    is_index = _root_name(body) == "sitemapindex"
    events = etree.iterparse(
        io.BytesIO(body),
        events=("end",),
        tag=_ENTRY_TAGS,
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
    )
    try:
        for _event, element in events:
            loc = _text(element, f"{_NS}loc", "loc")
            if element.tag.endswith("sitemap"):
                child = _absolute(url, loc)
                if child is not None and child not in children:
                    children.append(child)
            else:
                news = element.find(f"{_NEWS}news")
                collected.add(
                    loc,
                    title=_text(news, f"{_NEWS}title") if news is not None else None,
                    published_at=(
                        _w3c_date(_text(news, f"{_NEWS}publication_date")) if news is not None else None
                    ),
                    updated_at=_w3c_date(_text(element, f"{_NS}lastmod", "lastmod")),
                )
            element.clear(keep_tail=False)
            while element.getprevious() is not None:
                del element.getparent()[0]
    except etree.XMLSyntaxError as exc:
        problem = f"not well formed: {exc}"
    if problem and not collected.entries and not children:
        raise DiscoveryError(f"{url}: {problem}", reason="bad_feed")
    if is_index:
        return Document("sitemap_index", sitemaps=tuple(children), problem=problem)
    return Document("sitemap", tuple(collected.entries), problem=problem)


def parse_robots(body: bytes, url: str) -> Document:
    """robots.txt: its ``Sitemap:`` lines are the sitemaps to read."""
    rules = Protego.parse(body.decode("utf-8", errors="replace"))
    children = [child for child in (_absolute(url, line) for line in rules.sitemaps) if child]
    return Document("robots", sitemaps=tuple(dict.fromkeys(children)))


def parse_text_sitemap(body: bytes, url: str) -> Document:
    """A plain-text sitemap: one absolute URL per line."""
    collected = _Collector(url)
    for line in body.decode("utf-8", errors="replace").splitlines():
        line = line.strip()
        if line.lower().startswith(("http://", "https://")):
            collected.add(line)
    if not collected.entries:
        raise DiscoveryError(f"{url}: neither a feed, a sitemap nor a list of URLs", reason="bad_feed")
    return Document("text", tuple(collected.entries))
