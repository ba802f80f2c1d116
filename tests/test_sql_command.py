"""``python -m chatapp sql``: read-only queries as a table, CSV or JSON, run as a subprocess."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from chatdata import populate
from procs import CHATAPP, RUN_TIMEOUT, chatapp_env, run_chatapp, run_chatapp_async

from chatapp.errors import QueryError, WriteRefused
from chatapp.store.readonly_database import ReadOnlyDatabase

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


#: What read-only mode (SQLite) or a read-only transaction (PostgreSQL) lets through, each
#: refused as well; ``{out}`` is a file the statement would create.
BEYOND_READ_ONLY = {
    "sqlite": [
        "ATTACH DATABASE '{out}' AS other",
        "VACUUM INTO '{out}'",
        "PRAGMA query_only = OFF",
        "PRAGMA writable_schema = ON",
        "CREATE TEMP TABLE scratch (a INTEGER)",
        "SELECT load_extension('{out}')",
    ],
    "postgresql": [
        "COPY messages TO '{out}'",
        "COPY messages TO PROGRAM 'touch {out}'",
        "SELECT pg_advisory_lock(1)",
        "SELECT pg_try_advisory_xact_lock(1, 2)",
        "SELECT pg_advisory_lock_shared(3)",
        "SELECT pg_cancel_backend(pg_backend_pid())",
        "SELECT pg_terminate_backend(pg_backend_pid())",
        "SELECT set_config('statement_timeout', '0', false)",
    ],
}
REFUSED = re.compile(r"not authorized|permission denied|must be superuser")


def dialect_of(url: str) -> str:
    return "sqlite" if url.startswith("sqlite") else "postgresql"


async def test_what_read_only_mode_lets_through_is_refused_too(reader_url):
    """SQLite: ATTACH, VACUUM INTO, setting PRAGMAs, temp tables, extensions. PostgreSQL, as
    the documented SELECT-only role: COPY to a file or program, advisory locks, cancelling or
    ending sessions, set_config. Each fails in the database and creates no file."""
    # PostgreSQL's own process would write the file, so not under the test's private tmp_path
    out = Path(f"/tmp/chatapp-refused-{uuid.uuid4().hex}")
    database = await ReadOnlyDatabase.open(reader_url)
    try:
        for statement in BEYOND_READ_ONLY[dialect_of(reader_url)]:
            with pytest.raises(QueryError) as refused:
                await database.query(statement.format(out=out), Discard())
            assert REFUSED.search(refused.value.reason), (statement, refused.value.reason)
            assert not out.exists(), statement
    finally:
        await database.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_refusal_through_the_command_names_what_was_refused(populated, tmp_path):
    """VACUUM INTO a file: one error line naming the refused ATTACH, exit 1, no file."""
    out = tmp_path / "copy.db"
    line = failed(sql(populated, f"VACUUM INTO '{out}'"))
    assert line.startswith("chatapp sql: error: the database refused to write")
    assert line.endswith(f"not authorized: ATTACH {out}")
    assert not out.exists()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_pragmas_that_read_the_schema_are_allowed(populated):
    """PRAGMA table_info and friends, also as table-valued functions, answer on SQLite."""
    for statement in [
        "PRAGMA table_info(messages)",
        "PRAGMA index_list(messages)",
        "PRAGMA user_version",
        "SELECT name FROM pragma_table_info('rooms') ORDER BY cid",
    ]:
        result = sql(populated, "--format", "csv", statement)
        assert result.returncode == 0, (statement, result.stderr)
    assert result.stdout == "name\nname\nlast_seq\ncreated_at\n"


#: A statement that runs (practically) forever on each database.
ENDLESS = {
    "sqlite": "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n)"
    " SELECT max(i) FROM n",
    "postgresql": "SELECT pg_sleep(600)",
}


def test_a_statement_past_its_time_limit_is_cancelled_by_the_database(reader_url):
    """--timeout: the database cancels the statement; one error line, exit 1."""
    line = failed(sql(reader_url, "--timeout", "0.5", ENDLESS[dialect_of(reader_url)]))
    assert line == "chatapp sql: error: the statement was cancelled after 0.5 s, its time limit"


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_postgresql_sessions_are_read_only_with_the_time_limit(populated):
    """Whatever the role, the tool's transactions are read-only and carry --timeout (30 s)."""
    show = "SELECT current_setting('default_transaction_read_only') AS ro, "
    show += "current_setting('statement_timeout') AS timeout"
    assert sql(populated, "--format", "csv", show).stdout == "ro,timeout\non,30s\n"
    unlimited = sql(populated, "--format", "csv", "--timeout", "0", show).stdout
    assert unlimited == "ro,timeout\non,0\n"


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
