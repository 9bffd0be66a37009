"""Credentials in URLs: removed at intake, masked wherever text is shown or kept.

A URL may carry a user name and password (``https://user:pass@host/``). Nothing downstream
needs them: the ingest pipeline fetches public news pages, a record keyed by the canonical
URL (which has never included user info) goes to every store, and httpx would otherwise
send them as HTTP Basic credentials to the site *and* to every same-host redirect hop. So:

* **at intake** :func:`strip_userinfo` removes the user info from every URL before anything
  is stored, logged, queued or fetched (:mod:`worker.intake`); the record's ``url`` is the
  URL as enqueued minus its user info, and the fetch goes out without credentials. A page
  that needs them is not supported through the URL (it would be a per-host secret in the
  settings, never text in a URL file that ends in logs and stores);
* **everywhere text is shown or kept** — dead letters (:class:`tasks.record.DeadLetter`),
  every structlog line (:mod:`worker.logging`), the task arguments Flower shows
  (:mod:`worker.pipeline`) — :func:`redact_url` / :func:`redact_text` mask whatever user
  info got there anyway (a letter written by an older version, a redirect ``Location`` a
  server sent, an exception message): ``https://user:***@host/`` keeps the user name for
  debugging and hides the password; a user info without a password is masked whole
  (``https://***@host/``), since a lone user name is often a token.

Both maskings are idempotent and work on text that does not parse as a URL: a line too
broken to fetch can still carry a password.
"""

from __future__ import annotations

import re

MASK = "***"

#: ``scheme://userinfo@`` (or ``//userinfo@``) inside free text. The user info runs to the
#: last ``@`` before the authority ends (``/ ? #``), as ``urlsplit`` reads it; quotes,
#: spaces and brackets end it too, so one URL in a sentence or a JSON line never swallows
#: the next word's ``@``.
_IN_TEXT = re.compile(r"(?i)((?:\b[a-z][a-z0-9+.\-]*:)?//)([^/?#\s\"'<>\\`{}|^]*)@")
#: The same at the start of one URL field: everything up to the last ``@`` of the authority.
_AT_START = re.compile(r"(?is)^(\s*(?:[a-z][a-z0-9+.\-]*:)?//)([^/?#]*)@")
#: A schemeless ``user:pass@host/...`` line (a bad URL, but its password is still one).
_SCHEMELESS = re.compile(r"(?s)^(\s*)([^/?#\s@:]+:[^/?#\s]*)@")


def _mask(userinfo: str) -> str:
    user, colon, _password = userinfo.partition(":")
    return f"{user}:{MASK}" if colon and user else MASK


def redact_text(text: str) -> str:
    """``text`` with the password of every URL in it masked (see the module docstring)."""
    if "@" not in text:
        return text
    return _IN_TEXT.sub(lambda m: f"{m.group(1)}{_mask(m.group(2))}@", text)


def redact_url(url: str) -> str:
    """One URL (a dead letter's ``url``, a task argument) with its user info masked."""
    if "@" not in url:
        return url
    for pattern in (_AT_START, _SCHEMELESS):
        match = pattern.match(url)
        if match:
            return f"{match.group(1)}{_mask(match.group(2))}@{url[match.end() :]}"
    return redact_text(url)


def has_userinfo(url: str) -> bool:
    """True when the URL (or a schemeless ``user:pass@host`` line) carries user info."""
    return "@" in url and bool(_AT_START.match(url) or _SCHEMELESS.match(url))


def strip_userinfo(url: str) -> str:
    """The URL without its user info: ``https://u:p@host/a`` -> ``https://host/a``.

    Only the user info goes; every other character stays as written (the record's ``url`` is
    the URL as enqueued). Text that is not a URL keeps its shape, its password removed.
    """
    if "@" not in url:
        return url
    match = _AT_START.match(url)
    if match:
        return match.group(1) + url[match.end() :]
    match = _SCHEMELESS.match(url)
    if match:
        return match.group(1) + url[match.end() :]
    return url
