"""The name of the site that published the page, and how to recognise it.

The site name is a record field of its own (og:site_name, else the JSON-LD publisher's name,
else ``application-name``), and it is also what the other extractors must tell apart from the
article's own statements: a title's ``| Site`` suffix (:mod:`tasks.metadata.title_template`) and a
byline that names the publisher instead of a person (:mod:`tasks.metadata.authors`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from tasks.metadata.statements import first_text, texts

_WORDS = re.compile(r"\w+")


def name_key(name: str) -> str:
    """A name reduced for comparison: case folded, everything but letters and digits dropped."""
    return re.sub(r"\W+", "", name.casefold())


def site_names(meta: dict[str, list[str]], article: dict[str, Any]) -> tuple[Any, Any, Any]:
    """What the page calls its site, in order of trust: og:site_name, the JSON-LD publisher's
    name, ``application-name``."""
    publisher = article.get("publisher")
    return (
        meta.get("og:site_name"),
        publisher.get("name") if isinstance(publisher, dict) else None,
        meta.get("application-name"),
    )


#: Second-level labels of country domains that name no site (``bbc.co.uk``, ``smh.com.au``).
_SECOND_LEVEL = frozenset({"ac", "co", "com", "edu", "gov", "go", "ne", "net", "or", "org"})


def host_labels(url: str | None) -> tuple[str, ...]:
    """The labels of ``url``'s host that can name the site, lower-cased: ``news.sbs.com.au`` ->
    ``news``, ``sbs``. The top-level domain, a country's second level and ``www`` name none."""
    host = (urlsplit(url).hostname or "") if url and "://" in url else ""
    labels = host.lower().split(".")[:-1]
    if len(labels) > 1 and labels[-1] in _SECOND_LEVEL:
        labels.pop()
    return tuple(label for label in labels if label != "www" and not label.isdigit())


def page_site_name(meta: dict[str, list[str]], article: dict[str, Any]) -> str | None:
    """The site's name: og:site_name, else the JSON-LD publisher's, else ``application-name``."""
    return first_text(*site_names(meta, article))


@dataclass(frozen=True)
class SiteNames:
    """The names a site goes by, to tell its own name from a byline.

    Pages often give the publisher as the author (``"author": {"@type": "Organization", "name":
    "n-tv NACHRICHTEN"}``, ``<meta name="author" content="LTO">``): that says who published the
    page, not who wrote it, and must not hide a byline that another source gives. It stands as the
    byline only when no source names anyone else.
    """

    keys: frozenset[str]
    acronyms: frozenset[str]

    @classmethod
    def of(cls, *names: Any) -> SiteNames:
        """From the site's names (og:site_name, publisher, application-name) and the page's URL."""
        keys: set[str] = set()
        acronyms: set[str] = set()
        for value in names:
            for text in texts(value):
                if "://" in text:
                    host = (urlsplit(text).hostname or "").removeprefix("www.")
                    keys.update(name_key(label) for label in host.split(".")[:-1] if len(label) >= 2)
                    continue
                keys.add(name_key(text))
                words = _WORDS.findall(text)
                if len(words) >= 2:
                    acronyms.add("".join(word[0] for word in words).casefold())
        keys.discard("")
        return cls(frozenset(keys), frozenset(acronyms))

    def named(self, name: str) -> bool:
        """``name`` is the site's: ``ntv NACHRICHTEN`` for ntv.de, ``LTO`` for Legal Tribune Online."""
        key = name_key(name)
        if not key:
            return False
        if key in self.keys or key in self.acronyms:
            return True
        # ``VnExpress`` for ``Báo VnExpress``, ``LBCI`` for ``LBCI Lebanon``: one word that begins or
        # ends a name of the site. A person's name has two words, and a short word (``Lee``) could
        # begin anything, so neither counts.
        if len(name.split()) > 1 or len(key) < 4:
            return False
        return any(site.startswith(key) or site.endswith(key) for site in self.keys)

    def drop_from(self, names: list[str]) -> list[str]:
        """``names`` without the site's own."""
        return [name for name in names if not self.named(name)]
