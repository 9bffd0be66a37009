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

A URL may come with where it was found: its ``source`` (a name), the source's ``labels`` and
when it was ``discovered_at``. The intake stream (:mod:`stores.intake_stream`, read by
:mod:`worker.intake_bridge`) gives them per entry; the producer puts them on the record.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

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
    source: str | None = None
    """Name of the source it came from (the record's ``source``), None if none."""
    labels: Mapping[str, str] = field(default_factory=dict)
    """The source's labels (the record's ``labels``)."""
    discovered_at: datetime | None = None
    """When it was discovered (the record's ``discovered_at``)."""
    entry_id: str | None = None
    """Its intake stream entry id; None for a URL from a file or the API."""

    @property
    def error(self) -> str:
        """The dead letter's ``error`` for a bad URL."""
        if self.line is not None:
            where = f"line {self.line} of the URL file: "
        elif self.entry_id is not None:
            where = f"intake stream entry {self.entry_id}: "
        else:
            where = ""
        return f"{where}{self.problem}"

    @property
    def record_fields(self) -> dict[str, object]:
        """What it gives its record beyond ``id`` and ``url`` (only the fields that are set)."""
        fields: dict[str, object] = {}
        if self.source is not None:
            fields["source"] = self.source
        if self.labels:
            fields["labels"] = dict(self.labels)
        if self.discovered_at is not None:
            fields["discovered_at"] = self.discovered_at
        return fields


def check_url(
    text: str,
    line: int | None = None,
    problem: str | None = None,
    *,
    source: str | None = None,
    labels: Mapping[str, str] | None = None,
    discovered_at: datetime | None = None,
    entry_id: str | None = None,
) -> IntakeUrl:
    """``text`` made ready to enqueue: stripped, without user info, checked, canonicalised.

    ``problem`` marks it bad whatever it looks like (a line that could not be decoded).
    ``source``, ``labels`` and ``discovered_at`` travel with it onto its record.
    """
    stripped = text.strip()
    url = strip_userinfo(stripped)
    credentials = has_userinfo(stripped)
    if problem is None:
        try:
            identity = canonicalize_url(url)
        except PermanentError as exc:
            identity, problem = url, str(exc)
    else:
        identity = url
    return IntakeUrl(
        url,
        identity,
        problem,
        line,
        credentials,
        source=source,
        labels=dict(labels or {}),
        discovered_at=discovered_at,
        entry_id=entry_id,
    )


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
