"""``newsdesk``: a thin command line over the library.

Results go to stdout (``--format table|csv|json``), messages to stderr. Exit codes: 0 success,
1 the work failed (busy or unwritable warehouse, SQL error), 2 bad input (arguments, sources file,
configuration).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

try:  # typer >= 0.20 vendors click
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover - older typer uses click itself
    from click import exceptions as click_exceptions  # type: ignore[no-redef]

from flows.config import ConfigError, Settings, load_settings
from flows.output import FORMATS, default_format, render
from flows.sources import Source, SourceError, read_sources

__all__ = ["app", "main"]

app = typer.Typer(
    name="newsdesk",
    help="Scheduled news ingestion into a DuckDB warehouse.\n\nExample: newsdesk demo",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class InputError(Exception):
    """Bad input from the user: exit code 2."""


class WorkError(Exception):
    """The work could not be done: exit code 1."""


# -- shared options -------------------------------------------------------------------------------------
WarehouseOpt = Annotated[str | None, typer.Option("--warehouse", "-w", help="DuckDB warehouse file [env NEWSDESK_WAREHOUSE; default warehouse/newsdesk.duckdb].")]
SourcesOpt = Annotated[str | None, typer.Option("--sources", "-s", help="Sources CSV [env NEWSDESK_SOURCES; default seeds/sources.csv].")]
FormatOpt = Annotated[str | None, typer.Option("--format", "-f", help="Output format: table, csv or json [default: table on a terminal, else csv].")]
ConfigOpt = Annotated[str | None, typer.Option("--config", help="TOML settings file [env NEWSDESK_CONFIG; default ./newsdesk.toml if present].")]
AllowHostOpt = Annotated[list[str] | None, typer.Option("--allow-host", help="Allow connecting to HOST[:PORT] even if it resolves to a private or loopback address (repeatable).")]


def _err(message: str) -> None:
    sys.stderr.write(message.rstrip("\n") + "\n")
    sys.stderr.flush()


def _settings(config: str | None, **flags: Any) -> Settings:
    try:
        return load_settings(config, **flags)
    except ConfigError as exc:
        raise InputError(str(exc)) from None


def _fmt(fmt: str | None) -> str:
    chosen = (fmt or default_format()).lower()
    if chosen not in FORMATS:
        raise InputError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    return chosen


def _sources(path: str) -> list[Source]:
    try:
        return read_sources(path)
    except SourceError as exc:
        raise InputError(str(exc)) from None


def prepare_prefect_env() -> None:
    """Quiet defaults for running flows in-process; the user's own Prefect settings win."""
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "INFO")
    # With no PREFECT_API_URL, Prefect starts a temporary server; the first start on a machine also
    # creates its database, about 18 s on two idle cores. Prefect's own limit (20 s) fails the run
    # outright on a busy or slow machine, so allow more.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


def run_ingest(settings: Settings, sources_file: str) -> dict[str, Any]:
    """Validate inputs, make sure the warehouse is writable, then run the ingest flow in-process."""
    _sources(sources_file)  # a malformed row stops us before anything is fetched
    _ensure_writable(settings)
    prepare_prefect_env()
    from flows.ingest import ingest_flow

    state: Any = asyncio.run(ingest_flow(dataclasses.asdict(settings), sources_file, return_state=True))  # type: ignore[arg-type]
    if state.is_failed():
        try:
            state.result()
        except Exception as exc:
            raise WorkError(f"ingest failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
        raise WorkError("ingest failed")
    result: dict[str, Any] = state.result()
    return result


def _summary_rows(summary: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    columns = ["run_id", "status", "sources", "discovered", "known", "fetched", "loaded", "duplicates", "failed",
               "seconds", "outcomes"]
    return columns, [[summary.get(c) for c in columns]]


# -- commands -------------------------------------------------------------------------------------------
@app.command()
def ingest(
    sources: SourcesOpt = None,
    warehouse: WarehouseOpt = None,
    allow_host: AllowHostOpt = None,
    config: ConfigOpt = None,
    fmt: FormatOpt = None,
    delay: Annotated[float | None, typer.Option("--delay", help="Seconds between requests to one host.")] = None,
    concurrency: Annotated[int | None, typer.Option("--concurrency", help="Parallel requests overall.")] = None,
    workers: Annotated[int | None, typer.Option("--workers", help="Extraction processes (0 = one per core).")] = None,
) -> None:
    """Run every enabled source once: discover, fetch, clean, transform, load.

    Example: newsdesk ingest --sources seeds/sources.csv --warehouse warehouse/newsdesk.duckdb
    """
    out_format = _fmt(fmt)
    settings = _settings(config, warehouse=warehouse, sources=sources, allow_hosts=tuple(allow_host or ()),
                         host_delay=delay, concurrency=concurrency, workers=workers)
    summary = run_ingest(settings, settings.sources)
    columns, rows = _summary_rows(summary)
    render(columns, rows, out_format)


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="SQL to run against the warehouse (read-only).")],
    warehouse: WarehouseOpt = None,
    fmt: FormatOpt = None,
    config: ConfigOpt = None,
    wait: Annotated[float | None, typer.Option("--wait", help="Seconds to wait while another process holds the warehouse.")] = None,
) -> None:
    """Run ad-hoc SQL on the warehouse, opened read-only.

    Example: newsdesk sql "SELECT source, count(*) FROM articles GROUP BY 1" --format table
    """
    import duckdb

    from warehouse import WarehouseError, open_warehouse

    out_format = _fmt(fmt)
    settings = _settings(config, warehouse=warehouse, busy_timeout=wait)
    try:
        with open_warehouse(settings.warehouse, read_only=True, wait=settings.busy_timeout) as con:
            try:
                cursor = con.execute(query)
            except duckdb.Error as exc:
                first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise WorkError(f"SQL error: {first}") from None
            if cursor.description is None:
                return
            columns = [d[0] for d in cursor.description]
            rows = cursor.fetchall()
    except WarehouseError as exc:
        raise WorkError(str(exc)) from None
    render(columns, rows, out_format)


@app.command("sources")
def sources_cmd(
    sources: SourcesOpt = None,
    warehouse: WarehouseOpt = None,
    fmt: FormatOpt = None,
    config: ConfigOpt = None,
) -> None:
    """List the configured sources and each one's last outcome.

    Example: newsdesk sources --format json
    """
    from warehouse import WarehouseError, open_warehouse

    out_format = _fmt(fmt)
    settings = _settings(config, warehouse=warehouse, sources=sources)
    configured = _sources(settings.sources)
    state: dict[str, tuple[Any, ...]] = {}
    if Path(settings.warehouse).exists():
        try:
            with open_warehouse(settings.warehouse, read_only=True, wait=settings.busy_timeout) as con:
                for row in con.execute(
                    "SELECT source, last_run_at, last_status, last_discovered, last_new, last_loaded, "
                    "consecutive_failures, last_detail FROM source_state"
                ).fetchall():
                    state[row[0]] = row[1:]
        except WarehouseError as exc:
            raise WorkError(str(exc)) from None
    columns = ["name", "kind", "enabled", "schedule", "url", "last_run_at", "last_status", "last_discovered",
               "last_new", "last_loaded", "consecutive_failures", "last_detail"]
    rows = [[s.name, s.kind, s.enabled, s.schedule, s.url, *state.get(s.name, (None,) * 7)] for s in configured]
    render(columns, rows, out_format)


@app.command()
def views(
    warehouse: WarehouseOpt = None,
    fmt: FormatOpt = None,
    config: ConfigOpt = None,
) -> None:
    """List the warehouse's tables and views with their columns.

    Example: newsdesk views --format table
    """
    from warehouse import WarehouseError, open_warehouse

    out_format = _fmt(fmt)
    settings = _settings(config, warehouse=warehouse)
    try:
        with open_warehouse(settings.warehouse, read_only=True, wait=settings.busy_timeout) as con:
            rows = con.execute(
                "SELECT table_name, table_type, string_agg(column_name, ', ' ORDER BY ordinal_position) "
                "FROM information_schema.columns JOIN information_schema.tables USING (table_catalog, table_schema, table_name) "
                "WHERE table_schema = 'main' GROUP BY ALL ORDER BY table_type, table_name"
            ).fetchall()
    except WarehouseError as exc:
        raise WorkError(str(exc)) from None
    render(["name", "type", "columns"], rows, out_format)


@app.command()
def demo(
    warehouse: Annotated[str | None, typer.Option("--warehouse", "-w", help="Demo warehouse file [default warehouse/demo.duckdb].")] = None,
    fmt: FormatOpt = None,
    keep: Annotated[bool, typer.Option("--keep", help="Keep an existing demo warehouse instead of starting fresh.")] = False,
    config: ConfigOpt = None,
) -> None:
    """Serve the bundled sample site on 127.0.0.1, ingest it twice (the second run finds nothing new),
    and print what was loaded and an example query.

    Example: newsdesk demo
    """
    from flows.demo import run_demo

    out_format = _fmt(fmt or "table")
    settings = _settings(config, warehouse=warehouse or "warehouse/demo.duckdb")
    run_demo(settings, out_format, keep=keep, say=_err, ingest=run_ingest)


backfill_app = typer.Typer(
    help="Backfill a date range from sitemaps, WARC archives or stored pages (resumable, idempotent).\n\n"
    "Example: newsdesk backfill --since 2020-01-01 --until 2020-01-31 --from warc --warc crawl.warc.gz",
    invoke_without_command=True,
    no_args_is_help=False,
)
app.add_typer(backfill_app, name="backfill")


class _Progress:
    """A rich progress bar on a terminal, plain log lines otherwise."""

    def __init__(self) -> None:
        self.live = sys.stderr.isatty()
        self._bar: Any = None
        self._parts: Any = None
        self._articles: Any = None

    def __enter__(self) -> _Progress:
        if self.live:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[rate]}"), TimeRemainingColumn(),
                                 console=Console(file=sys.stderr), transient=False)
            self._bar.__enter__()
        return self

    def __call__(self, event: str, data: dict[str, Any]) -> None:
        if event == "plan":
            if self._bar is not None:
                self._parts = self._bar.add_task("partitions", total=data["to_run"], rate="")
                self._articles = self._bar.add_task("articles", total=data["urls"], rate="")
            else:
                _err(f"backfill: {data['partitions']} partitions, {data['to_run']} to run, {data['urls']} URLs")
        elif event == "batch":
            if self._bar is not None and self._articles is not None:
                self._bar.advance(self._articles, data["settled"])
                task = self._bar.tasks[self._articles]
                speed = task.speed or 0.0
                self._bar.update(self._articles, rate=f"{speed:.1f}/s")
        elif event == "partition":
            if self._bar is not None and self._parts is not None:
                self._bar.advance(self._parts, 1)
            else:
                _err(f"backfill: partition {data['source']} {data['day']}: {data['state']} "
                     f"({data['loaded']} loaded, {data['known']} known, {data['failed']} failed)")

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)


def _run_backfill_flow(settings: Settings, request: dict[str, Any], sources_file: str | None) -> dict[str, Any]:
    import signal

    from flows.backfill import STOP

    prepare_prefect_env()
    from flows import ingest as ingest_module

    def on_signal(signum: int, frame: Any) -> None:
        if STOP.is_set():
            raise KeyboardInterrupt
        STOP.set()
        _err(f"newsdesk: {signal.Signals(signum).name} received; stopping after the current batch "
             "(press Ctrl-C again to abort)")

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    STOP.clear()
    try:
        with _Progress() as progress:
            ingest_module._PROGRESS_HOOKS.append(progress)
            try:
                state: Any = asyncio.run(ingest_module.backfill_flow(  # type: ignore[arg-type]
                    request, dataclasses.asdict(settings), sources_file, return_state=True))
            finally:
                ingest_module._PROGRESS_HOOKS.remove(progress)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if state.is_failed():
        try:
            state.result()
        except Exception as exc:
            from flows.backfill import BackfillError

            if isinstance(exc, BackfillError):
                raise InputError(str(exc)) from None
            raise WorkError(f"backfill failed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
        raise WorkError("backfill failed")
    result: dict[str, Any] = state.result()
    return result


def _parse_day(value: str | None, option: str) -> str:
    from datetime import date

    if not value:
        raise InputError(f"{option} is required (YYYY-MM-DD)")
    try:
        return date.fromisoformat(value).isoformat()
    except ValueError:
        raise InputError(f"{option} must be a date like 2020-01-31, not {value!r}") from None


@backfill_app.callback()
def backfill(
    ctx: typer.Context,
    since: Annotated[str | None, typer.Option("--since", help="First publication day (YYYY-MM-DD).")] = None,
    until: Annotated[str | None, typer.Option("--until", help="Last publication day (YYYY-MM-DD), inclusive.")] = None,
    source: Annotated[list[str] | None, typer.Option("--source", help="Only this source (repeatable); for WARC, the source name to record.")] = None,
    origin: Annotated[str, typer.Option("--from", help="Where history comes from: sitemap, warc or raw (stored pages).")] = "sitemap",
    warc: Annotated[list[str] | None, typer.Option("--warc", help="WARC file path or http(s) URL (repeatable).")] = None,
    host: Annotated[list[str] | None, typer.Option("--host", help="Only WARC records for this host (repeatable).")] = None,
    reprocess: Annotated[str, typer.Option("--reprocess", help="missing (skip done partitions), failed (also redo failed ones) or all.")] = "missing",
    newest_first: Annotated[bool, typer.Option("--newest-first", help="Work the newest partitions first.")] = False,
    parallel: Annotated[int, typer.Option("--parallel", help="Partitions worked at once: groups of N, in order, through one pipeline.")] = 4,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List the partitions and what would be done; change nothing.")] = False,
    deployment: Annotated[bool, typer.Option("--deployment", help="Submit flow runs to the Prefect 'backfill' deployment instead of running here (needs PREFECT_API_URL).")] = False,
    chunk_days: Annotated[int, typer.Option("--chunk-days", help="With --deployment: days per submitted flow run.")] = 7,
    sources: SourcesOpt = None,
    warehouse: WarehouseOpt = None,
    allow_host: AllowHostOpt = None,
    config: ConfigOpt = None,
    fmt: FormatOpt = None,
) -> None:
    """Backfill publication days from sitemaps, WARC archives (--from warc) or stored pages (--from raw).

    Example: newsdesk backfill --since 2020-01-01 --until 2020-01-31 --from warc --warc crawl.warc.gz
    """
    if ctx.invoked_subcommand is not None:
        return
    out_format = _fmt(fmt)
    settings = _settings(config, warehouse=warehouse, sources=sources, allow_hosts=tuple(allow_host or ()))
    request: dict[str, Any] = {
        "since": _parse_day(since, "--since"), "until": _parse_day(until, "--until"), "origin": origin,
        "sources": list(source or []), "warc": list(warc or []), "hosts": list(host or []),
        "reprocess": reprocess, "newest_first": newest_first, "parallel": parallel, "dry_run": dry_run,
    }
    from datetime import date

    from flows.backfill import BackfillError, BackfillRequest

    try:
        BackfillRequest(**{**request, "since": date.fromisoformat(request["since"]),
                           "until": date.fromisoformat(request["until"])}).validate()
    except BackfillError as exc:
        raise InputError(str(exc)) from None
    if origin == "sitemap":
        _sources(settings.sources)
    if deployment:
        if not os.environ.get("PREFECT_API_URL"):
            raise InputError("--deployment needs a Prefect server with the backfill deployment served "
                             "(`newsdesk serve`): set PREFECT_API_URL")
        if chunk_days < 1:
            raise InputError("--chunk-days must be at least 1")
        prepare_prefect_env()
        from flows.submit import submit_backfill

        try:
            submitted = submit_backfill(request, chunk_days)
        except Exception as exc:  # the API said no: one line, not a traceback
            reason = (str(exc).strip() or type(exc).__name__).splitlines()[0]
            if reason == "None":
                reason = f"{type(exc).__name__} (is `newsdesk serve` running against this Prefect server?)"
            raise WorkError(f"could not submit to the backfill deployment: {reason}") from None
        columns = ["flow_run_id", "name", "since", "until", "state", "idempotency_key"]
        render(columns, [[r[c] for c in columns] for r in submitted], out_format, title="Submitted")
        return
    if not dry_run:
        _ensure_writable(settings)
    summary = _run_backfill_flow(settings, request, settings.sources if origin == "sitemap" else None)
    if dry_run:
        columns = ["source", "day", "urls", "previous_state", "action"]
        render(columns, [[p[c] for c in columns] for p in summary["partitions"]], out_format, title="Dry run")
        return
    columns, rows = _summary_rows(summary)
    render(columns + ["problems"], [rows[0] + [summary.get("problems")]], out_format, title="Backfill")
    if summary.get("stopped"):
        raise WorkError("backfill stopped before it finished; run the same command again to resume")


@backfill_app.command("status")
def backfill_status(
    warehouse: WarehouseOpt = None,
    config: ConfigOpt = None,
    fmt: FormatOpt = None,
) -> None:
    """Backfill partitions (source, day) and their state.

    Example: newsdesk backfill status --format table
    """
    from flows.backfill import partition_status
    from warehouse import WarehouseError

    out_format = _fmt(fmt)
    settings = _settings(config, warehouse=warehouse)
    try:
        columns, rows = partition_status(settings)
    except WarehouseError as exc:
        raise WorkError(str(exc)) from None
    render(columns, rows, out_format, title="Partitions")
    if os.environ.get("PREFECT_API_URL"):
        from flows.submit import deployment_runs

        try:
            runs = deployment_runs()
        except Exception as exc:
            _err(f"newsdesk: could not read the backfill deployment's runs: {str(exc).splitlines()[0]}")
            return
        run_columns = ["flow_run_id", "name", "since", "until", "state", "start_time", "end_time"]
        render(run_columns, [[r[c] for c in run_columns] for r in runs], out_format, title="Deployment runs")


@app.command()
def reprocess(
    since: Annotated[str | None, typer.Option("--since", help="First publication day (YYYY-MM-DD).")] = None,
    until: Annotated[str | None, typer.Option("--until", help="Last publication day (YYYY-MM-DD).")] = None,
    source: Annotated[list[str] | None, typer.Option("--source", help="Only this source (repeatable).")] = None,
    outdated: Annotated[bool, typer.Option("--outdated", help="Only rows made by an older extractor or transform version.")] = False,
    warehouse: WarehouseOpt = None,
    config: ConfigOpt = None,
    fmt: FormatOpt = None,
) -> None:
    """Re-extract and re-transform articles from stored pages, without network access.

    Example: newsdesk reprocess --since 2020-01-01 --until 2020-01-31 --outdated
    """
    out_format = _fmt(fmt)
    settings = _settings(config, warehouse=warehouse)
    request: dict[str, Any] = {
        "since": _parse_day(since or "1900-01-01", "--since"), "until": _parse_day(until or "2999-12-31", "--until"),
        "origin": "raw", "sources": list(source or []), "reprocess": "all", "outdated_only": outdated,
    }
    _ensure_writable(settings, must_exist=True)
    summary = _run_backfill_flow(settings, request, None)
    columns, rows = _summary_rows(summary)
    render(columns, rows, out_format, title="Reprocess")
    if summary.get("stopped"):
        raise WorkError("reprocess stopped before it finished; run the same command again to resume")


def _ensure_writable(settings: Settings, must_exist: bool = False) -> None:
    from warehouse import WarehouseError, open_warehouse

    if must_exist and not Path(settings.warehouse).exists():
        raise WorkError(f"warehouse {settings.warehouse} does not exist yet")
    try:
        with open_warehouse(settings.warehouse, wait=settings.busy_timeout):
            pass
    except WarehouseError as exc:
        raise WorkError(str(exc)) from None


@app.command()
def serve(
    sources: SourcesOpt = None,
    warehouse: WarehouseOpt = None,
    allow_host: AllowHostOpt = None,
    config: ConfigOpt = None,
    limit: Annotated[int, typer.Option("--limit", help="Flow runs executed at once by this process.")] = 2,
) -> None:
    """Serve the scheduled deployments (ingest per source, daily maintenance, backfill on demand)
    until stopped with Ctrl-C or SIGTERM. Needs a Prefect server: set PREFECT_API_URL.

    Example: PREFECT_API_URL=http://127.0.0.1:4200/api newsdesk serve --sources seeds/sources.csv
    """
    if not os.environ.get("PREFECT_API_URL"):
        raise InputError("serve needs a Prefect server: start one with `prefect server start` and set "
                         "PREFECT_API_URL=http://127.0.0.1:4200/api")
    if limit < 1:
        raise InputError("--limit must be at least 1")
    settings = _settings(config, warehouse=warehouse, sources=sources, allow_hosts=tuple(allow_host or ()))
    configured = _sources(settings.sources)
    _ensure_writable(settings)
    prepare_prefect_env()
    from flows.serve import serve_deployments

    enabled = [s for s in configured if s.enabled]
    _err(f"newsdesk serve: {len(enabled)} source schedule(s), daily maintenance, backfill on demand "
         f"(limit {limit} runs at once); Ctrl-C to stop")
    serve_deployments(settings, settings.sources, limit)
    _err("newsdesk serve: stopped; schedules stay active for the next start")


@app.command()
def status(
    sources: SourcesOpt = None,
    warehouse: WarehouseOpt = None,
    config: ConfigOpt = None,
    fmt: FormatOpt = None,
) -> None:
    """Per-source health: last run, next run, articles in the last 24 h, failures by reason, backoff.

    Example: newsdesk status --format json
    """
    from flows.health import source_status
    from warehouse import WarehouseError

    out_format = _fmt(fmt)
    settings = _settings(config, warehouse=warehouse, sources=sources)
    configured = _sources(settings.sources)
    try:
        columns, rows = source_status(settings, configured)
    except WarehouseError as exc:
        raise WorkError(str(exc)) from None
    render(columns, rows, out_format)


@app.command()
def search(
    text: Annotated[str, typer.Argument(help="Words to look for in titles and text.")],
    source: Annotated[list[str] | None, typer.Option("--source", help="Only this source (repeatable).")] = None,
    since: Annotated[str | None, typer.Option("--since", help="Published on or after (YYYY-MM-DD).")] = None,
    until: Annotated[str | None, typer.Option("--until", help="Published on or before (YYYY-MM-DD).")] = None,
    limit: Annotated[int, typer.Option("--limit", help="Results to show.")] = 10,
    warehouse: WarehouseOpt = None,
    config: ConfigOpt = None,
    fmt: FormatOpt = None,
) -> None:
    """Full-text search (BM25) over article titles and text, with snippets.

    Example: newsdesk search "port strike" --since 2024-01-01 --limit 5
    """
    import duckdb

    from warehouse import WarehouseError, open_warehouse
    from warehouse.upkeep import has_search_index
    from warehouse.upkeep import search as run_search

    out_format = _fmt(fmt)
    settings = _settings(config, warehouse=warehouse)
    start = _parse_day(since, "--since") if since else None
    end = _parse_day(until, "--until") if until else None
    if limit < 1:
        raise InputError("--limit must be at least 1")
    try:
        with open_warehouse(settings.warehouse, read_only=True, wait=settings.busy_timeout) as con:
            if not has_search_index(con):
                raise WorkError("the search index is not built yet; run `newsdesk maintenance` (or an ingest)")
            try:
                columns, rows = run_search(con, text, list(source or []), start, end, limit)
            except duckdb.Error as exc:
                raise WorkError(f"search failed: {str(exc).splitlines()[0]}") from None
    except WarehouseError as exc:
        raise WorkError(str(exc)) from None
    render(columns, rows, out_format)


@app.command()
def export(
    directory: Annotated[str, typer.Argument(help="Folder to write to (created if missing).")],
    export_format: Annotated[str, typer.Option("--format", "-f", help="Only parquet for now.")] = "parquet",
    table: Annotated[str, typer.Option("--table", help="Table to export.")] = "articles",
    warehouse: WarehouseOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Export a table as Parquet, partitioned by publication day, for tools that read files.

    Example: newsdesk export --format parquet exports/
    """
    import duckdb

    from warehouse import WarehouseError, open_warehouse

    if export_format != "parquet":
        raise InputError("--format must be parquet")
    allowed = {"articles": "published_date", "url_outcomes": "CAST(updated_at AS DATE)",
               "pages": "CAST(fetched_at AS DATE)", "runs": "CAST(started_at AS DATE)"}
    if table not in allowed:
        raise InputError(f"--table must be one of {', '.join(allowed)}")
    settings = _settings(config, warehouse=warehouse)
    target = Path(directory)
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WorkError(f"cannot create {target}: {exc.strerror}") from None
    try:
        with open_warehouse(settings.warehouse, read_only=True, wait=settings.busy_timeout) as con:
            day = allowed[table]
            path = str(target / table).replace("'", "''")
            rows = table
            if table == "pages":  # with each page's body, wherever it is stored
                rows = ("(SELECT p.* EXCLUDE (body_gz, body_file), b.body_gz FROM pages p "
                        "LEFT JOIN page_bodies b USING (canonical_url))")
            try:
                con.execute(f"COPY (SELECT *, coalesce(CAST({day} AS VARCHAR), 'undated') AS day FROM {rows}) "
                            f"TO '{path}' (FORMAT parquet, PARTITION_BY (day), OVERWRITE_OR_IGNORE)")
                count = con.execute(f"SELECT count(*) FROM {table}").fetchone()
            except duckdb.Error as exc:
                raise WorkError(f"export failed: {str(exc).splitlines()[0]}") from None
    except WarehouseError as exc:
        raise WorkError(str(exc)) from None
    _err(f"exported {count[0] if count else 0} rows of {table} to {target / table}/day=*/")


@app.command()
def maintenance(
    warehouse: WarehouseOpt = None,
    config: ConfigOpt = None,
    fmt: FormatOpt = None,
) -> None:
    """Run the daily upkeep now: spooled batches, pruning, search index, statistics, checkpoint.

    Example: newsdesk maintenance
    """
    from warehouse import WarehouseError
    from warehouse.lock import RunLockBusy, run_lock
    from warehouse.upkeep import maintain

    out_format = _fmt(fmt)
    settings = _settings(config, warehouse=warehouse)
    _ensure_writable(settings, must_exist=True)
    try:
        with run_lock(settings.warehouse, settings.busy_timeout, "maintenance"):
            report = maintain(settings.warehouse, settings.prune_raw_days, wait=settings.load_wait,
                              memory_limit=settings.load_memory_limit or None)
    except RunLockBusy as exc:
        raise WorkError(f"warehouse is busy: {exc}") from None
    except WarehouseError as exc:
        raise WorkError(str(exc)) from None
    render(list(report), [list(report.values())], out_format)


# -- entry point ----------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    command = typer.main.get_command(app)
    from warehouse import WarehouseError

    try:
        result = command.main(args=argv, prog_name="newsdesk", standalone_mode=False)
    except click_exceptions.UsageError as exc:
        _err(f"newsdesk: error: {exc.format_message()}")
        return 2
    except click_exceptions.ClickException as exc:
        _err(f"newsdesk: error: {exc.format_message()}")
        return 2
    except typer.Abort:
        _err("newsdesk: interrupted")
        return 130
    except InputError as exc:
        _err(f"newsdesk: error: {exc}")
        return 2
    except (WorkError, WarehouseError) as exc:
        _err(f"newsdesk: {exc}")
        return 1
    except KeyboardInterrupt:
        _err("newsdesk: interrupted")
        return 130
    except BrokenPipeError:
        return 1
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
