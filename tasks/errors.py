"""Error types of the pipeline.

A stage raises :class:`TransientError` for what may succeed later (the task is retried
with backoff) and :class:`PermanentError` for what never will (the URL goes straight to the
dead letters). Each carries a ``reason`` code from the closed list :data:`REASONS`, which is
what the dead-letter record and ``ingest status`` report.
"""

from __future__ import annotations

from typing import Any

#: The closed list of dead-letter reason codes, with what each means.
REASONS: dict[str, str] = {
    "bad_url": "The URL is malformed or its scheme is not http/https.",
    "blocked_address": "The host (or a redirect hop) is or resolves to a loopback, private, "
    "link-local, CGNAT, multicast or reserved address: refused before connecting (SSRF rule).",
    "dns_error": "The host name does not resolve.",
    "connect_error": "The connection failed (refused, reset, unreachable) after retries.",
    "timeout": "The server or a stage was too slow, after retries.",
    "http_error": "The server answered with a permanent HTTP error (4xx).",
    "server_error": "The server answered 5xx on every retry.",
    "rate_limited": "The server answered 429 Too Many Requests on every retry.",
    "too_many_redirects": "The redirect chain was too long or looped.",
    "too_large": "The body exceeded the size cap.",
    "not_html": "The response is not an HTML page.",
    "bad_encoding": "The body's Content-Encoding is unsupported or corrupt.",
    "robots_disallowed": "The site's robots.txt disallows the URL for our user agent.",
    "robots_unavailable": "The site's robots.txt answered 5xx or 429 on every retry; RFC 9309 says "
    "to assume everything is disallowed meanwhile.",
    "no_text": "No article text could be extracted from the page.",
    "not_article": "The page is not an article: most of its visible text is links or short table "
    "cells (a link farm, a data dump) and the text extracted from it is not prose.",
    "page_too_complex": "The page's HTML is past the parsing budget: nested deeper than "
    "`INGEST_HTML_MAX_DEPTH`, more elements than `INGEST_HTML_MAX_NODES`, more total nesting than "
    "`INGEST_HTML_MAX_NESTING`, or more than `INGEST_HTML_MAX_CPU_SECONDS` of CPU in one stage; "
    "refused before it can stall a worker.",
    "body_expired": "The fetched body expired from Redis before a later stage read it.",
    "store_error": "A store was unavailable for longer than the outbox keeps records "
    "(`INGEST_OUTBOX_RETENTION`); the dead letter names the store.",
    "store_rejected": "A store refused the record for good (e.g. the webhook answered 4xx); "
    "the dead letter names the store.",
    "worker_lost": "The task killed its worker process on every delivery.",
    "internal_error": "An unexpected error in a stage (a bug); see `error`.",
}


class IngestError(Exception):
    """Base of every error the pipeline raises on purpose."""

    reason: str = "internal_error"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            if reason not in REASONS:
                raise ValueError(f"unknown dead-letter reason {reason!r}")
            self.reason = reason

    def __repr__(self) -> str:
        """``TransientError('connect_error', 'HTTP ...')``: the reason shows in Flower's RETRY."""
        return f"{type(self).__name__}({self.reason!r}, {str(self)!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled with its reason (and ``retry_after``): a prefork child sends it to the parent."""
        return (_restore, (type(self), self.args, dict(self.__dict__)))


def _restore(cls: type[IngestError], args: tuple[Any, ...], state: dict[str, Any]) -> IngestError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class TransientError(IngestError):
    """May succeed on retry: timeouts, connection errors, 429 and 5xx answers."""

    def __init__(
        self, message: str, *, reason: str = "connect_error", retry_after: float | None = None
    ) -> None:
        super().__init__(message, reason=reason)
        self.retry_after = retry_after


class PermanentError(IngestError):
    """Will never succeed for this URL: it goes to the dead letters at once."""

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message, reason=reason)


class StopPipeline(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Ends a URL's chain early with a non-failure outcome (see ``stores.ledger.OUTCOMES``).

    Raised by a stage when there is nothing more to do, e.g. ``unchanged`` (the server
    answered 304 to a conditional request) or ``seen`` (the URL was ingested inside the
    re-ingest window). The URL is counted under ``outcome`` and no record is written.
    """

    def __init__(self, outcome: str, detail: str = "") -> None:
        super().__init__(detail or outcome)
        self.outcome = outcome
        self.detail = detail
