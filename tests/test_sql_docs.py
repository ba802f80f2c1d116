"""docs/sql.md is a contract: its examples run, use the indexes it names, and its tables are real.

Every ```sql block runs on SQLite and PostgreSQL, ```sqlite and ```postgresql
blocks on their own database, all through the read-only connection of
``python -m chatapp sql``, against the history in ``chatdata``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from chatdata import GENERAL_ON_26TH
from factories import dialect_of
from sqlalchemy import inspect, text

from chatapp.store.engine import create_engine
from chatapp.store.readonly_database import ReadOnlyDatabase

DOC = Path(__file__).resolve().parents[1] / "docs" / "sql.md"
_BLOCK = re.compile(r"^```(sql|sqlite|postgresql)\n(.*?)^```", re.MULTILINE | re.DOTALL)
_INDEX_NOTE = re.compile(r"^-- index: (.+)$", re.MULTILINE)

#: Fresh databases on both backends, as in the store tests.


def examples(dialect: str) -> list[str]:
    """The doc's SQL blocks that apply to ``dialect`` ('sqlite' or 'postgresql')."""
    return [sql for lang, sql in _BLOCK.findall(DOC.read_text()) if lang in ("sql", dialect)]


def documented_columns(table: str) -> list[str]:
    """The column names listed in the doc's table for ``table``."""
    section = DOC.read_text().split(f"### `{table}`", 1)[1].split("\n#", 1)[0]
    return re.findall(r"^\| `(\w+)` \|", section, re.MULTILINE)


class Rows:
    """A ``RowSink`` that keeps everything."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.all: list[Sequence[Any]] = []

    def columns(self, names: Sequence[str]) -> None:
        self.names = list(names)

    def rows(self, rows: Sequence[Sequence[Any]]) -> None:
        self.all.extend(rows)


async def run(url: str, sql: str) -> Rows:
    database = await ReadOnlyDatabase.open(url)
    try:
        rows = Rows()
        await database.query(sql, rows)
        return rows
    finally:
        await database.close()


def test_the_doc_has_examples_for_both_databases():
    """Both dialects get portable and specific examples, and three name their index."""
    assert len(examples("sqlite")) >= 8
    assert len(examples("postgresql")) >= 8
    assert len(_INDEX_NOTE.findall(DOC.read_text())) >= 3


async def test_every_example_runs_and_finds_rows(reader_url):
    """Each example applying to this database runs read-only and returns at least one row,
    on PostgreSQL as the SELECT-only role the doc creates."""
    for sql in examples(dialect_of(reader_url)):
        rows = await run(reader_url, sql)
        assert rows.names, sql
        assert rows.all, f"no rows from:\n{sql}"


async def test_time_range_example_compares_times_exactly(populated):
    """The documented day range holds exactly that UTC day, to its first and last microsecond."""
    [day] = [sql for sql in examples(dialect_of(populated)) if "created_at <  '2026-11-27" in sql]
    rows = await run(populated, day)
    assert [row[0] for row in rows.all] == GENERAL_ON_26TH


async def _index_used(engine: Any, dialect: str, sql: str) -> list[str]:
    """The columns of the index the planner picks for ``sql`` on ``messages``."""
    async with engine.connect() as conn:
        if dialect == "sqlite":
            plan = "\n".join(r[3] for r in await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}"))
            match = re.search(r"messages USING (?:COVERING )?INDEX (\w+)", plan)
            assert match, plan
            info = text("SELECT name FROM pragma_index_info(:index) ORDER BY seqno")
            return list((await conn.execute(info, {"index": match[1]})).scalars())
        await conn.exec_driver_sql("SET enable_seqscan = off")  # tiny tables: make it choose
        plan = "\n".join(r[0] for r in await conn.exec_driver_sql(f"EXPLAIN {sql}"))
        match = re.search(r"using (\w+) on messages", plan)
        assert match, plan
        info = text(
            "SELECT a.attname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
            " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)"
            " WHERE c.relname = :index ORDER BY array_position(i.indkey::int2[], a.attnum)"
        )
        return list((await conn.execute(info, {"index": match[1]})).scalars())


async def test_examples_marked_with_an_index_use_it(populated):
    """An example noted ``-- index: a, b`` is planned on an index whose leading columns are a, b."""
    dialect = dialect_of(populated)
    engine = create_engine(populated)
    try:
        for sql in examples(dialect):
            note = _INDEX_NOTE.search(sql)
            if note:
                wanted = [c.strip() for c in note[1].split(",")]
                used = await _index_used(engine, dialect, sql.strip().rstrip(";"))
                assert used[: len(wanted)] == wanted, f"{used} for:\n{sql}"
    finally:
        await engine.dispose()


@pytest.mark.parametrize("table", ["messages", "rooms"])
async def test_documented_columns_are_the_real_ones(populated, table):
    """The doc lists exactly the columns the migrated database has, in order."""
    engine = create_engine(populated)
    try:
        async with engine.connect() as conn:
            columns = await conn.run_sync(
                lambda c: [col["name"] for col in inspect(c).get_columns(table)]
            )
    finally:
        await engine.dispose()
    assert documented_columns(table) == columns
