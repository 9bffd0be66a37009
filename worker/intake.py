"""Intake: every URL checked once, when it is read, before any worker sees it.

A URL file is read as bytes and decoded line by line, so one line that is not UTF-8 is one
bad line (named by its number and column), not a traceback that loses the whole file. Each
URL is then checked and canonicalised here (:func:`check_url`) instead of in the fetch
stage, so ``ingest run`` and ``ingest enqueue`` can name the bad lines before a worker
starts, and the producer (:mod:`worker.producer`) ends them at once as ``bad_url`` dead
letters of stage ``intake``: they stay in the batch total, each ends exactly once, and none
is ever fetched (a line that is not UTF-8 could otherwise be fetched as some other URL).

User info is removed here too (:func:`tasks.redact.strip_userinfo`): no password from a
URL file reaches a record, a log line, a queue, a dead letter or a request. The lines that
had one are reported, since their fetch now goes out without credentials.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from tasks.errors import PermanentError
from tasks.redact import has_userinfo, strip_userinfo
from tasks.urls import canonicalize_url

#: Bad lines named one by one in the report; past this, only how many more there are.
REPORT_LIMIT = 20
_SHOWN_CHARS = 200
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class IntakeUrl:
    """One URL as the producer will enqueue it, with what intake found."""

    url: str
    """The URL as written, surrounding space and user info removed."""
    identity: str
    """The canonical URL (the record id is its hash); the text itself for a bad URL."""
    problem: str | None = None
    """Why it is a bad URL (it ends as a ``bad_url`` dead letter at intake), None if good."""
    line: int | None = None
    """Its line in the URL file, 1-based; None for a URL given by the API."""
    had_credentials: bool = False
    """It carried user info, now removed."""

    @property
    def error(self) -> str:
        """The dead letter's ``error`` for a bad URL."""
        where = f"line {self.line} of the URL file: " if self.line is not None else ""
        return f"{where}{self.problem}"


def check_url(text: str, line: int | None = None, problem: str | None = None) -> IntakeUrl:
    """``text`` made ready to enqueue: stripped, without user info, checked, canonicalised.

    ``problem`` marks it bad whatever it looks like (a line that could not be decoded).
    """
    stripped = text.strip()
    url = strip_userinfo(stripped)
    credentials = has_userinfo(stripped)
    if problem is not None:
        return IntakeUrl(url, url, problem, line, credentials)
    try:
        return IntakeUrl(url, canonicalize_url(url), None, line, credentials)
    except PermanentError as exc:
        return IntakeUrl(url, url, str(exc), line, credentials)


def read_url_lines(lines: Iterable[bytes]) -> list[IntakeUrl]:
    """The URLs of a file read as bytes: one per line; blank lines and ``#`` comments skipped.

    A line that is not UTF-8 becomes a bad URL (its text shown with ``\\xNN`` escapes);
    a UTF-8 byte-order mark at the start of the file is ignored.
    """
    entries = []
    for number, raw in enumerate(lines, start=1):
        if number == 1:
            raw = raw.removeprefix(_BOM)
        problem = None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            text = raw.decode("utf-8", "backslashreplace")
            column = len(raw[: exc.start].decode("utf-8", "replace")) + 1
            problem = f"not UTF-8 (byte 0x{raw[exc.start]:02x} at column {column})"
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        entries.append(check_url(text, number, problem))
    return entries


def bad_urls(entries: Sequence[IntakeUrl]) -> list[IntakeUrl]:
    """The entries that will end as ``bad_url`` dead letters."""
    return [entry for entry in entries if entry.problem is not None]


def report(entries: Sequence[IntakeUrl], source: str) -> list[str]:
    """What the CLI prints about ``source`` before it enqueues: bad lines, removed credentials."""
    bad = bad_urls(entries)
    messages = [
        f"{source} line {entry.line}: {entry.problem}: {_shown(entry.url)}" for entry in bad[:REPORT_LIMIT]
    ]
    if len(bad) > REPORT_LIMIT:
        messages.append(f"{source}: ... and {len(bad) - REPORT_LIMIT} more bad lines")
    if bad:
        ends = "line ends as a bad_url dead letter" if len(bad) == 1 else "lines end as bad_url dead letters"
        messages.append(f"{source}: {len(bad)} bad {ends}, not fetched")
    credentials = [entry.line for entry in entries if entry.had_credentials]
    if credentials:
        lines = ", ".join(str(line) for line in credentials[:REPORT_LIMIT])
        more = f" and {len(credentials) - REPORT_LIMIT} more" if len(credentials) > REPORT_LIMIT else ""
        noun = "line" if len(credentials) == 1 else "lines"
        messages.append(
            f"{source} {noun} {lines}{more}: user name and password removed from the URL;"
            " fetched without them, never logged or stored"
        )
    return messages


def _shown(url: str) -> str:
    return url if len(url) <= _SHOWN_CHARS else url[:_SHOWN_CHARS] + "..."
