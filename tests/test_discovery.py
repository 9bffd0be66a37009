"""Discovery: parsing feeds and sitemaps, the sources file, and polls over real HTTP on 127.0.0.1.

The documents are served by :class:`tests.support.feed_server.FeedServer` and changed between
polls; every poll goes through the fetch stage's SSRF guard, robots.txt, the Redis host
schedule, the size cap and conditional GET, and sends its new URLs to the intake stream.
"""

from __future__ import annotations

import gzip
import ipaddress
import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
from typer.testing import CliRunner

from config import Settings
from stores.discovered import DiscoveredUrls
from tasks.discovery import DiscoveryError, parse_document
from tasks.http_client import build_client
from tasks.ssrf import AddressPolicy, GuardedBackend, Resolver, system_resolver
from tests.support.feed_server import (
    FeedServer,
    Route,
    atom,
    json_feed,
    news_sitemap,
    rss,
    serve_feeds,
    sitemap,
    sitemap_index,
)
from tests.support.workers import settings_env
from worker.discovery_fetch import build_discovery_fetcher, collect
from worker.sources import Source, SourcesFileError, load_sources, parse_sources
from worker.watcher import PollResult, poll_source

# --- parsing: bytes in, entries out -------------------------------------------------------------


def test_rss_atom_and_json_feed_give_urls_titles_and_dates() -> None:
    items = [("https://news.example.org/a/1", "One &amp; all"), ("https://news.example.org/a/2", "Two")]
    for body, kind in ((rss(items), "rss"), (atom(items), "atom"), (json_feed(items), "json_feed")):
        document = parse_document(body, "https://news.example.org/feed")
        assert document.kind == kind
        assert [entry.url for entry in document.entries] == [url for url, _ in items]
        assert document.entries[1].title == "Two"
        assert document.entries[0].published_at == datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
        assert document.problem is None


def test_relative_feed_links_are_made_absolute() -> None:
    document = parse_document(rss([("/story/1", "Rel")]), "https://news.example.org/feeds/all.xml")
    assert [entry.url for entry in document.entries] == ["https://news.example.org/story/1"]


def test_google_news_sitemap_gives_publication_date_and_title() -> None:
    body = news_sitemap([("https://news.example.org/a/1", "Headline one")])
    (entry,) = parse_document(body, "https://news.example.org/news.xml").entries
    assert entry.title == "Headline one"
    assert entry.published_at == datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def test_sitemap_index_gzip_and_robots_give_child_sitemaps() -> None:
    index = parse_document(sitemap_index(["https://x.org/s1.xml", "/s2.xml.gz"]), "https://x.org/index.xml")
    assert index.kind == "sitemap_index" and index.is_index
    assert index.sitemaps == ("https://x.org/s1.xml", "https://x.org/s2.xml.gz")
    zipped = parse_document(gzip.compress(sitemap(["https://x.org/a"])), "https://x.org/s2.xml.gz")
    assert [entry.url for entry in zipped.entries] == ["https://x.org/a"]
    robots = parse_document(
        b"User-agent: *\nDisallow: /private\nSitemap: https://x.org/news.xml\nsitemap: /s1.xml\n",
        "https://x.org/robots.txt",
    )
    assert robots.kind == "robots"
    assert robots.sitemaps == ("https://x.org/news.xml", "https://x.org/s1.xml")


def test_broken_xml_keeps_what_was_read_and_says_so() -> None:
    whole = rss([(f"https://x.org/a/{i}", f"T{i}") for i in range(4)])
    cut = whole[: whole.rfind(b"<item>") + 30]
    document = parse_document(cut, "https://x.org/feed")
    assert document.problem and "not well formed" in document.problem
    assert [entry.url for entry in document.entries][:3] == [f"https://x.org/a/{i}" for i in range(3)]
    with pytest.raises(DiscoveryError) as caught:
        parse_document(b"<html><body>not a feed</body></html>", "https://x.org/feed")
    assert caught.value.reason == "bad_feed"


def test_a_gzip_bomb_costs_the_cap_not_memory() -> None:
    bomb = gzip.compress(b"<" + b" " * 5_000_000)
    with pytest.raises(DiscoveryError) as caught:
        parse_document(bomb, "https://x.org/s.xml.gz", max_bytes=100_000)
    assert caught.value.reason == "too_large"


def test_entities_are_not_expanded() -> None:
    body = (
        b'<?xml version="1.0"?><!DOCTYPE urlset [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9"><url><loc>https://x.org/&x;</loc></url>'
        b"<url><loc>https://x.org/b</loc></url></urlset>"
    )
    urls = [entry.url for entry in parse_document(body, "https://x.org/s.xml").entries]
    assert "root:" not in " ".join(urls)
    assert "https://x.org/b" in urls


# --- the sources file -------------------------------------------------------------------------

GOOD = """
[[sources]]
name = "local-news"
feeds = ["http://127.0.0.1:9/rss.xml"]
every = 2
labels = { country = "fr", desk = "politics" }

[[sources]]
name = "maps"
sitemaps = ["http://127.0.0.1:9/robots.txt"]
host_rate = 0.5
"""


def test_sources_file_parses() -> None:
    sources = parse_sources(GOOD).sources
    assert [source.name for source in sources] == ["local-news", "maps"]
    assert sources[0].every == 2 and sources[0].labels == {"country": "fr", "desk": "politics"}
    assert sources[1].every == 300 and sources[1].host_rate == 0.5


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("every = 2", "every = 0"), "sources.toml:5: source 'local-news': every: Input should be greater"),
        (
            ('feeds = ["http://127.0.0.1:9/rss.xml"]', 'feeds = ["ftp://x/rss"]'),
            "sources.toml:4: source 'local-news': feeds: 'ftp://x/rss': scheme 'ftp' is not http or https",
        ),
        (('name = "maps"', 'name = "local-news"'), "sources.toml:8: source 'local-news': name already used"),
        (("host_rate = 0.5", "host_rate = 0.5\nfeeed = []"), "sources.toml:12: source 'maps': feeed: Extra"),
        (
            ('sitemaps = ["http://127.0.0.1:9/robots.txt"]', ""),
            "sources.toml:8: source 'maps': lists neither",
        ),
        (("every = 2", "every = "), "sources.toml: not valid TOML: Invalid value (at line 5, column 9)"),
    ],
)
def test_a_bad_sources_file_names_file_line_and_source(change: tuple[str, str], expected: str) -> None:
    with pytest.raises(SourcesFileError) as caught:
        parse_sources(GOOD.replace(*change), "sources.toml")
    assert str(caught.value).startswith(expected), str(caught.value)


def test_cli_exits_2_on_a_bad_sources_file(tmp_path: Path) -> None:
    from worker.cli import cli

    bad = tmp_path / "sources.toml"
    bad.write_text(GOOD.replace("every = 2", "every = -1"), encoding="utf-8")
    for args in (["watch", str(bad)], ["discover", "maps", "--sources", str(bad)]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 2, result.output
        assert "sources.toml:5: source 'local-news': every" in result.output
    missing = CliRunner().invoke(cli, ["watch", str(tmp_path / "nope.toml")])
    assert missing.exit_code == 2 and "cannot read the sources file" in missing.output


def test_the_readme_example_is_a_valid_sources_file(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    example = readme.split("## Feeds and sitemaps", 1)[1].split("```toml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "sources.toml"
    path.write_text(example, encoding="utf-8")
    assert load_sources(path).sources


# --- polls over HTTP ----------------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[FeedServer]:
    with serve_feeds() as running:
        yield running


def _intake(client: redis.Redis, prefix: str) -> list[dict[str, str]]:
    return [
        {key.decode(): value.decode() for key, value in fields.items()}
        for _id, fields in client.xrange(f"{prefix}:intake")
    ]


class _Poller:
    """Polls one source the way a watcher does (fetcher, dedup, stream), one call per poll."""

    def __init__(self, settings: Settings, client: redis.Redis, http_client: object | None = None) -> None:
        self.settings = settings
        self.client = client
        self.fetcher = build_discovery_fetcher(settings, client=http_client)  # type: ignore[arg-type]
        self.discovered = DiscoveredUrls(client, settings.key_prefix, settings.discovery_seen_ttl)

    def poll(self, source: Source) -> PollResult:
        return poll_source(source, self.fetcher, self.client, self.settings.key_prefix, self.discovered)


def test_polls_send_new_items_once_with_source_labels_and_discovered_at(
    settings: Settings, redis_client: redis.Redis, server: FeedServer
) -> None:
    base = server.base_url
    first = [(f"{base}/a/1", "One"), (f"{base}/a/2", "Two")]
    feed = server.set("/rss.xml", Route(rss(first), "application/rss+xml"))
    source = Source(name="local", feeds=[feed], every=2, labels={"country": "fr"})
    poller = _Poller(settings, redis_client)
    before = datetime.now(UTC)

    assert [entry.url for entry in poller.poll(source).sent] == [f"{base}/a/1", f"{base}/a/2"]
    # Between polls: a new item on top, item 2's title updated, and item 1 with a tracking parameter.
    second = [
        (f"{base}/a/3", "Three"),
        (f"{base}/a/1?utm_source=rss", "One"),
        (f"{base}/a/2", "Two (updated)"),
    ]
    server.set("/rss.xml", Route(rss(second), "application/rss+xml"))
    result = poller.poll(source)
    assert [entry.url for entry in result.sent] == [f"{base}/a/3"]
    assert result.listed == 3 and not result.errors
    assert poller.poll(source).sent == []  # nothing new: nothing sent

    entries = _intake(redis_client, settings.key_prefix)
    assert [entry["url"] for entry in entries] == [f"{base}/a/1", f"{base}/a/2", f"{base}/a/3"]
    for entry in entries:
        assert entry["source"] == "local"
        assert json.loads(entry["labels"]) == {"country": "fr"}
        assert datetime.fromisoformat(entry["discovered_at"]) >= before.replace(microsecond=0)


def test_conditional_get_a_304_yields_nothing(
    settings: Settings, redis_client: redis.Redis, server: FeedServer
) -> None:
    base = server.base_url
    items = [(f"{base}/c/1", "One")]
    feed = server.set("/atom.xml", Route(atom(items), "application/atom+xml", etag='"v1"'))
    dated = server.set(
        "/feed.json",
        Route(json_feed(items), "application/feed+json", last_modified="Sat, 01 Mar 2025 12:00:00 GMT"),
    )
    source = Source(name="cond", feeds=[feed, dated], every=2)
    poller = _Poller(settings, redis_client)
    assert len(poller.poll(source).sent) == 1  # the same URL in both feeds: sent once
    second = poller.poll(source)
    assert second.unchanged == 2 and second.sent == [] and second.listed == 0
    assert [hit.status for hit in server.hits_of("/atom.xml")] == [200, 304]
    assert [hit.conditional for hit in server.hits_of("/feed.json")] == [False, True]
    # The feed changes (a new ETag): read whole again, the new item sent.
    server.set(
        "/atom.xml", Route(atom([(f"{base}/c/2", "Two"), *items]), "application/atom+xml", etag='"v2"')
    )
    third = poller.poll(source)
    assert [entry.url for entry in third.sent] == [f"{base}/c/2"] and third.unchanged == 1


def test_gzip_404_and_broken_xml_each_end_one_document_not_the_poll(
    settings: Settings, redis_client: redis.Redis, server: FeedServer
) -> None:
    base = server.base_url
    zipped = server.set("/sitemap.xml.gz", Route(gzip.compress(sitemap([f"{base}/g/1"])), "application/gzip"))
    encoded = server.set(
        "/enc.xml", Route(rss([(f"{base}/g/2", "Two")]), "application/rss+xml", gzip_encoding=True)
    )
    whole = rss([(f"{base}/g/3", "Three"), (f"{base}/g/4", "Four")])
    broken = server.set("/broken.xml", Route(whole[: whole.rfind(b"<item>") + 25], "application/rss+xml"))
    missing = server.url("/gone.xml")
    source = Source(name="mixed", feeds=[missing, broken, encoded], sitemaps=[zipped], every=2)
    result = _Poller(settings, redis_client).poll(source)
    assert sorted(entry.url for entry in result.sent) == [f"{base}/g/1", f"{base}/g/2", f"{base}/g/3"]
    assert sorted((error.url, error.reason) for error in result.errors) == [
        (broken, "bad_feed"),
        (missing, "http_error"),
    ]


def test_robots_sitemap_lines_lead_to_indexes_and_sitemaps_within_the_cap(
    settings: Settings, redis_client: redis.Redis, server: FeedServer
) -> None:
    base = server.base_url
    robots = server.set(
        "/robots.txt",
        Route(f"User-agent: *\nDisallow: /private/\nSitemap: {base}/index.xml\n".encode(), "text/plain"),
    )
    server.set(
        "/index.xml", Route(sitemap_index([f"{base}/news.xml", f"{base}/s1.xml.gz", f"{base}/s2.xml"]))
    )
    server.set("/news.xml", Route(news_sitemap([(f"{base}/n/1", "News one")])))
    server.set("/s1.xml.gz", Route(gzip.compress(sitemap([f"{base}/s/1"])), "application/x-gzip"))
    server.set("/s2.xml", Route(sitemap([f"{base}/s/2"])))
    fetcher = build_discovery_fetcher(settings)
    found = collect(fetcher, [robots])
    assert [entry.url for entry in found.entries] == [f"{base}/n/1", f"{base}/s/1", f"{base}/s/2"]
    assert found.entries[0].title == "News one" and not found.errors
    capped = collect(fetcher, [robots], max_sitemaps=3)  # robots.txt, the index, news.xml
    assert [entry.url for entry in capped.entries] == [f"{base}/n/1"]
    assert [error.reason for error in capped.errors] == ["too_many_sitemaps"]


class _RecordingBackend(GuardedBackend):
    """The real guarded backend, noting every address it dials (and never leaving loopback)."""

    def __init__(self, policy: AddressPolicy, resolver: Resolver = system_resolver) -> None:
        super().__init__(policy, resolver)
        self.dialled: list[str] = []

    def open_socket(
        self, address: str, port: int, timeout: float | None, local_address: str | None
    ) -> socket.socket:
        self.dialled.append(address)
        if not ipaddress.ip_address(address).is_loopback:
            raise AssertionError(f"test tried to dial {address}")
        return super().open_socket(address, port, timeout, local_address)


@pytest.mark.parametrize(
    "target",
    ["http://10.0.0.1/feed.xml", "http://169.254.169.254/latest/meta-data/", "http://192.168.1.1/rss"],
)
def test_a_feed_redirecting_to_a_private_address_is_refused_without_connecting(
    settings: Settings, redis_client: redis.Redis, server: FeedServer, target: str
) -> None:
    # Loopback (the test server) is exempt, as an operator's own network would be; all else stays refused.
    guarded = settings.model_copy(
        update={"fetch_allow_private": False, "fetch_allowed_networks": ["127.0.0.0/8"]}
    )
    backend = _RecordingBackend(AddressPolicy.from_settings(False, ["127.0.0.0/8"]))
    http = build_client(backend, user_agent=settings.user_agent, host_connections=2, http2=False)
    feed = server.set("/moved.xml", Route(location=target))
    good = server.set("/ok.xml", Route(rss([(f"{server.base_url}/ok/1", "Fine")])))
    try:
        result = _Poller(guarded, redis_client, http).poll(Source(name="ssrf", feeds=[feed, good]))
    finally:
        http.close()
    assert [(error.url, error.reason) for error in result.errors] == [(feed, "blocked_address")]
    assert [entry.url for entry in result.sent] == [f"{server.base_url}/ok/1"]
    assert set(backend.dialled) == {"127.0.0.1"}  # the redirect target was never dialled
    assert len(server.hits_of("/moved.xml")) == 1


def test_robots_disallowing_a_feed_is_obeyed(
    settings: Settings, redis_client: redis.Redis, server: FeedServer
) -> None:
    server.set("/robots.txt", Route(b"User-agent: *\nDisallow: /private/\n", "text/plain"))
    feed = server.set("/private/rss.xml", Route(rss([(f"{server.base_url}/p/1", "P")])))
    result = _Poller(settings, redis_client).poll(Source(name="polite", feeds=[feed]))
    assert [error.reason for error in result.errors] == ["robots_disallowed"]
    assert server.hits_of("/private/rss.xml") == []


def test_discover_prints_without_sending_or_marking(
    settings: Settings, redis_client: redis.Redis, server: FeedServer, tmp_path: Path
) -> None:
    import subprocess
    import sys

    base = server.base_url
    news = server.set(
        "/news.xml", Route(news_sitemap([(f"{base}/d/1", "Big news"), (f"{base}/d/2", "More")]))
    )
    env = settings_env(settings)
    command = [sys.executable, "-m", "worker", "discover", news, "--json"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [(line["url"], line["title"], line["published_at"]) for line in lines] == [
        (f"{base}/d/1", "Big news", "2025-03-01T12:00:00+00:00"),
        (f"{base}/d/2", "More", "2025-03-01T11:59:00+00:00"),
    ]
    assert "2 new URLs of 2 listed" in done.stderr
    assert redis_client.xlen(f"{settings.key_prefix}:intake") == 0
    # Nothing was marked: a poll still sends both; discover then lists none as new.
    assert len(_Poller(settings, redis_client).poll(Source(name="cli", sitemaps=[news])).sent) == 2
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert again.stdout == "" and "0 new URLs of 2 listed (2 already sent)" in again.stderr
    # A source by name from a sources file; a 404 document makes the exit code 3.
    path = tmp_path / "sources.toml"
    path.write_text(f'[[sources]]\nname = "n"\nsitemaps = ["{news}", "{base}/gone.xml"]\n', encoding="utf-8")
    named = subprocess.run(
        [sys.executable, "-m", "worker", "discover", "n", "--sources", str(path), "--all"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert named.returncode == 3, named.stderr
    assert named.stdout.splitlines()[0].startswith(f"sent\t{base}/d/1\t2025-03-01T12:00:00+00:00\tBig news")
    assert "gone.xml: http_error" in named.stderr
