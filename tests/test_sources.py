"""flows/sources.py: the sources CSV is validated line by line before anything is fetched."""

from __future__ import annotations

import pytest

from flows.sources import DEFAULT_SCHEDULE, Source, SourceError, parse_sources, read_sources

HEADER = "name,kind,url,schedule,enabled\n"
FULL_HEADER = "name,kind,url,schedule,enabled,concurrency,delay\n"
GOOD = "feed1,rss,https://example.com/feed.xml,*/30 * * * *,true\n"


def raises_at(text: str, line: int, origin: str = "src.csv") -> str:
    """Parse text expecting a SourceError on ``line``; returns the message."""
    with pytest.raises(SourceError) as info:
        parse_sources(text, origin)
    message = str(info.value)
    assert f"{origin}:{line}:" in message, message
    assert "\n" not in message and "\r" not in message
    return message


# -- valid files ---------------------------------------------------------------------------------------


def test_valid_file_with_all_columns():
    text = (
        FULL_HEADER
        + "feed1,rss,https://example.com/feed.xml,*/30 * * * *,true,4,1.5\n"
        + "map,sitemap,http://example.org/sitemap.xml,@daily,no,,\n"
        + "list_1,urls,https://example.net/list.txt,15m,yes,1,0\n"
    )
    sources = parse_sources(text, "s.csv")
    assert sources == [
        Source("feed1", "rss", "https://example.com/feed.xml", "*/30 * * * *", True, 4, 1.5, 2),
        Source("map", "sitemap", "http://example.org/sitemap.xml", "@daily", False, None, None, 3),
        Source("list_1", "urls", "https://example.net/list.txt", "15m", True, 1, 0.0, 4),
    ]


def test_valid_file_with_only_required_columns():
    sources = parse_sources(HEADER + GOOD)
    assert len(sources) == 1
    src = sources[0]
    assert (src.name, src.kind, src.url, src.schedule, src.enabled) == (
        "feed1", "rss", "https://example.com/feed.xml", "*/30 * * * *", True)
    assert src.concurrency is None and src.delay is None
    assert src.line == 2


def test_header_and_cells_are_trimmed_and_case_insensitive():
    text = " Name , KIND ,Url,Schedule,ENABLED\n  feed1 , RSS , https://example.com/f ,  , \n"
    (src,) = parse_sources(text)
    assert src.name == "feed1"
    assert src.kind == "rss"
    assert src.url == "https://example.com/f"
    assert src.schedule == DEFAULT_SCHEDULE  # empty schedule -> default
    assert src.enabled is True  # empty enabled -> true


def test_columns_may_come_in_any_order():
    text = "url,enabled,name,schedule,kind\nhttps://example.com/f,false,feed1,1h,rss\n"
    (src,) = parse_sources(text)
    assert (src.name, src.kind, src.url, src.enabled, src.schedule) == (
        "feed1", "rss", "https://example.com/f", False, "1h")


def test_header_only_file_has_no_sources():
    assert parse_sources(HEADER) == []


def test_comments_and_blank_lines_are_skipped_and_line_numbers_stay_physical():
    text = (
        "# the sources\n"
        "\n"
        + HEADER
        + "# a comment between rows\n"
        + "   \n"
        + ",,,,\n"
        + GOOD
        + "  # indented comment\n"
        + "\n"
        + "feed2,sitemap,https://example.com/sitemap.xml,@hourly,true\n"
    )
    sources = parse_sources(text)
    assert [s.name for s in sources] == ["feed1", "feed2"]
    assert [s.line for s in sources] == [7, 10]


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("TRUE", True), ("yes", True), ("1", True), ("on", True), ("y", True), ("", True),
     ("false", False), ("False", False), ("no", False), ("0", False), ("off", False), ("n", False)],
)
def test_enabled_values(value, expected):
    (src,) = parse_sources(HEADER + f"feed1,rss,https://example.com/f,15m,{value}\n")
    assert src.enabled is expected


@pytest.mark.parametrize(
    "schedule",
    ["*/30 * * * *", "0 6 * * MON-FRI", "0,30 8-18 * * 1-5", "0 0 1 JAN *", "@hourly", "@daily", "@weekly",
     "30s", "15m", "2h", "1d"],
)
def test_valid_schedules_are_accepted(schedule):
    (src,) = parse_sources(HEADER + f'feed1,rss,https://example.com/f,"{schedule}",true\n')
    assert src.schedule == schedule


@pytest.mark.parametrize(
    ("schedule", "seconds"),
    [("15m", 900), ("30s", 30), ("2h", 7200), ("1d", 86400), ("*/15 * * * *", None), ("@hourly", None)],
)
def test_interval_seconds(schedule, seconds):
    (src,) = parse_sources(HEADER + f"feed1,rss,https://example.com/f,{schedule},true\n")
    assert src.interval_seconds == seconds


def test_delay_bounds_are_inclusive():
    text = FULL_HEADER + "a,rss,https://example.com/a,15m,true,,0\nb,rss,https://example.com/b,15m,true,,3600\n"
    assert [s.delay for s in parse_sources(text)] == [0.0, 3600.0]


# -- malformed rows: the message names the file and the line ---------------------------------------------


@pytest.mark.parametrize(
    ("row", "fragment"),
    [
        ("feed2,atom,https://example.com/f,15m,true", "kind 'atom'"),
        ("feed2,rss,/relative/feed.xml,15m,true", "not an absolute http(s) URL"),
        ("feed2,rss,example.com/feed.xml,15m,true", "not an absolute http(s) URL"),
        ("feed2,rss,ftp://example.com/feed.xml,15m,true", "not an absolute http(s) URL"),
        ("feed2,rss,file:///etc/passwd,15m,true", "not an absolute http(s) URL"),
        ("feed2,rss,http:///no-host,15m,true", "not an absolute http(s) URL"),
        ("feed2,rss,https://example.com/f,every 15 minutes,true", "schedule"),
        ("feed2,rss,https://example.com/f,15x,true", "schedule"),
        ("feed2,rss,https://example.com/f,* * *,true", "schedule"),
        ("feed2,rss,https://example.com/f,@sometimes,true", "schedule"),
        ("feed2,rss,https://example.com/f,15m,maybe", "enabled"),
        ("feed2,rss,https://example.com/f,15m,2", "enabled"),
        ("bad name!,rss,https://example.com/f,15m,true", "invalid name"),
        (",rss,https://example.com/f,15m,true", "invalid name"),
        ("feed1,rss,https://example.com/other,15m,true", "duplicate name 'feed1' (first on line 2)"),
        ("feed2,rss,https://example.com/f,15m", "expected 5 fields, found 4"),
        ("feed2,rss,https://example.com/f,15m,true,extra", "expected 5 fields, found 6"),
    ],
)
def test_malformed_row_names_its_line(row, fragment):
    message = raises_at(HEADER + GOOD + row + "\n", 3)
    assert fragment in message


@pytest.mark.parametrize(
    ("cells", "fragment"),
    [
        ("0,", "concurrency"),
        ("-1,", "concurrency"),
        ("abc,", "concurrency"),
        ("1.5,", "concurrency"),
        (",abc", "delay"),
        (",-1", "delay"),
        (",3601", "delay"),
        (",nan", "delay"),
        (",inf", "delay"),
    ],
)
def test_bad_concurrency_or_delay_names_its_line(cells, fragment):
    text = FULL_HEADER + "feed1,rss,https://example.com/f,15m,true,2,1\n" + f"feed2,rss,https://example.com/g,15m,true,{cells}\n"
    assert fragment in raises_at(text, 3)


def test_line_number_counts_comments_and_blank_lines():
    text = "# comment\n\n" + HEADER + "\n# another\n" + "feed1,podcast,https://example.com/f,15m,true\n"
    raises_at(text, 6)


def test_first_bad_line_is_reported():
    text = HEADER + "a,rss,https://example.com/a,15m,true\nb,rss,/rel,15m,true\nc,bogus,https://example.com/c,15m,true\n"
    assert "'/rel'" in raises_at(text, 3)


def test_multi_line_value_gives_a_single_line_message():
    text = HEADER + 'feed1,"rss\nfeed",https://example.com/f,15m,true\n'
    message = raises_at(text, 3)  # the row ends on the third physical line
    assert "\\n" in message  # the newline is shown escaped, not raw


def test_missing_header_column():
    message = raises_at("# header below\nname,kind,url,enabled\n" + "feed1,rss,https://example.com/f,true\n", 2)
    assert "schedule" in message


def test_unknown_header_column():
    message = raises_at("name,kind,url,schedule,enabled,priority\n", 1)
    assert "priority" in message


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", " , ,\n"])
def test_empty_file_raises(text):
    with pytest.raises(SourceError) as info:
        parse_sources(text, "empty.csv")
    message = str(info.value)
    assert message.startswith("empty.csv:")
    assert "header" in message and "\n" not in message


@pytest.mark.parametrize("schedule", ["99 * * * *", "foo bar baz qux quux", "0m"])
def test_nonsense_schedules_are_rejected(schedule):
    raises_at(HEADER + f"feed1,rss,https://example.com/f,{schedule},true\n", 2)


# -- read_sources ----------------------------------------------------------------------------------------


def test_read_sources_reads_a_file_with_bom(tmp_path):
    path = tmp_path / "sources.csv"
    path.write_bytes(b"\xef\xbb\xbf" + (HEADER + GOOD).encode("utf-8"))
    (src,) = read_sources(path)
    assert src.name == "feed1"
    assert read_sources(str(path)) == [src]


def test_read_sources_error_names_the_path(tmp_path):
    path = tmp_path / "sources.csv"
    path.write_text(HEADER + GOOD + "feed2,rss,nope,15m,true\n", encoding="utf-8")
    with pytest.raises(SourceError, match=r":3: "):
        read_sources(path)
    with pytest.raises(SourceError) as info:
        read_sources(path)
    assert str(info.value).startswith(f"{path}:3:")


def test_read_sources_missing_file(tmp_path):
    path = tmp_path / "nope.csv"
    with pytest.raises(SourceError) as info:
        read_sources(path)
    assert "not found" in str(info.value) and str(path) in str(info.value)


def test_read_sources_non_utf8(tmp_path):
    path = tmp_path / "latin1.csv"
    path.write_bytes(HEADER.encode() + "caf\xe9,rss,https://example.com/f,15m,true\n".encode("latin-1"))
    with pytest.raises(SourceError) as info:
        read_sources(path)
    assert "UTF-8" in str(info.value) and "\n" not in str(info.value)


def test_read_sources_on_a_directory(tmp_path):
    with pytest.raises(SourceError):
        read_sources(tmp_path)
