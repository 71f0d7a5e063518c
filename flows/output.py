"""Result output shared by every command: table, CSV or JSON on stdout."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table

__all__ = ["FORMATS", "default_format", "render", "to_jsonable"]

FORMATS = ("table", "csv", "json")


def default_format(stream: TextIO | None = None) -> str:
    stream = stream or sys.stdout
    return "table" if stream.isatty() else "csv"


def to_jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(bytes(value))} bytes>"
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [to_jsonable(v) for v in value]
    return value


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple | dict):
        return json.dumps(to_jsonable(value), ensure_ascii=False)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{len(bytes(value))} bytes>"
    return str(value)


def render(columns: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str, stream: TextIO | None = None,
           title: str | None = None) -> None:
    out = stream or sys.stdout
    if fmt == "json":
        data = [{c: to_jsonable(v) for c, v in zip(columns, row, strict=True)} for row in rows]
        out.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
    elif fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_cell(v) for v in row])
    elif fmt == "table":
        console = Console(file=out, width=None if out.isatty() else 160, soft_wrap=False)
        table = Table(*columns, title=title, show_lines=False)
        for row in rows:
            table.add_row(*(_cell(v) for v in row))
        console.print(table)
    else:
        raise ValueError(f"unknown format {fmt!r}; choose table, csv or json")
    out.flush()
