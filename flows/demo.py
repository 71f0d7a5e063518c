"""``newsdesk demo``: the bundled sample site, served on loopback and ingested end to end."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from flows.config import Settings
from flows.output import render
from flows.siteserver import SITE_DIR, serve_site

__all__ = ["run_demo", "DEMO_QUERY"]

DEMO_QUERY = """SELECT source, published_date, published_at_source AS date_from, title,
       array_to_string(authors, '; ') AS authors, word_count
FROM articles ORDER BY published_at DESC NULLS LAST LIMIT 8"""


def write_demo_sources(base: str, folder: Path) -> Path:
    template = (SITE_DIR / "sources.csv").read_text(encoding="utf-8")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "demo-sources.csv"
    path.write_text(template.replace("{{BASE}}", base), encoding="utf-8")
    return path


def run_demo(settings: Settings, out_format: str, keep: bool, say: Callable[[str], None],
             ingest: Callable[[Settings, str], dict[str, Any]]) -> None:
    from warehouse import open_warehouse

    target = Path(settings.warehouse)
    if not keep:
        for suffix in ("", ".wal"):
            Path(str(target) + suffix).unlink(missing_ok=True)
    server, _handler = serve_site()
    try:
        say(f"newsdesk demo: serving the sample site at {server.base}/ (robots.txt, feeds, sitemaps)")
        sources_file = write_demo_sources(server.base, target.parent)
        demo_settings = settings.with_overrides(
            sources=str(sources_file),
            allow_hosts=(*settings.allow_hosts, server.host),
            host_delay=min(settings.host_delay, 0.05),
        )
        first = ingest(demo_settings, str(sources_file))
        say(f"first run: {first['loaded']} articles loaded from {first['discovered']} discovered URLs")
        second = ingest(demo_settings, str(sources_file))
        say(f"second run: {second['loaded']} new articles ({second['discovered']} URLs listed, "
            f"{second['known']} already settled; unchanged feeds answer 304)")
    finally:
        server.stop()
    columns = ["run", "discovered", "known", "fetched", "loaded", "duplicates", "failed", "outcomes"]
    rows = [[name, *(r.get(c) for c in columns[1:])] for name, r in (("first", first), ("second", second))]
    render(columns, rows, out_format, title="Ingest runs")
    with open_warehouse(str(target), read_only=True, wait=settings.busy_timeout) as con:
        cur = con.execute(DEMO_QUERY)
        render([d[0] for d in cur.description], cur.fetchall(), out_format, title="Latest articles")
        cur = con.execute("SELECT outcome, count(*) AS urls FROM url_outcomes GROUP BY 1 ORDER BY 2 DESC, 1")
        render([d[0] for d in cur.description], cur.fetchall(), out_format, title="Every discovered URL's outcome")
    say(f"warehouse: {target}  (try: newsdesk sql \"SELECT * FROM articles_per_source_day\" -w {target})")
