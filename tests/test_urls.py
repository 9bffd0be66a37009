"""URL canonicalisation: every spelling of one page gets one identity, different pages keep theirs."""

from __future__ import annotations

import pytest

from tasks.errors import PermanentError
from tasks.redact import has_userinfo, redact_text, redact_url, strip_userinfo
from tasks.urls import canonical_link, canonicalize_url, try_canonicalize

SAME_PAGE = [
    # (spelling, canonical form)
    ("https://example.com/news/story", "https://example.com/news/story"),
    ("HTTPS://Example.COM/news/story", "https://example.com/news/story"),
    ("https://example.com:443/news/story", "https://example.com/news/story"),
    ("http://example.com:80/news/story", "http://example.com/news/story"),
    ("https://example.com/news/story#comments", "https://example.com/news/story"),
    ("https://example.com/news/story/", "https://example.com/news/story"),
    ("https://www.example.com/news/story", "https://example.com/news/story"),
    ("https://example.com./news/story", "https://example.com/news/story"),
    ("https://user:secret@example.com/news/story", "https://example.com/news/story"),
    ("https://example.com/news/../news/./story", "https://example.com/news/story"),
    # tracking parameters
    ("https://example.com/news/story?utm_source=tw&utm_medium=social", "https://example.com/news/story"),
    ("https://example.com/news/story?fbclid=IwAR0abc", "https://example.com/news/story"),
    ("https://example.com/news/story?gclid=xyz&mc_cid=1&mc_eid=2", "https://example.com/news/story"),
    ("https://example.com/news/story?UTM_Campaign=x&_ga=1.2.3", "https://example.com/news/story"),
    # AMP variants
    ("https://example.com/news/story/amp", "https://example.com/news/story"),
    ("https://example.com/news/story/amp/", "https://example.com/news/story"),
    ("https://example.com/amp/news/story", "https://example.com/news/story"),
    ("https://example.com/news/story.amp", "https://example.com/news/story"),
    ("https://example.com/news/story?outputType=amp", "https://example.com/news/story"),
    ("https://example.com/news/story?amp=1", "https://example.com/news/story"),
    ("https://example.com/news/story?amp", "https://example.com/news/story"),
    ("https://amp.example.com/news/story", "https://example.com/news/story"),
    ("https://example-com.cdn.ampproject.org/c/s/example.com/news/story", "https://example.com/news/story"),
    # query kept, sorted, encoding normalised
    ("https://example.com/a?b=2&a=1", "https://example.com/a?a=1&b=2"),
    ("https://example.com/a?id=7&utm_source=x", "https://example.com/a?id=7"),
    ("https://example.com/r%c3%a9sum%c3%a9", "https://example.com/r%C3%A9sum%C3%A9"),
    ("https://example.com/résumé", "https://example.com/r%C3%A9sum%C3%A9"),
    ("https://Bücher.example/x", "https://xn--bcher-kva.example/x"),
    ("https://example.com", "https://example.com/"),
    ("http://127.0.0.1:8080/pages/a", "http://127.0.0.1:8080/pages/a"),
    ("http://[::1]:8080/pages/a", "http://[::1]:8080/pages/a"),
]


@pytest.mark.parametrize(("url", "canonical"), SAME_PAGE)
def test_canonical_form(url: str, canonical: str) -> None:
    assert canonicalize_url(url) == canonical
    assert canonicalize_url(canonical) == canonical  # idempotent


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("https://example.com/a?id=1", "https://example.com/a?id=2"),
        ("https://example.com/story", "https://example.com/story-2"),
        ("https://example.com/a?outputType=json", "https://example.com/a"),  # only `amp` is a variant
        ("https://example.com/a?page=2", "https://example.com/a"),
        ("https://example.com:8443/a", "https://example.com/a"),
        ("https://news.example.com/a", "https://example.com/a"),
        ("https://example.com/amplifier", "https://example.com/"),
    ],
)
def test_different_pages_stay_apart(one: str, other: str) -> None:
    assert canonicalize_url(one) != canonicalize_url(other)


@pytest.mark.parametrize(
    "url", ["ftp://example.com/a", "example.com/a", "https:///nohost", "http://h:0/", "x"]
)
def test_bad_urls_are_refused(url: str) -> None:
    with pytest.raises(PermanentError) as info:
        canonicalize_url(url)
    assert info.value.reason == "bad_url"
    assert try_canonicalize(url) is None


def test_canonical_link_is_read_from_the_head_and_made_absolute() -> None:
    html = (
        '<html><head><title>t</title><link rel="stylesheet" href="/s.css">'
        '<link rel="Canonical" href="/news/story?utm_source=rss"></head>'
        '<body><link rel="canonical" href="https://wrong.example/"></body></html>'
    )
    link = canonical_link(html, "https://example.com/amp/news/story")
    assert link == "https://example.com/news/story?utm_source=rss"
    assert try_canonicalize(link) == "https://example.com/news/story"


def test_missing_or_unusable_canonical_link() -> None:
    assert canonical_link("<html><head></head><body>x</body></html>", "https://example.com/") is None
    assert canonical_link('<head><link rel="canonical" href="mailto:x@y"></head>', "https://e.com/") is None
    assert canonical_link("", None) is None


# --- credentials in URLs (tasks.redact) ----------------------------------------------------------
CREDENTIALS = [
    # (url, stripped at intake, masked where shown)
    (
        "https://user:secret@example.com/a?b=1",
        "https://example.com/a?b=1",
        "https://user:***@example.com/a?b=1",
    ),
    (
        "HTTP://user:secret@Example.com:8080/a",
        "HTTP://Example.com:8080/a",
        "HTTP://user:***@Example.com:8080/a",
    ),
    ("https://user:p@ss@example.com/a", "https://example.com/a", "https://user:***@example.com/a"),
    ("https://token@example.com/a", "https://example.com/a", "https://***@example.com/a"),
    ("https://:secret@example.com/", "https://example.com/", "https://***@example.com/"),
    ("  https://user:secret@example.com/ ", "  https://example.com/ ", "  https://user:***@example.com/ "),
    ("ftp://user:secret@example.com/f", "ftp://example.com/f", "ftp://user:***@example.com/f"),
    ("user:secret@example.com/a", "example.com/a", "user:***@example.com/a"),  # schemeless, still a password
]


@pytest.mark.parametrize(("url", "stripped", "masked"), CREDENTIALS)
def test_user_info_is_stripped_at_intake_and_masked_where_shown(url: str, stripped: str, masked: str) -> None:
    assert has_userinfo(url)
    assert strip_userinfo(url) == stripped
    assert redact_url(url) == masked
    assert redact_url(masked) == masked  # idempotent: a letter read back stays the same
    assert "secret" not in redact_url(url) and "secret" not in strip_userinfo(url)


@pytest.mark.parametrize(
    "url",
    ["https://example.com/a@b", "https://example.com/?mail=a@b.example", "https://example.com/#x@y", "x"],
)
def test_urls_without_user_info_are_left_alone(url: str) -> None:
    assert not has_userinfo(url)
    assert strip_userinfo(url) == redact_url(url) == redact_text(url) == url


def test_passwords_in_free_text_are_masked_and_nothing_else_changes() -> None:
    text = (
        "invalid URL 'https://user:secret@example.com/a': bad; "
        '{"url": "http://u:secret@127.0.0.1:1/x", "mail": "me@example.org"} '
        "see https://example.com/a and write to me@example.org; redis://:secret@cache:6379/0"
    )
    assert redact_text(text) == (
        "invalid URL 'https://user:***@example.com/a': bad; "
        '{"url": "http://u:***@127.0.0.1:1/x", "mail": "me@example.org"} '
        "see https://example.com/a and write to me@example.org; redis://***@cache:6379/0"
    )


def test_canonical_form_never_has_user_info() -> None:
    assert canonicalize_url("https://user:secret@example.com/a") == canonicalize_url(
        strip_userinfo("https://user:secret@example.com/a")
    )
