"""Turning a fetched body into text: content-type checks and charset detection.

Servers lie about both, so the declared values are checked against the bytes: a PDF
labelled ``text/html`` is refused, and a page without a charset is decoded by its BOM, its
``<meta charset>``, strict UTF-8, then charset-normalizer, in that order.
"""

from __future__ import annotations

import codecs
import re

from charset_normalizer import from_bytes

from tasks.errors import PermanentError

_HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
#: Types that may hold HTML when a server does not know better.
_GENERIC_TYPES = frozenset({"", "text/plain", "application/octet-stream", "application/xml", "text/xml"})
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([a-zA-Z0-9_.:-]+)""", re.IGNORECASE)
_HTML_START = re.compile(
    rb"^\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html|head|body|meta|title|div|p)\b",
    re.IGNORECASE | re.DOTALL,
)
_BINARY_MAGIC = (b"%PDF", b"\x89PNG", b"GIF8", b"\xff\xd8\xff", b"PK\x03\x04", b"\x1f\x8b", b"ID3", b"OggS")


def media_type(content_type: str | None) -> str:
    """``text/html; charset=utf-8`` -> ``text/html``."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def header_charset(content_type: str | None) -> str | None:
    """The charset parameter of a Content-Type header, if it names a known codec."""
    match = re.search(r"charset\s*=\s*[\"']?([\w.:-]+)", content_type or "", re.IGNORECASE)
    return _known_codec(match.group(1)) if match else None


def ensure_html(content_type: str | None, head: bytes) -> None:
    """Raise ``not_html`` unless the header and the first bytes agree this is HTML."""
    declared = media_type(content_type)
    sniff = head[:1024].lstrip()
    if sniff.startswith(_BINARY_MAGIC):
        raise PermanentError(f"body is binary (declared {declared or 'no type'})", reason="not_html")
    if declared in _HTML_TYPES:
        return
    if declared in _GENERIC_TYPES and _HTML_START.match(sniff):
        return
    raise PermanentError(f"content type {declared or 'missing'} is not HTML", reason="not_html")


def decode_html(body: bytes, content_type: str | None = None) -> str:
    """The page as text, with the charset from BOM, header, ``<meta>`` or detection."""
    for bom, codec in (
        (codecs.BOM_UTF8, "utf-8"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if body.startswith(bom):
            return body.decode(codec, errors="replace").lstrip("\ufeff")
    declared = header_charset(content_type)
    if declared:
        return body.decode(declared, errors="replace")
    meta = _META_CHARSET.search(body[:4096])
    meta_codec = _known_codec(meta.group(1).decode("ascii", "ignore")) if meta else None
    if meta_codec:
        return body.decode(meta_codec, errors="replace")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        pass
    best = from_bytes(body).best()
    if best is not None:
        return str(best)
    return body.decode("windows-1252", errors="replace")


def _known_codec(name: str) -> str | None:
    try:
        codec = codecs.lookup(name.strip().lower()).name
    except LookupError:
        return None
    # Pages declaring Latin-1 are in practice windows-1252 (the WHATWG encoding standard).
    return "cp1252" if codec in {"latin-1", "iso8859-1", "ascii"} else codec
