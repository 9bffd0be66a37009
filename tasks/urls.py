"""URL validation and canonicalisation.

The canonical form is what the article ``id`` is derived from, so the same page enqueued
with tracking parameters, another host case or a fragment gets the same id.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tasks.errors import PermanentError

_DEFAULT_PORTS = {"http": 80, "https": 443}
_TRACKING_PREFIXES = ("utm_",)
_TRACKING_PARAMS = frozenset(
    {"fbclid", "gclid", "dclid", "msclkid", "mc_cid", "mc_eid", "igshid", "yclid", "_ga", "ref_src"}
)


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


def canonicalize_url(url: str) -> str:
    """Scheme and host lower-cased, default port, fragment and tracking parameters dropped,
    query sorted."""
    parts = urlsplit(validate_url(url))
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower().rstrip(".")
    if ":" in host:
        host = f"[{host}]"
    if parts.port and parts.port != _DEFAULT_PORTS[scheme]:
        host = f"{host}:{parts.port}"
    query = sorted(
        (key, value)
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
        if key.lower() not in _TRACKING_PARAMS and not key.lower().startswith(_TRACKING_PREFIXES)
    )
    return urlunsplit((scheme, host, parts.path or "/", urlencode(query), ""))
