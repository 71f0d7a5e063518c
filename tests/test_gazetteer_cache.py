"""The gazetteer tables are built once and then read from a cache file, with the same content."""

from __future__ import annotations

from pathlib import Path

import pytest

from transforms.fields import gazetteer


def test_cached_tables_equal_the_built_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    built = gazetteer._build_places()
    first = gazetteer._cached("places", gazetteer._build_places)
    files = list((tmp_path / "newsdesk").glob("places-*.pickle"))
    assert len(files) == 1 and first == built
    calls = []
    again = gazetteer._cached("places", lambda: calls.append(1) or {})
    assert again == built and not calls  # read from the file, not rebuilt
    assert again["Baghdad"][0] == "IQ"


def test_a_damaged_cache_file_is_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    gazetteer._cached("given-names", gazetteer._build_given_names)
    (path,) = (tmp_path / "newsdesk").glob("given-names-*.pickle")
    path.write_bytes(b"not a pickle")
    names = gazetteer._cached("given-names", gazetteer._build_given_names)
    assert names == gazetteer._build_given_names() and names["mary"] == "f"
