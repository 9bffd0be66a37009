"""URL validation and canonicalisation.

The canonical form is what the article ``id`` and the "already seen" set are keyed by, so
the same page enqueued with tracking parameters, another host case, a default port, a
fragment or as its AMP twin gets the same id and is fetched once. w3lib (Scrapy's URL
library) does the RFC work: percent-encoding normalised, dot segments resolved, IDNA hosts,
query sorted. On top of it this module removes what only news URLs carry: tracking
parameters and the AMP variants (``/amp``, ``.amp``, ``?outputType=amp``, ``amp.`` hosts,
Google AMP cache URLs).

The canonical form is an identity, never fetched: it may drop a ``www.`` and a trailing
slash that the server would insist on. Fetching always uses the URL as enqueued.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_plus, urljoin, urlsplit, urlunsplit

import lxml.html
from lxml import etree
from w3lib.url import canonicalize_url as w3lib_canonicalize_url

from tasks.errors import PermanentError

_DEFAULT_PORTS = {"http": 80, "https": 443}

#: Query parameters that only say where a click came from (exact names, lower case).
TRACKING_PARAMS = frozenset(
    {
        "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "twclid", "ttclid", "yclid",
        "igshid", "igsh", "mc_cid", "mc_eid", "_ga", "_gl", "ref_src", "ref_url", "mkt_tok",
        "li_fat_id", "_hsenc", "_hsmi", "__hstc", "__hssc", "__hsfp", "oly_anon_id",
        "oly_enc_id", "vero_id", "xtor", "ncid", "ocid", "smid", "sr_share", "cmpid", "spm",
        "at_medium", "at_campaign", "at_source", "wt_mc", "wt.mc_id", "s_cid",
    }
)  # fmt: skip
#: Prefixes of tracking parameter families (``utm_source``, ``pk_campaign``, ...).
TRACKING_PREFIXES = ("utm_", "pk_", "mtm_", "hsa_", "at_")
#: Query parameters that only select the AMP rendering of a page.
AMP_PARAMS = frozenset({"amp", "_amp", "usqp", "amp_js_v", "amp_gsa", "amp_tf", "aoh"})
#: Parameters that select AMP when (and only when) their value is ``amp``.
AMP_VALUED_PARAMS = frozenset({"outputtype", "output", "format", "view"})

_AMP_CACHE_SUFFIX = ".cdn.ampproject.org"
_AMP_CACHE_PATH = re.compile(r"^/[a-z]/(s/)?")
_AMP_SUFFIX = re.compile(r"\.amp(?=\.[a-z0-9]{2,5}$|$)", re.IGNORECASE)
_HOST_PREFIXES = ("www.", "amp.")


def validate_url(url: str) -> str:
    """The URL stripped of surrounding space, or :class:`PermanentError` ``bad_url``."""
    url = url.strip()
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise PermanentError(f"malformed URL: {exc}", reason="bad_url") from exc
    if parts.scheme.lower() not in _DEFAULT_PORTS:
        raise PermanentError(f"scheme {parts.scheme!r} is not http or https", reason="bad_url")
    if not parts.hostname:
        raise PermanentError("URL has no host", reason="bad_url")
    if port == 0:
        raise PermanentError("URL has port 0", reason="bad_url")
    return url


def is_tracking_param(name: str, value: str) -> bool:
    """True for a query parameter that does not change which page is served."""
    key = unquote_plus(name).strip().lower()
    if key in TRACKING_PARAMS or key in AMP_PARAMS or key.startswith(TRACKING_PREFIXES):
        return True
    if key.startswith("amp_"):
        return True
    return key in AMP_VALUED_PARAMS and unquote_plus(value).strip().lower() == "amp"


def _clean_query(query: str) -> str:
    """The raw query without tracking and AMP parameters (raw encoding kept for w3lib)."""
    kept = []
    for item in query.split("&"):
        if not item:
            continue
        name, _, value = item.partition("=")
        if not is_tracking_param(name, value):
            kept.append(item)
    return "&".join(kept)


def _unwrap_amp_cache(url: str) -> str:
    """``https://example-com.cdn.ampproject.org/c/s/example.com/a`` -> ``https://example.com/a``."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if not host.endswith(_AMP_CACHE_SUFFIX):
        return url
    match = _AMP_CACHE_PATH.match(parts.path)
    if not match:
        return url
    scheme = "https" if match.group(1) else "http"
    inner = parts.path[match.end() :]
    if not inner or ("/" not in inner and "." not in inner):
        return url
    return f"{scheme}://{inner}" + (f"?{parts.query}" if parts.query else "")


def _canonical_path(path: str) -> str:
    """The path without AMP segments or suffixes, and without a trailing slash."""
    segments = path.split("/")
    if len(segments) > 2 and segments[1].lower() == "amp":
        del segments[1]  # /amp/2024/story -> /2024/story
    while len(segments) > 2 and segments[-1] == "":
        segments.pop()  # trailing slash
    if len(segments) > 2 and segments[-1].lower() == "amp":
        segments.pop()  # /story/amp -> /story
    segments[-1] = _AMP_SUFFIX.sub("", segments[-1])  # /story.amp.html -> /story.html
    path = "/".join(segments)
    if len(path) > 1:
        path = path.rstrip("/")
    return path or "/"


def _canonical_host(host: str, scheme: str, port: int | None) -> str:
    host = host.lower().rstrip(".")
    for prefix in _HOST_PREFIXES:
        if host.startswith(prefix) and host.count(".") >= 2:
            host = host.removeprefix(prefix)
    if ":" in host:
        host = f"[{host}]"
    if port and port != _DEFAULT_PORTS[scheme]:
        host = f"{host}:{port}"
    return host


def canonicalize_url(url: str) -> str:
    """The identity of a page's URL: equal for every spelling of the same page.

    Scheme and host lower-cased, IDNA host, ``www.``/``amp.`` host prefixes, default port,
    user info, fragment, tracking and AMP parameters and AMP path variants dropped,
    percent-encoding normalised, dot segments resolved, query sorted, trailing slash
    dropped. ``bad_url`` for what :func:`validate_url` refuses.
    """
    url = _unwrap_amp_cache(validate_url(url))
    parts = urlsplit(url)
    trimmed = urlunsplit((parts.scheme, parts.netloc, parts.path, _clean_query(parts.query), ""))
    try:
        normal = urlsplit(w3lib_canonicalize_url(trimmed, keep_blank_values=True))
        port = normal.port
    except (ValueError, UnicodeError) as exc:
        raise PermanentError(f"malformed URL: {exc}", reason="bad_url") from exc
    scheme = normal.scheme.lower()
    host = _canonical_host(normal.hostname or "", scheme, port)
    return urlunsplit((scheme, host, _canonical_path(normal.path), normal.query, ""))


def try_canonicalize(url: str | None) -> str | None:
    """:func:`canonicalize_url`, or None for a missing or unusable URL."""
    if not url:
        return None
    try:
        return canonicalize_url(url)
    except PermanentError:
        return None


_HEAD_END = re.compile(rb"</head\s*>", re.IGNORECASE)


def canonical_link(html: str, base_url: str | None = None) -> str | None:
    """The page's ``<link rel="canonical" href>``, made absolute against ``base_url``.

    Only the ``<head>`` is parsed (the tag belongs there), which keeps this well under a
    millisecond on a 200 kB page.
    """
    data = html.encode("utf-8", "replace")
    end = _HEAD_END.search(data)
    head = data[: end.end()] if end else data[:200_000]
    try:
        root = lxml.html.document_fromstring(head + b"</html>")
    except (etree.ParserError, ValueError):
        return None
    for link in root.iter("link"):
        rel = (link.get("rel") or "").lower().split()
        href = (link.get("href") or "").strip()
        if "canonical" in rel and href:
            absolute = urljoin(base_url, href) if base_url else href
            return absolute if try_canonicalize(absolute) else None
    return None
