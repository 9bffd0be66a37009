"""Feed and sitemap parsers compared: what each reads, how fast, and what it does with bad XML.

The candidates for discovery (issue 15): feedparser, trafilatura's own ``feeds`` and
``sitemaps`` modules (already a dependency), ultimate-sitemap-parser (``usp``, only if it is
installed: ``.venv/bin/pip install ultimate-sitemap-parser``) and what the project uses,
:func:`tasks.discovery.parse_document`. Each document is generated here (nothing is
fetched): RSS 2.0 and Atom of 1,000 items, a JSON Feed of 1,000 items, a sitemap of 50,000
URLs, a Google News sitemap of 1,000, a sitemap index of 500 and a truncated RSS feed.

For each parser and document the table gives the URLs read (of those listed), whether
titles and dates came with them, and the median milliseconds of 5 parses; the URLs are on a
loopback host (``127.0.0.1:8080``) as in the tests, and on a real-looking one (a parser that
drops the first cannot be tested locally). Then the licence of each library.

    .venv/bin/python bench/discovery.py
"""

from __future__ import annotations

import json
import logging
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
HOSTS = {"loopback": "http://127.0.0.1:8080", "public": "https://www.lemonde.fr"}


def _when(i: int) -> datetime:
    return T0 - timedelta(minutes=i)


def rss(base: str, n: int) -> bytes:
    items = "".join(
        f"<item><title>Story {i} &amp; more</title><link>{base}/a/{i}.html</link>"
        f"<guid>{base}/a/{i}.html</guid>"
        f"<pubDate>{_when(i).strftime('%a, %d %b %Y %H:%M:%S +0000')}</pubDate>"
        f"<description><![CDATA[<p>Lead of story {i}, <a href='/x'>link</a></p>]]></description></item>"
        for i in range(n)
    )
    return (
        f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>T</title>'
        f"<link>{base}/</link>{items}</channel></rss>"
    ).encode()


def atom(base: str, n: int) -> bytes:
    items = "".join(
        f"<entry><title>Story {i}</title><link rel='alternate' href='{base}/a/{i}.html'/><id>urn:{i}</id>"
        f"<published>{_when(i).isoformat()}</published><updated>{_when(i).isoformat()}</updated>"
        f"<summary type='html'>&lt;p&gt;Lead {i}&lt;/p&gt;</summary></entry>"
        for i in range(n)
    )
    return (
        f'<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom"><title>T</title>'
        f"<id>urn:feed</id><updated>{T0.isoformat()}</updated>{items}</feed>"
    ).encode()


def json_feed(base: str, n: int) -> bytes:
    items = [
        {
            "id": str(i),
            "url": f"{base}/a/{i}.html",
            "title": f"Story {i}",
            "date_published": _when(i).isoformat(),
        }
        for i in range(n)
    ]
    return json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "T", "items": items}).encode()


def urlset(base: str, n: int) -> bytes:
    urls = "".join(
        f"<url><loc>{base}/a/{i}.html</loc><lastmod>{_when(i).isoformat()}</lastmod></url>" for i in range(n)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">'
        f"{urls}</urlset>"
    ).encode()


def news_sitemap(base: str, n: int) -> bytes:
    urls = "".join(
        f"<url><loc>{base}/a/{i}.html</loc><news:news><news:publication><news:name>Example</news:name>"
        f"<news:language>en</news:language></news:publication><news:publication_date>{_when(i).isoformat()}"
        f"</news:publication_date><news:title>Story {i}</news:title></news:news></url>"
        for i in range(n)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9" '
        f'xmlns:news="http://www.google.com/schemas/sitemap-news/0.9">{urls}</urlset>'
    ).encode()


def sitemap_index(base: str, n: int) -> bytes:
    maps = "".join(f"<sitemap><loc>{base}/sitemap-{i}.xml</loc></sitemap>" for i in range(n))
    return (
        '<?xml version="1.0" encoding="UTF-8"?><sitemapindex '
        f'xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{maps}</sitemapindex>'
    ).encode()


def broken_rss(base: str, n: int) -> bytes:
    """A feed cut in its last item, as a server timing out mid-body sends it."""
    whole = rss(base, n + 1)
    return whole[: whole.rfind(b"<item>") + 40]


#: Document name -> (builder, entries listed, entries expected to be readable).
DOCUMENTS: dict[str, tuple[Callable[[str, int], bytes], int, int]] = {
    "RSS 2.0 (1,000)": (rss, 1000, 1000),
    "Atom (1,000)": (atom, 1000, 1000),
    "JSON Feed (1,000)": (json_feed, 1000, 1000),
    "sitemap (50,000)": (urlset, 50_000, 50_000),
    "Google News sitemap (1,000)": (news_sitemap, 1000, 1000),
    "sitemap index (500)": (sitemap_index, 500, 500),
    "RSS cut mid-item (20)": (broken_rss, 20, 20),
}


@dataclass
class Read:
    """What a parser got out of one document."""

    urls: int = 0
    titles: int = 0
    dates: int = 0
    flagged: bool = False  # it said the document was broken


# --- the candidates ---------------------------------------------------------------------------
def with_feedparser(body: bytes, url: str) -> Read:
    import io

    import feedparser

    parsed = feedparser.parse(io.BytesIO(body), response_headers={"content-location": url})
    entries = [e for e in parsed.entries if e.get("link")]
    fault = parsed.get("bozo_exception")
    return Read(
        len(entries),
        sum(1 for e in entries if e.get("title")),
        sum(1 for e in entries if e.get("published_parsed") or e.get("updated_parsed")),
        bool(parsed.get("bozo")) and not isinstance(fault, feedparser.ThingsNobodyCaresAboutButMe),
    )


def with_trafilatura(body: bytes, url: str) -> Read:
    from courlan import get_hostinfo
    from trafilatura.feeds import FeedParameters, extract_links, is_potential_feed
    from trafilatura.sitemaps import SITEMAP_FORMAT, SitemapObject

    text = body.decode("utf-8", errors="replace")
    domain, base = get_hostinfo(url)
    if SITEMAP_FORMAT.match(text) and not is_potential_feed(text[:200].replace("<?xml", "")):
        sitemap = SitemapObject(base or url, domain or "", [])
        sitemap.current_url = url
        sitemap.content = text
        sitemap.process()
        return Read(len(sitemap.urls) + len(sitemap.sitemap_urls))
    links = extract_links(text, FeedParameters(base or url, domain or "", url))
    return Read(len(links))


class _UspErrors(logging.Handler):
    """usp says a document was broken only in its log."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


def with_usp(body: bytes, url: str) -> Read:
    from usp.fetch_parse import XMLSitemapParser
    from usp.web_client.abstract_client import LocalWebClient

    children: list[str] = []

    def keep_children(urls: list[str], level: int, parents: set[str]) -> list[str]:
        children.extend(urls)
        return []  # recorded, not fetched

    errors = _UspErrors()
    logger = logging.getLogger("usp")
    logger.setLevel(logging.ERROR)
    logger.addHandler(errors)
    logger.propagate = False
    try:
        parser = XMLSitemapParser(
            url=url,
            content=body.decode("utf-8", errors="replace"),
            recursion_level=0,
            web_client=LocalWebClient(),
            parent_urls=set(),
            recurse_list_callback=keep_children,
        )
        pages = list(parser.sitemap().all_pages())
    finally:
        logger.removeHandler(errors)
    return Read(
        len(pages) + len(children),
        sum(1 for page in pages if page.news_story and page.news_story.title),
        sum(1 for page in pages if page.last_modified or (page.news_story and page.news_story.publish_date)),
        errors.count > 0,
    )


def with_project(body: bytes, url: str) -> Read:
    from tasks.discovery import DiscoveryError, parse_document

    try:
        document = parse_document(body, url)
    except DiscoveryError:
        return Read(flagged=True)
    return Read(
        len(document.entries) + len(document.sitemaps),
        sum(1 for entry in document.entries if entry.title),
        sum(1 for entry in document.entries if entry.date),
        document.problem is not None,
    )


CANDIDATES: dict[str, tuple[str | None, Callable[[bytes, str], Read]]] = {
    "feedparser": ("feedparser", with_feedparser),
    "trafilatura": ("trafilatura", with_trafilatura),
    "usp": ("ultimate-sitemap-parser", with_usp),
    "tasks.discovery": (None, with_project),
}


def _installed(distribution: str | None) -> bool:
    if distribution is None:
        return True
    try:
        metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return False
    return True


def measure(parse: Callable[[bytes, str], Read], body: bytes, url: str) -> tuple[Read, float]:
    """The parser's read of ``body`` and its median time over 5 runs, in ms."""
    times = []
    read = Read()
    for _ in range(5):
        started = time.perf_counter()
        try:
            read = parse(body, url)
        except Exception:  # a parser that cannot read the format at all
            read = Read(flagged=True)
        times.append((time.perf_counter() - started) * 1000)
    return read, statistics.median(times)


def main() -> None:
    logging.basicConfig(level=logging.CRITICAL)
    names = [name for name, (dist, _) in CANDIDATES.items() if _installed(dist)]
    print(
        "URLs read / listed, with titles (t) and dates (d); ms: median of 5 parses; ! = said it was broken\n"
    )
    print("| document | host | " + " | ".join(names) + " |")
    print("| --- | --- |" + " --- |" * len(names))
    for document, (build, listed, _readable) in DOCUMENTS.items():
        for host, base in HOSTS.items():
            body = build(base, listed)
            cells = []
            for name in names:
                read, ms = measure(CANDIDATES[name][1], body, f"{base}/feed.xml")
                fields = ("t" if read.titles else "") + ("d" if read.dates else "")
                flag = " !" if read.flagged else ""
                cells.append(f"{read.urls}/{listed} {fields}{flag} {ms:.1f} ms")
            print(f"| {document} | {host} | " + " | ".join(cells) + " |")
    print("\n| library | version | licence |\n| --- | --- | --- |")
    for name, (dist, _) in CANDIDATES.items():
        if dist is None or not _installed(dist):
            continue
        meta = metadata.metadata(dist)
        licence = meta.get("License-Expression") or meta.get("License") or ""
        print(f"| {name} | {metadata.version(dist)} | {licence.splitlines()[0] if licence else '?'} |")


if __name__ == "__main__":
    main()
