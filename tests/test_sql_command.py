"""``python -m chatapp sql``: read-only queries as a table, CSV or JSON, run as a subprocess."""

from __future__ import annotations

import csv
import io
import json
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from chatdata import populate
from procs import CHATAPP, RUN_TIMEOUT, chatapp_env, run_chatapp, run_chatapp_async

from chatapp.errors import WriteRefused
from chatapp.store.query import ReadOnlyDatabase

#: Fresh databases on both backends, as in the store tests.

GENERAL = "SELECT seq, user_name, text FROM messages WHERE room = 'general' ORDER BY seq"
INTACT = "SELECT count(*) AS n, max(text) AS t FROM messages"


def sql(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_chatapp("sql", "--db", url, *args)


def failed(result: subprocess.CompletedProcess[str], code: int = 1) -> str:
    """A run that failed with ``code``, nothing on stdout, one error line: that line."""
    assert result.returncode == code, result
    assert result.stdout == "" and "Traceback" not in result.stderr, result
    return result.stderr.strip().splitlines()[-1]


def test_table_output_aligns_columns_and_counts_rows(populated):
    """The default table has a header, a rule, one line per row and a row count."""
    result = sql(populated, GENERAL)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split(" | ") == ["seq", "user_name", "text"]
    assert set(lines[1]) == {"-", "+"}
    assert lines[2].split(" | ")[:2] == ["  1", "Alice    "]  # numbers right-aligned
    assert lines[2].endswith("hello everyone")
    assert lines[-1] == "(6 rows)"


def test_csv_output_quotes_what_needs_quoting_and_leaves_null_empty(populated):
    """CSV has a header row; commas and quotes survive; NULL is an empty field."""
    query = "SELECT seq, text, client_id FROM messages WHERE room = 'random' ORDER BY seq"
    result = sql(populated, "--format", "csv", query)
    assert result.returncode == 0, result.stderr
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == ["seq", "text", "client_id"]
    assert rows[1:] == [
        ["2", "a cat picture", ""],
        ["3", 'quotes " and AND ( NEAR', ""],
        ["4", "hello again", "c-1"],
    ]


def test_json_output_is_an_array_of_objects_with_typed_values(populated):
    """JSON keeps numbers as numbers, NULL as null, and times as ISO-8601 text."""
    query = (
        "SELECT seq, user_id, client_id, created_at FROM messages"
        " WHERE room = 'general' AND seq <= 2 ORDER BY seq"
    )
    result = sql(populated, "--format", "json", query)
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["seq"] for r in rows] == [1, 2]
    assert rows[0]["user_id"] == "u-alice" and rows[0]["client_id"] is None
    assert rows[1]["created_at"].startswith("2026-11-26")


def test_an_empty_result_is_a_header_or_an_empty_array(populated):
    """No rows: the table still names its columns; JSON is []; CSV is the header."""
    none = "SELECT seq FROM messages WHERE room = 'nowhere'"
    assert sql(populated, none).stdout.splitlines()[-1] == "(0 rows)"
    assert json.loads(sql(populated, "--format", "json", none).stdout) == []
    assert sql(populated, "--format", "csv", none).stdout == "seq\n"


WRITES = [
    "DELETE FROM messages",
    "UPDATE messages SET text = 'defaced'",
    "INSERT INTO rooms (name, last_seq, created_at) VALUES ('x', 0, '2026-11-26')",
    "DROP TABLE messages",
    "CREATE TABLE intruder (a INTEGER)",
]
WRITES_BY_DIALECT = {
    "sqlite": ["PRAGMA user_version = 7", "VACUUM"],
    "postgresql": [
        "WITH gone AS (DELETE FROM messages RETURNING id) SELECT count(*) FROM gone",
        "SELECT nextval('messages_id_seq')",
    ],
}


class Discard:
    def columns(self, names: Sequence[str]) -> None:
        pass

    def rows(self, rows: Sequence[Sequence[Any]]) -> None:
        pass


async def test_every_kind_of_write_is_refused_by_the_database(populated):
    """Deletes, updates, inserts, DDL and their dialects' sneakier writes fail with WriteRefused."""
    database = await ReadOnlyDatabase.open(populated)
    try:
        dialect = "sqlite" if populated.startswith("sqlite") else "postgresql"
        for statement in WRITES + WRITES_BY_DIALECT[dialect]:
            with pytest.raises(WriteRefused):
                await database.query(statement, Discard())
    finally:
        await database.close()
    check = await run_chatapp_async("sql", "--db", populated, "--format", "csv", INTACT)
    assert check.stdout.splitlines()[1] == '9,"yes, the usual place"'


def test_a_write_through_the_command_exits_1_with_a_clear_message(populated):
    """The command reports the refusal in one line, says why, and exits with 1."""
    line = failed(sql(populated, "DELETE FROM messages WHERE room = 'general'"))
    assert line.startswith("chatapp sql: error: the database refused to write")
    assert "read-only" in line
    assert sql(populated, "--format", "csv", INTACT).stdout.splitlines()[1].startswith("9,")


@pytest.mark.parametrize(
    ("statement", "reason"),
    [
        ("SELEC * FROM messages", "syntax"),
        ("SELECT * FROM no_such_table", "no_such_table"),
        ("SELECT no_such_column FROM messages", "no_such_column"),
        ("SELECT 1; SELECT 2", ""),
    ],
)
def test_bad_sql_exits_1_with_the_databases_reason(populated, statement, reason):
    """Bad SQL is one error line with the database's own reason, and exit code 1."""
    line = failed(sql(populated, statement))
    assert line.startswith("chatapp sql: error: ")
    assert reason in line


def test_a_missing_database_is_an_error_and_is_not_created(tmp_path: Path):
    """With no database at --data-dir, the command says so and creates nothing."""
    result = run_chatapp("sql", "--data-dir", str(tmp_path / "nothing"), "SELECT 1")
    assert "no database at" in failed(result)
    assert not (tmp_path / "nothing").exists()


def test_an_unsupported_database_kind_is_refused():
    """Read-only access is known for SQLite and PostgreSQL; other URLs are refused, not trusted."""
    line = failed(run_chatapp("sql", "--db", "mysql+aiomysql://u@localhost/chat", "SELECT 1"))
    assert "SQLite and PostgreSQL" in line


@pytest.mark.parametrize("query", ["", "   "])
def test_an_empty_query_is_a_usage_error(tmp_path, query):
    """An empty query is refused by argument checking: exit 2, before any database is opened."""
    result = run_chatapp("sql", "--data-dir", str(tmp_path), query)
    assert result.returncode == 2 and "the query is empty" in result.stderr


def test_a_bad_format_is_a_usage_error(tmp_path):
    """Only table, csv and json are formats."""
    result = run_chatapp("sql", "--format", "xml", "SELECT 1")
    assert result.returncode == 2 and "--format" in result.stderr


def test_the_query_can_come_from_stdin(populated):
    """A query of '-' is read from standard input."""
    result = subprocess.run(
        [*CHATAPP, "sql", "--db", populated, "--format", "csv", "-"],
        input="SELECT count(*) AS n FROM messages WHERE room = 'general'\n",
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        env=chatapp_env(),
        check=False,
    )
    assert result.stdout == "n\n6\n", result.stderr


async def test_it_reads_the_servers_data_dir_while_the_server_runs(launch, tmp_path):
    """``--data-dir`` finds the server's database, and queries it while the server writes."""
    data = tmp_path / "data"
    data.mkdir()
    await populate(f"sqlite+aiosqlite:///{data / 'chat.db'}")
    await launch(data)
    query = "SELECT count(*) AS n FROM messages"
    result = await run_chatapp_async("sql", "--data-dir", str(data), "--format", "csv", query)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "n\n9\n"
