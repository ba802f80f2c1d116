"""``python -m chatapp sql "SELECT ..."``: query the chat database read-only.

The database is opened so that it refuses writes itself (see
``chatapp.store.readonly``); nothing here inspects the SQL. Rows stream to
stdout as CSV or JSON as they arrive; a table needs every row first to
size its columns. Schema and example queries: docs/sql.md.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import math
import sys
from collections.abc import Sequence
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any, TextIO

from chatapp.commands import fail, stdout_gone
from chatapp.commands.options import (
    HelpFormatter,
    add_settings_options,
    argument_type,
    resolve_or_exit,
)
from chatapp.errors import ExitCode, StoreError, WriteRefused
from chatapp.settings import Group, seconds
from chatapp.store.readonly_database import ReadOnlyDatabase

_NUMBERS = (int, float, Decimal)
#: Seconds a statement may run (fetching its rows included) before the database cancels it.
DEFAULT_TIMEOUT_SECONDS = 30.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m chatapp sql",
        description="Run one SQL statement against the chat database, read-only, and print "
        "its rows. Tables and example queries: docs/sql.md.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("query", metavar="QUERY", help="one SQL statement; '-' reads it from stdin")
    parser.add_argument(
        "--format", choices=["table", "csv", "json"], default="table", help="output format"
    )
    parser.add_argument(
        "--timeout",
        type=argument_type(seconds),
        default=DEFAULT_TIMEOUT_SECONDS,
        metavar="SECONDS",
        help="the database cancels the statement after this long, fetching included; 0: no limit",
    )
    add_settings_options(parser, Group.DATABASE)
    return parser


class Table:
    """Aligned columns with a header, like psql; numbers right-aligned, NULL empty."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._names: list[str] = []
        self._rows: list[Sequence[Any]] = []

    def columns(self, names: Sequence[str]) -> None:
        self._names = list(names)

    def rows(self, rows: Sequence[Sequence[Any]]) -> None:
        self._rows.extend(rows)

    def finish(self) -> None:
        if not self._names:
            return  # a statement without a result set
        cells = [[_text(v).replace("\n", "\\n") for v in row] for row in self._rows]
        widths = [max([len(n), *(len(r[i]) for r in cells)]) for i, n in enumerate(self._names)]
        numeric = [
            any(row[i] is not None for row in self._rows)
            and all(row[i] is None or isinstance(row[i], _NUMBERS) for row in self._rows)
            for i in range(len(self._names))
        ]
        write = self._out.write
        write(" | ".join(n.ljust(w) for n, w in zip(self._names, widths, strict=True)).rstrip())
        write("\n" + "-+-".join("-" * w for w in widths) + "\n")
        for row in cells:
            line = " | ".join(
                c.rjust(w) if num else c.ljust(w)
                for c, w, num in zip(row, widths, numeric, strict=True)
            )
            write(line.rstrip() + "\n")
        count = len(self._rows)
        write(f"({count} row{'' if count == 1 else 's'})\n")


class Csv:
    """RFC 4180 CSV with a header row (LF line ends); NULL is an empty field."""

    def __init__(self, out: TextIO) -> None:
        self._writer = csv.writer(out, lineterminator="\n")

    def columns(self, names: Sequence[str]) -> None:
        if names:
            self._writer.writerow(names)

    def rows(self, rows: Sequence[Sequence[Any]]) -> None:
        self._writer.writerows([_text(v) for v in row] for row in rows)

    def finish(self) -> None:
        pass


class Json:
    """One JSON array of objects keyed by column name, written as rows arrive."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._names: list[str] = []
        self._first = True

    def columns(self, names: Sequence[str]) -> None:
        self._names = list(names)
        self._out.write("[")

    def rows(self, rows: Sequence[Sequence[Any]]) -> None:
        for row in rows:
            record = {n: _json(v) for n, v in zip(self._names, row, strict=True)}
            self._out.write(
                ("\n" if self._first else ",\n") + json.dumps(record, ensure_ascii=False)
            )
            self._first = False

    def finish(self) -> None:
        self._out.write("]\n" if self._first else "\n]\n")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes | bytearray | memoryview):
        return "\\x" + bytes(value).hex()
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    return str(value)


def _json(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float | Decimal):
        if not math.isfinite(value):
            return str(value)
        return (
            int(value)
            if isinstance(value, Decimal) and value == value.to_integral()
            else float(value)
        )
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json(v) for k, v in value.items()}
    return _text(value)


_SINKS: dict[str, type[Table | Csv | Json]] = {"table": Table, "csv": Csv, "json": Json}


async def _run(url: str, query: str, sink: Table | Csv | Json, timeout: float) -> None:
    database = await ReadOnlyDatabase.open(url)
    try:
        await database.query(query, sink, timeout or None)
    finally:
        await database.close()
    sink.finish()


def main(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    query = sys.stdin.read() if args.query == "-" else args.query
    if not query.strip():
        parser.error("the query is empty")
    try:
        url = resolve_or_exit(parser, args).database_url
        asyncio.run(_run(url, query, _SINKS[args.format](sys.stdout), args.timeout))
    except WriteRefused as exc:
        return fail(
            "sql",
            exc,
            "error: the database refused to write (this command opens it read-only; "
            "change data through the server)",
        )
    except StoreError as exc:
        return fail("sql", exc)
    except BrokenPipeError:
        return stdout_gone()
    return ExitCode.OK
