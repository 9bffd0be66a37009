"""Bounded decompression of HTTP bodies (gzip, deflate, brotli).

httpx's own decoders inflate a whole network chunk at once: 64 kB of a gzip bomb become
64 MB in memory before any size check runs. These decoders take an output budget and never
produce more than it, so a 10 GB bomb costs at most the cap in memory and stops there.
"""

from __future__ import annotations

import zlib
from typing import Protocol

import brotli

from tasks.errors import PermanentError

#: What the fetcher advertises in Accept-Encoding; anything else a server sends is refused.
ACCEPT_ENCODING = "gzip, deflate, br"


class Decoder(Protocol):
    """Turns raw body bytes into at most ``limit`` decoded bytes per call."""

    def decode(self, data: bytes, limit: int) -> bytes:
        """Decode ``data``; return at most ``limit`` bytes (more pending means over the cap)."""
        ...

    def has_pending(self) -> bool:
        """True if decoded output is still waiting (the body exceeds what was asked for)."""
        ...


class IdentityDecoder:
    """No content coding."""

    def __init__(self) -> None:
        self._pending = False

    def decode(self, data: bytes, limit: int) -> bytes:
        self._pending = len(data) > limit
        return data[: limit + 1] if self._pending else data

    def has_pending(self) -> bool:
        return self._pending


class ZlibDecoder:
    """gzip or deflate (zlib-wrapped, or raw deflate as some servers send it)."""

    def __init__(self, gzip: bool) -> None:
        self._gzip = gzip
        self._zlib = zlib.decompressobj(zlib.MAX_WBITS | 16 if gzip else zlib.MAX_WBITS)
        self._first = True
        self._tail = b""

    def decode(self, data: bytes, limit: int) -> bytes:
        if self._first and not self._gzip:
            self._first = False
            try:
                return self._inflate(data, limit)
            except zlib.error:
                self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
        self._first = False
        return self._inflate(data, limit)

    def _inflate(self, data: bytes, limit: int) -> bytes:
        try:
            out = self._zlib.decompress(self._tail + data, limit + 1)
        except zlib.error as exc:
            raise PermanentError(f"corrupt compressed body: {exc}", reason="bad_encoding") from exc
        self._tail = self._zlib.unconsumed_tail
        return out

    def has_pending(self) -> bool:
        return bool(self._tail)


class BrotliDecoder:
    """brotli, with the output bounded by ``output_buffer_limit``."""

    def __init__(self) -> None:
        self._brotli = brotli.Decompressor()

    def decode(self, data: bytes, limit: int) -> bytes:
        try:
            if data:
                return bytes(self._brotli.process(data, output_buffer_limit=limit + 1))
            if self._brotli.can_accept_more_data():
                return b""
            return bytes(self._brotli.process(b"", output_buffer_limit=limit + 1))
        except brotli.error as exc:
            raise PermanentError(f"corrupt brotli body: {exc}", reason="bad_encoding") from exc

    def has_pending(self) -> bool:
        return not self._brotli.can_accept_more_data()


def decoder_for(content_encoding: str | None) -> Decoder:
    """The decoder of a Content-Encoding header (one coding; ``identity`` or none allowed)."""
    codings = [part.strip().lower() for part in (content_encoding or "").split(",") if part.strip()]
    codings = [coding for coding in codings if coding != "identity"]
    if not codings:
        return IdentityDecoder()
    if len(codings) > 1:
        raise PermanentError(f"stacked content codings {content_encoding!r}", reason="bad_encoding")
    coding = codings[0]
    if coding in {"gzip", "x-gzip"}:
        return ZlibDecoder(gzip=True)
    if coding == "deflate":
        return ZlibDecoder(gzip=False)
    if coding == "br":
        return BrotliDecoder()
    raise PermanentError(f"unsupported content coding {coding!r}", reason="bad_encoding")
