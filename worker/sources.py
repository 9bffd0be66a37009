"""The sources file of ``ingest watch``: which feeds and sitemaps to poll, how often.

TOML, read with :mod:`tomllib`::

    [[sources]]
    name = "example-news"                     # letters, digits, . _ -; unique in the file
    feeds = ["https://news.example.org/rss.xml"]
    sitemaps = ["https://news.example.org/robots.txt"]   # or sitemap / sitemap index URLs
    every = 300                               # seconds between polls (default 300, at least 1)
    host_rate = 0.5                           # optional: requests/s to this source's hosts
    labels = { country = "fr", desk = "politics" }      # optional, carried into the records

A file that is not TOML, or whose sources do not fit the model below, raises
:class:`SourcesFileError` naming the file, the line and the source: the commands print it
and exit 2.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tasks.errors import PermanentError
from tasks.urls import validate_url

#: A source name is a Redis key part and a metric label: short, plain characters only.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_HEADER = re.compile(r"^\s*\[\[\s*sources\s*\]\]")
_TABLE = re.compile(r"^\s*\[")


class SourcesFileError(Exception):
    """The sources file cannot be used; the message names the file, line and source."""


class Source(BaseModel):
    """One outlet: its feeds and sitemaps, polled together every ``every`` seconds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN, description="Unique name; the `source` of its records.")
    feeds: list[str] = Field(default=[], description="RSS, Atom or JSON Feed URLs.")
    sitemaps: list[str] = Field(
        default=[], description="Sitemap, sitemap index, Google News sitemap or robots.txt URLs."
    )
    every: float = Field(default=300.0, ge=1.0, description="Seconds between two polls of the source.")
    host_rate: float | None = Field(
        default=None,
        gt=0,
        description="Requests per second to the hosts of its URLs (else INGEST_HOST_RATE).",
    )
    labels: dict[str, str] = Field(default={}, description="Labels carried into its records.")

    @field_validator("feeds", "sitemaps")
    @classmethod
    def _urls(cls, urls: list[str]) -> list[str]:
        checked = []
        for url in urls:
            try:
                checked.append(validate_url(url))
            except PermanentError as exc:
                raise ValueError(f"{url!r}: {exc}") from None
        return list(dict.fromkeys(checked))

    @field_validator("labels")
    @classmethod
    def _label_names(cls, labels: dict[str, str]) -> dict[str, str]:
        for key in labels:
            if not key.strip():
                raise ValueError("a label name is empty")
        return labels

    @model_validator(mode="after")
    def _something_to_poll(self) -> Source:
        if not self.feeds and not self.sitemaps:
            raise ValueError("lists neither feeds nor sitemaps")
        return self

    @property
    def urls(self) -> list[str]:
        """Every document URL of the source, feeds first."""
        return [*self.feeds, *self.sitemaps]


class SourcesFile(BaseModel):
    """The whole file: one or more ``[[sources]]``, names unique."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sources: list[Source] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> SourcesFile:
        seen: set[str] = set()
        for source in self.sources:
            if source.name in seen:
                raise ValueError(f"source name {source.name!r} is used twice")
            seen.add(source.name)
        return self

    def get(self, name: str) -> Source | None:
        """The source called ``name``, if the file has one."""
        return next((source for source in self.sources if source.name == name), None)


def _lines(text: str) -> tuple[list[int], list[str]]:
    """The 1-based line of each ``[[sources]]`` header, and the file's lines."""
    lines = text.splitlines()
    return [number for number, line in enumerate(lines, start=1) if _HEADER.match(line)], lines


def _where(text: str, loc: tuple[int | str, ...]) -> tuple[int | None, int | None]:
    """(source index, line) a pydantic error location points at, as far as the text tells."""
    if len(loc) < 2 or loc[0] != "sources" or not isinstance(loc[1], int):
        return None, None
    index = loc[1]
    headers, lines = _lines(text)
    if index >= len(headers):
        return index, None
    start = headers[index]
    if len(loc) >= 3 and isinstance(loc[2], str):
        key = re.compile(rf"^\s*{re.escape(loc[2])}\s*=")
        for number in range(start + 1, len(lines) + 1):
            line = lines[number - 1]
            if _TABLE.match(line):
                break
            if key.match(line):
                return index, number
    return index, start


def parse_sources(text: str, path: str = "<sources>") -> SourcesFile:
    """The sources of a file's text; :class:`SourcesFileError` with file, line and source."""
    try:
        data: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SourcesFileError(f"{path}: not valid TOML: {exc}") from None
    _check_unique_names(data, text, path)
    try:
        return SourcesFile.model_validate(data)
    except ValidationError as exc:
        problems = []
        raw = data.get("sources")
        for error in exc.errors():
            loc = tuple(error["loc"])
            index, line = _where(text, loc)
            where = f"{path}:{line}" if line else path
            name = None
            if (
                index is not None
                and isinstance(raw, list)
                and index < len(raw)
                and isinstance(raw[index], dict)
            ):
                name = raw[index].get("name")
            who = (
                f"source {name!r}"
                if isinstance(name, str)
                else (f"source #{index + 1}" if index is not None else "")
            )
            field = ".".join(str(part) for part in loc[2:]) if index is not None else ".".join(map(str, loc))
            message = error["msg"].removeprefix("Value error, ")
            problems.append(": ".join(part for part in (where, who, field, message) if part))
        raise SourcesFileError("\n".join(problems)) from None


def _check_unique_names(data: dict[str, Any], text: str, path: str) -> None:
    """Two sources of one name would share a lease and a dedup trail: refused, with both lines."""
    raw = data.get("sources")
    if not isinstance(raw, list):
        return
    headers, _ = _lines(text)
    first: dict[str, int] = {}
    for index, item in enumerate(raw):
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str):
            continue
        line = headers[index] if index < len(headers) else None
        if name in first:
            where = f"{path}:{line}" if line else path
            raise SourcesFileError(
                f"{where}: source {name!r}: name already used by the source at line {first[name]}"
            )
        first[name] = line or 0


def load_sources(path: str | Path) -> SourcesFile:
    """The sources file at ``path`` (:class:`SourcesFileError` if missing or bad)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SourcesFileError(f"{path}: cannot read the sources file: {exc}") from None
    return parse_sources(text, str(path))
