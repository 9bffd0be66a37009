"""The fetch stage against a misbehaving loopback server: each case ends right, and fast."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from config import Settings
from stores.redis_client import client_for
from stores.robots import RobotsCache
from tasks.errors import IngestError, PermanentError, StopPipeline, TransientError
from tasks.fetch import Fetcher, HostBusy, build_fetcher, retry_after
from tests.support.hostile_server import HostileServer, serve_hostile


@pytest.fixture
def fetch_settings(settings: Settings) -> Settings:
    """Loopback allowed, short timeouts, politeness loose enough not to bind."""
    return settings.model_copy(
        update={
            "fetch_connect_timeout": 1.0,
            "fetch_read_timeout": 1.0,
            "fetch_deadline": 3.0,
            "host_rate": 1000.0,
        }
    )


@pytest.fixture
def server() -> Iterator[HostileServer]:
    with serve_hostile() as running:
        yield running


@pytest.fixture
def fetcher(fetch_settings: Settings) -> Iterator[Fetcher]:
    built = build_fetcher(fetch_settings)
    yield built
    built.client.close()


def _fails(fetcher: Fetcher, url: str) -> IngestError:
    with pytest.raises(IngestError) as caught:
        fetcher.fetch(url, "rec")
    return caught.value


def test_good_page_is_fetched_and_decoded(fetcher: Fetcher, server: HostileServer) -> None:
    page = fetcher.fetch(server.url("/page/a"), "rec-a")
    assert page.status == 200
    assert "Sergueï" in page.html and "évoquent" in page.html
    assert page.validators.etag == '"/page/a-v1"'


def test_hang_after_headers_times_out_within_bounds(fetcher: Fetcher, server: HostileServer) -> None:
    started = time.monotonic()
    error = _fails(fetcher, server.url("/hang"))
    assert isinstance(error, TransientError) and error.reason == "timeout"
    assert time.monotonic() - started < 3.5


def test_dribbling_server_hits_the_deadline(fetcher: Fetcher, server: HostileServer) -> None:
    # Each byte arrives within the 1 s read timeout, so only the total deadline stops it.
    started = time.monotonic()
    error = _fails(fetcher, server.url("/dribble"))
    elapsed = time.monotonic() - started
    assert isinstance(error, TransientError) and error.reason == "timeout"
    assert 2.5 < elapsed < 5.0


@pytest.mark.parametrize("path", ["/big", "/big-chunked"])
def test_50_mb_body_is_refused(fetcher: Fetcher, server: HostileServer, path: str) -> None:
    started = time.monotonic()
    error = _fails(fetcher, server.url(path))
    assert isinstance(error, PermanentError) and error.reason == "too_large"
    assert time.monotonic() - started < 3.0


@pytest.mark.parametrize("path", ["/gzip-bomb", "/br-bomb"])
def test_compression_bomb_stops_at_the_cap(
    fetch_settings: Settings, server: HostileServer, path: str
) -> None:
    import tracemalloc

    fetcher = build_fetcher(fetch_settings.model_copy(update={"fetch_max_bytes": 2_000_000}))
    tracemalloc.start()
    try:
        error = _fails(fetcher, server.url(path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        fetcher.client.close()
    assert isinstance(error, PermanentError) and error.reason == "too_large"
    # The cap is 2 MB decoded; a decoder that inflated whole chunks would peak far higher.
    assert peak < 12_000_000, peak


def test_redirect_loop_is_bounded(fetcher: Fetcher, server: HostileServer) -> None:
    error = _fails(fetcher, server.url("/loop"))
    assert error.reason == "too_many_redirects"
    assert server.hits["/loop"] == fetcher.settings.fetch_max_redirects + 1


def test_redirect_hops_take_slots_on_the_host_they_go_to(
    fetch_settings: Settings, server: HostileServer
) -> None:
    """Three URLs of one site all redirect to another, rate-limited, site: the second site
    sees its requests (robots.txt included) spaced by its rate, not back to back.

    The slots are booked 0.25 s apart from the first one, and a request can only arrive
    after its slot: the last of the four arrives at least 0.75 s after the loop began,
    however loaded the machine (load only delays). Gaps between arrivals are not asserted:
    on a busy machine one late arrival makes the next gap look short."""
    settings = fetch_settings.model_copy(update={"host_rates": {"127.0.0.2": 4.0}})
    fetcher = build_fetcher(settings)
    server.robots = None
    try:
        with serve_hostile("127.0.0.2") as target:
            target.robots = None
            started = time.monotonic()  # the server stamps arrivals with time.monotonic()
            for number in range(3):
                page = fetcher.fetch(server.url(f"/to/{target.url(f'/page/{number}')}"), f"hop-{number}")
                assert page.final_url == target.url(f"/page/{number}")
            arrivals = target.hit_times()
    finally:
        fetcher.client.close()
    assert len(arrivals) == 4  # robots.txt and three pages
    assert arrivals == sorted(arrivals)
    assert arrivals[-1] - started >= 3 * 0.25 - 0.01, [round(when - started, 3) for when in arrivals]


def test_429_carries_retry_after_then_succeeds(fetcher: Fetcher, server: HostileServer) -> None:
    error = _fails(fetcher, server.url("/429"))
    assert isinstance(error, TransientError) and error.reason == "rate_limited"
    assert error.retry_after == 1.0
    # Every worker now leaves the host alone for that second...
    with pytest.raises(HostBusy) as busy:
        fetcher.fetch(server.url("/page/other"), "rec-2")
    assert busy.value.booked and 0.8 < busy.value.wait <= 1.0
    # ...and the retry, at its slot, succeeds.
    time.sleep(busy.value.wait)
    assert fetcher.fetch(server.url("/429"), "rec", booked=True).status == 200


def test_503_twice_then_200(fetcher: Fetcher, server: HostileServer) -> None:
    for _ in range(2):
        error = _fails(fetcher, server.url("/503"))
        assert isinstance(error, TransientError) and error.reason == "server_error"
    assert "after 503" in fetcher.fetch(server.url("/503"), "rec").html


def test_windows_1252_without_charset_is_decoded(fetcher: Fetcher, server: HostileServer) -> None:
    html = fetcher.fetch(server.url("/cp1252"), "rec").html
    for word in ("évoquent", "Sergueï", "Qaïda", "enquêteurs"):
        assert word in html


def test_pdf_labelled_html_is_refused(fetcher: Fetcher, server: HostileServer) -> None:
    assert _fails(fetcher, server.url("/fake.pdf")).reason == "not_html"


def test_xhtml_is_accepted(fetcher: Fetcher, server: HostileServer) -> None:
    assert "Sergueï" in fetcher.fetch(server.url("/xhtml"), "rec").html


def test_robots_disallow_is_honoured_and_cached(fetcher: Fetcher, server: HostileServer) -> None:
    assert _fails(fetcher, server.url("/private/secret")).reason == "robots_disallowed"
    assert "/private/secret" not in server.hits
    assert fetcher.fetch(server.url("/page/open"), "rec").status == 200
    # A second process (a fresh fetcher) reads the rules from Redis, not from the site.
    other = build_fetcher(fetcher.settings)
    try:
        assert _fails(other, server.url("/private/other")).reason == "robots_disallowed"
    finally:
        other.client.close()
    assert server.hits["/robots.txt"] == 1


def test_robots_can_be_ignored_for_owned_hosts(fetch_settings: Settings, server: HostileServer) -> None:
    fetcher = build_fetcher(fetch_settings.model_copy(update={"robots_ignore_hosts": ["127.0.0.1"]}))
    try:
        assert fetcher.fetch(server.url("/private/mine"), "rec").status == 200
    finally:
        fetcher.client.close()
    assert "/robots.txt" not in server.hits


def test_robots_answering_503_blocks_the_site_for_now(fetcher: Fetcher, server: HostileServer) -> None:
    server.robots_status = 503
    error = _fails(fetcher, server.url("/page/a"))
    assert isinstance(error, TransientError) and error.reason == "robots_unavailable"
    assert "/page/a" not in server.hits
    server.robots_status = 200  # back up: the retry goes through
    assert fetcher.fetch(server.url("/page/a"), "rec").status == 200


def test_unreachable_site_is_a_connect_error(fetcher: Fetcher) -> None:
    error = _fails(fetcher, "http://127.0.0.1:1/page")
    assert isinstance(error, TransientError) and error.reason == "connect_error"


def test_missing_robots_allows_everything(fetcher: Fetcher, server: HostileServer) -> None:
    server.robots = None
    assert fetcher.fetch(server.url("/private/x"), "rec").status == 200


def test_crawl_delay_spaces_requests(fetch_settings: Settings, server: HostileServer) -> None:
    server.robots = "User-agent: *\nCrawl-delay: 2\n"
    fetcher = build_fetcher(fetch_settings)
    try:
        # The robots.txt request takes the first slot (at the configured rate: its
        # Crawl-delay is not known yet), the page the next one; then Crawl-delay governs.
        fetcher.fetch(server.url("/page/1"), "r1")
        with pytest.raises(HostBusy) as busy:
            fetcher.fetch(server.url("/page/2"), "r2")
    finally:
        fetcher.client.close()
    assert busy.value.booked
    assert 1.5 < busy.value.wait <= 2.0


def test_busy_host_is_deferred_not_fetched(fetch_settings: Settings, server: HostileServer) -> None:
    server.robots = None
    fetcher = build_fetcher(fetch_settings.model_copy(update={"host_rate": 0.5, "fetch_defer_horizon": 3}))
    try:
        RobotsCache(client_for(fetcher.settings), fetcher.settings.key_prefix, 60).put(
            "http://127.0.0.1:" + str(server.server_address[1]), ""
        )
        fetcher.fetch(server.url("/page/1"), "r1")
        with pytest.raises(HostBusy) as second:
            fetcher.fetch(server.url("/page/2"), "r2")
        with pytest.raises(HostBusy) as third:
            fetcher.fetch(server.url("/page/3"), "r3")
    finally:
        fetcher.client.close()
    assert second.value.booked and 1.8 < second.value.wait <= 2.0
    # The next slot is 4 s away, past the 3 s horizon: not booked, ask again later.
    assert not third.value.booked
    assert "/page/2" not in server.hits and "/page/3" not in server.hits


def test_etag_refetch_ends_unchanged(fetcher: Fetcher, server: HostileServer) -> None:
    fetcher.fetch(server.url("/page/e"), "rec-e")
    with pytest.raises(StopPipeline) as stop:
        fetcher.fetch(server.url("/page/e"), "rec-e")
    assert stop.value.outcome == "unchanged"
    assert server.hits["/page/e"] == 2


@pytest.mark.parametrize(
    "url", ["ftp://127.0.0.1/x", "file:///etc/passwd", "http:///nohost", "javascript:alert(1)"]
)
def test_bad_urls_are_permanent(fetcher: Fetcher, url: str) -> None:
    assert _fails(fetcher, url).reason == "bad_url"


def test_retry_after_accepts_http_dates() -> None:
    import httpx

    later = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    seconds = retry_after(httpx.Response(429, headers={"Retry-After": later}))
    assert seconds is not None and 25 < seconds <= 31
    assert retry_after(httpx.Response(429, headers={"Retry-After": "7"})) == 7.0
    assert retry_after(httpx.Response(429)) is None
