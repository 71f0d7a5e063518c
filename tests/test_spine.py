"""End to end on real parts: the sample site over loopback, real Prefect runs, a real DuckDB file."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from flows.siteserver import SEED_PATH, SEED_TITLE, SITE_DIR, seed_article_path
from flows.urls import canonical_url
from tests.conftest import has_seed, needs_seed
from warehouse import open_warehouse

EXPECTED = json.loads((SITE_DIR / "expected.json").read_text(encoding="utf-8"))
ARTICLES = {k: v for k, v in EXPECTED.items() if not k.startswith("_")}
PUBLIC_ARTICLES = {k: v for k, v in ARTICLES.items() if not v.get("robots_disallowed")}


def query(path: str, sql: str, params: list | None = None) -> list[tuple]:
    with open_warehouse(path, read_only=True) as con:  # with the page_bodies view
        return con.execute(sql, params or []).fetchall()


def test_first_run_loads_every_article_once(ingest, site_settings, site):
    server, handler = site
    summary = ingest(site_settings)
    wh = site_settings.warehouse
    loaded_urls = {r[0] for r in query(wh, "SELECT url FROM articles")}
    expected_urls = {canonical_url(server.base + p) for p in PUBLIC_ARTICLES}
    if has_seed():
        expected_urls.add(canonical_url(server.base + SEED_PATH))
    assert loaded_urls == expected_urls
    assert summary["loaded"] == len(expected_urls)
    # one row per article, keyed by canonical URL
    assert query(wh, "SELECT count(*), count(DISTINCT url), count(DISTINCT article_id) FROM articles")[0] == (
        len(expected_urls),) * 3
    # the run is recorded with its counts
    run = query(wh, "SELECT status, loaded, discovered FROM runs WHERE run_id = ?", [summary["run_id"]])
    assert run == [("completed", len(expected_urls), summary["discovered"])]
    # raw pages are kept for re-extraction, in the body files beside the warehouse
    assert query(wh, "SELECT count(*) FROM page_bodies WHERE body_file IS NOT NULL")[0][0] >= len(expected_urls)
    assert query(wh, "SELECT count(*) FROM pages WHERE body_gz IS NOT NULL") == [(0,)]
    # robots.txt is respected: the disallowed page was never requested
    assert not any(p.startswith("/private/") for p in handler.requests)


def test_every_discovered_url_has_exactly_one_outcome(ingest, site_settings, site):
    server, _ = site
    summary = ingest(site_settings)
    wh = site_settings.warehouse
    rows = query(wh, "SELECT url, outcome FROM url_outcomes")
    urls = [r[0] for r in rows]
    assert len(urls) == len(set(urls)) == summary["discovered"]
    outcomes = {r[0]: r[1] for r in rows}
    base = server.base
    for missing in EXPECTED["_missing"]:
        assert outcomes[base + missing] == "http_404"
    private = [p for p, v in ARTICLES.items() if v.get("robots_disallowed")]
    assert private and all(outcomes[base + p] == "robots_disallowed" for p in private)
    assert outcomes[base + "/media/annual-report.pdf"] == "not_html"
    by_outcome = {o for o in outcomes.values()}
    assert {"loaded", "duplicate", "http_404", "robots_disallowed", "not_html", "not_article"} <= by_outcome
    for page in EXPECTED["_pages"]:
        if base + page in outcomes:
            assert outcomes[base + page] == "not_article", page
    # the per-run outcome counts add up to the discovered URLs
    assert sum(summary["outcomes"].values()) == summary["discovered"]
    assert summary["loaded"] + summary["duplicates"] + summary["failed"] == summary["discovered"]


def test_second_run_loads_nothing_and_duplicates_nothing(ingest, site_settings):
    first = ingest(site_settings)
    wh = site_settings.warehouse
    before = query(wh, "SELECT url, content_hash FROM articles ORDER BY url")
    outcomes_before = query(wh, "SELECT url, outcome, attempts FROM url_outcomes ORDER BY url")
    second = ingest(site_settings)
    assert second["loaded"] == 0
    assert second["fetched"] == 0
    # unchanged feeds answer 304 (nothing listed) or list only URLs already settled
    assert second["known"] == second["discovered"] and second["discovered"] in (0, first["discovered"])
    assert query(wh, "SELECT url, content_hash FROM articles ORDER BY url") == before
    assert query(wh, "SELECT url, outcome, attempts FROM url_outcomes ORDER BY url") == outcomes_before
    assert query(wh, "SELECT count(*) FROM runs WHERE status = 'completed'")[0][0] == 2


def test_url_variants_collapse_to_one_article(ingest, site_settings, site):
    server, _ = site
    ingest(site_settings)
    wh = site_settings.warehouse
    variants = query(wh, "SELECT url, canonical_url, outcome FROM url_outcomes WHERE url LIKE '%utm_%'")
    assert variants, "the sample feed lists a URL with tracking parameters"
    for _url, canonical, outcome in variants:
        assert outcome == "duplicate"
        assert "utm_" not in canonical and "#" not in canonical
        assert query(wh, "SELECT count(*) FROM articles WHERE url = ?", [canonical])[0][0] == 1


def test_article_fields_match_the_site(ingest, site_settings, site):
    server, _ = site
    ingest(site_settings)
    wh = site_settings.warehouse
    for path, truth in PUBLIC_ARTICLES.items():
        row = query(
            wh,
            "SELECT title, authors, published_date, published_at_source, language, text, extractor, "
            "extractor_version, word_count, content_hash FROM articles WHERE url = ?",
            [canonical_url(server.base + path)],
        )
        assert row, path
        title, authors, published, source, language, text, extractor, version, words, digest = row[0]
        assert title == truth["title"], path
        assert authors == truth["authors"], path
        assert published == date.fromisoformat(truth["published"]), path
        assert source == "metadata", path
        assert language == "en"
        assert truth["first_sentence"] in text, path
        assert truth["last_sentence"] in text, path
        assert extractor == "trafilatura" and version
        assert words > 100 and len(digest) == 64


@needs_seed
def test_seed_article_comes_out_right(ingest, site_settings, site):
    server, _ = site
    ingest(site_settings)
    row = query(
        site_settings.warehouse,
        "SELECT title, authors, published_date, published_at_source, text FROM articles WHERE url = ?",
        [canonical_url(server.base + SEED_PATH)],
    )
    assert row, "the seed article was not loaded"
    title, authors, published, source, text = row[0]
    assert title == SEED_TITLE
    assert authors == ["Douglas Burton"]
    assert published == date(2020, 1, 8)
    assert source == "metadata"
    seed = seed_article_path().read_text(encoding="utf-8").split("\n", 1)[1]
    paragraphs = [" ".join(p.split()) for p in seed.split("\n\n") if p.strip()]
    normalised = " ".join(text.split())
    missing = [p[:60] for p in paragraphs if p not in normalised]
    assert not missing, f"paragraphs missing from the stored text: {missing}"
    # and nothing of the page's boilerplate
    for junk in ("Most read", "Newsletter", "©"):
        assert junk.lower() not in text.lower()


def test_unwritable_warehouse_fails_the_run(ingest, site_settings, tmp_path: Path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the warehouse folder should be")
    bad = site_settings.with_overrides(warehouse=str(blocker / "w.duckdb"))
    from warehouse import WarehouseError

    with pytest.raises(WarehouseError):
        ingest(bad)


def test_sync_tasks_share_one_prefect_client(ingest, site_settings, monkeypatch):
    """transform and load are sync tasks: each call used to build its own Prefect client (an httpx
    client with a new SSL context, and a version check against the API)."""
    import dataclasses

    from prefect.client.orchestration import SyncPrefectClient

    built: list[int] = []
    original = SyncPrefectClient.__init__

    def counting(self, *args, **kwargs):  # noqa: ANN001, ANN202
        built.append(1)
        original(self, *args, **kwargs)

    monkeypatch.setattr(SyncPrefectClient, "__init__", counting)
    settings = dataclasses.replace(site_settings, batch_size=3, load_batch_size=3)  # many sync task calls
    summary = ingest(settings)
    assert summary["loaded"] >= 12
    calls = -(-summary["fetched"] // 3)  # transform calls, at least; as many loads again
    assert calls >= 6
    assert len(built) <= 2, f"{len(built)} sync clients built for {calls}+ sync task calls"
