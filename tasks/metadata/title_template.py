"""The template's words around a headline: site names, section labels and the pieces between.

A template writes the same headline into several title statements and dresses some of them up:
``Headline | Site``, ``Site - Section - Headline``, ``Headline-SectionㅣSite``. What the
template added has to go before the statements can agree (:mod:`tasks.metadata.titles` holds
the vote), and this module is what cuts it, by splitting a title at its separators and telling
the pieces that name the site or a section from the headline.

* A site suffix (``Headline | Site``, ``Headline - Section - Site``) is cut when another source
  shows the bare headline or when the tail names the site; after a separator without spaces
  (``Headline-SectionㅣSite``) only a short tail ending with the site's name is cut.
  The JSON-LD ``headline`` is the article's headline by definition, so its own tail is cut only
  when it names the site (``Headline - Current news`` stays).
* ``<title>`` is the template's, and more goes there and from any source with its very words
  (never when they are the JSON-LD headline's): the run of its pieces that another source gives
  (``Site - Section - Headline`` with the headline in a heading); else the pieces at either end
  that name the site, by its name or its host (``icExample - Headline`` on icexample.co.uk,
  ``Headline - UPI.com``), with the section labels behind the same separator (``Site : Section :
  Headline``); else, in ``Headline - Section - Section - Site``, the labels after the one piece
  that is not a label.

The runs of pieces are also what :mod:`tasks.metadata.headlines` matches a visible heading
against, and :class:`TitleSite` what tells a masthead or a statement that only names the site.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from tasks.metadata.sections import is_label
from tasks.metadata.sites import host_labels, name_key

_TITLE_SEPARATORS = re.compile(r"\s+(?:[|｜·•»–—:-]|::|--)\s*|\s*[|｜：]\s*|\s*(?:--|::)\s*")
#: Separators without spaces (``…커졌다-정치ㅣ한국일보``; ``ㅣ`` is the Hangul letter used as a bar).
_TIGHT_SEPARATORS = re.compile(r"[-–—·•»/ㅣ]")
_WORDS = re.compile(r"\w+")
#: Where a title breaks into pieces: ``Site - Section - Headline``, ``Site > News > Headline``,
#: ``Headline|Site``, ``Site: Headline``. Pieces are matched in runs, so a colon or a dash inside
#: a headline splits nothing for good.
_PIECE_SEPARATORS = re.compile(r"\s+(?:[|｜·•»›>~–—:-]|::|--)\s+|\s*[|｜]\s*|(?<=\S):\s+|\s*(?:--|::)\s*")
#: More pieces than this and a title is a list, not a headline with its site around it.
_MAX_PIECES = 12
#: The fewest pieces of ``Headline - Section - Site`` for its labels to go without the site's name.
_LABEL_RUN_MIN_PIECES = 3
#: A host label shorter than this (``al``, ``tv``) begins or ends too many words to name the site.
_MIN_LABEL_CHARS = 3


def title_pieces(title: str) -> list[tuple[int, int]]:
    """Where each piece of ``title`` starts and ends, split at the separators of a title."""
    spans: list[tuple[int, int]] = []
    start = 0
    for match in _PIECE_SEPARATORS.finditer(title):
        if match.start() > start:
            spans.append((start, match.start()))
        start = match.end()
    if start < len(title):
        spans.append((start, len(title)))
    return spans


def title_runs(title: str) -> list[str]:
    """Every run of consecutive pieces of ``title`` (the whole title too), longest first."""
    spans = title_pieces(title)
    if len(spans) > _MAX_PIECES:
        return [title]
    runs = {
        title[spans[first][0] : spans[last][1]].strip()
        for first in range(len(spans))
        for last in range(first, len(spans))
    }
    return sorted((run for run in runs if run), key=len, reverse=True)


def _names_site(tail: str, site: str) -> bool:
    """``tail`` (lower-cased) is the site's name, maybe with a section or two: ``news - srf``."""
    if not site or not tail:
        return False
    if site in tail:
        return len(_WORDS.findall(tail.replace(site, ""))) <= 2
    return tail in site


@dataclass(frozen=True)
class TitleSite:
    """What names the page's site in its titles: its name and the labels of its host."""

    name: str  # lower-cased, "" when the page gives none
    labels: tuple[str, ...]  # the host's labels as name_key spells them
    keys: frozenset[str]  # the whole name, each label and the host, as name_key spells them

    @classmethod
    def of(cls, site_name: str | None, url: str | None) -> TitleSite:
        labels = host_labels(url)
        keys = {name_key(label) for label in labels}
        if labels:  # the registered domain: ``news.example.co.uk`` -> ``examplecouk``
            host = (urlsplit(url or "").hostname or "").lower()
            keys.add(name_key(host[host.rindex(labels[-1] + ".") :]))
        if site_name:
            keys.add(name_key(site_name))
        keys.discard("")
        return cls((site_name or "").lower(), tuple(name_key(label) for label in labels), frozenset(keys))

    def is_named(self, text: str) -> bool:
        """``text`` is the site's name and nothing else: ``TimesLeader.com``, ``www.example.com``."""
        key = name_key(text)
        return bool(key) and (key in self.keys or key.removeprefix("www") in self.keys)

    def named_in(self, piece: str) -> bool:
        """A piece of ``<title>`` names the site: it names it as :func:`_names_site` reads, or
        begins or ends with a label of the host (``icExample`` on icexample.co.uk, ``UPI.com``)."""
        if _names_site(piece.lower(), self.name):
            return True
        key = name_key(piece).removeprefix("www")
        return any(
            len(label) >= _MIN_LABEL_CHARS and (key.startswith(label) or key.endswith(label))
            for label in self.labels
        )


def _cut_site_pieces(title: str, site: TitleSite) -> str:
    """``title`` without the pieces at its ends that name the site (``Site - Headline``), and
    the section labels behind the same separator (``Site : Section : Headline``, ``Headline -
    Section - Site``). The separator must be the same: ``Site - Section - Kicker: Headline``
    keeps its kicker."""
    spans = title_pieces(title)
    if len(spans) < 2 or len(spans) > _MAX_PIECES:
        return title
    pieces = [title[start:end] for start, end in spans]
    # separators[i] stands between pieces[i] and pieces[i + 1]
    separators = [title[spans[i][1] : spans[i + 1][0]].strip() for i in range(len(spans) - 1)]
    first, last = 0, len(spans) - 1
    while last > first and site.named_in(pieces[last]):
        last -= 1
    if last < len(spans) - 1:
        template = separators[last]
        while last > first and separators[last - 1] == template and is_label(pieces[last]):
            last -= 1
    while first < last and site.named_in(pieces[first]):
        first += 1
    if first > 0:
        template = separators[first - 1]
        while first < last and separators[first] == template and is_label(pieces[first]):
            first += 1
    return title[spans[first][0] : spans[last][1]].strip()


def _cut_label_pieces(title: str) -> str:
    """``Headline - Section - Section - Site`` -> ``Headline``: when every piece but the first is
    a label, all behind one separator, they are the template's (and so, mirrored, for ``Site >
    Section > Headline``). When both ends could be the headline nothing is cut."""
    spans = title_pieces(title)
    if len(spans) < _LABEL_RUN_MIN_PIECES or len(spans) > _MAX_PIECES:
        return title
    pieces = [title[start:end] for start, end in spans]
    separators = {title[spans[i][1] : spans[i + 1][0]].strip() for i in range(len(spans) - 1)}
    if len(separators) != 1 or separators == {":"}:
        return title
    labels_after = all(is_label(piece) for piece in pieces[1:])
    labels_before = all(is_label(piece) for piece in pieces[:-1])
    if labels_after and not labels_before:
        return pieces[0]
    if labels_before and not labels_after:
        return pieces[-1]
    return title


def strip_site_suffix(
    title: str,
    others: Iterable[str],
    site_name: str | None = None,
    *,
    page_title: bool = False,
    url: str | None = None,
) -> str:
    """``Headline | Site`` -> ``Headline``.

    The tail goes when another source shows the bare headline, or when it names the site. Failing
    that, a separator without spaces (``Headline-SectionㅣSite``) cuts off a short tail that ends
    with the site's name: a hyphen or slash in a headline is usually part of a word, so nothing
    less than the site's name will do there.

    ``page_title``: ``title`` is the ``<title>`` element's text, which the template writes around
    the headline, so a run of its pieces that another source gives is taken first, and the site's
    pieces at either end (by ``site_name`` or the host of ``url``) and the section labels go (see
    the module docstring).
    """
    pool = {other for other in others if other and other != title}
    if page_title:
        run = next((run for run in title_runs(title) if run in pool), None)
        if run:
            return run
    site = (site_name or "").lower()
    for match in _TITLE_SEPARATORS.finditer(title):
        head, tail = title[: match.start()].strip(), title[match.end() :].strip().lower()
        if head and (head in pool or _names_site(tail, site)):
            return head
    if page_title:
        cut = _cut_site_pieces(title, TitleSite.of(site_name, url))
        if cut != title:
            return cut
    if site:
        for match in _TIGHT_SEPARATORS.finditer(title):
            head, tail = title[: match.start()].strip(), title[match.end() :].strip().lower()
            if head and tail.endswith(site) and _names_site(tail, site):
                return head
    return _cut_label_pieces(title) if page_title else title
