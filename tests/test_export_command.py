"""``python -m chatapp export``: a room as JSON lines or CSV, streamed, read-only."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from chatdata import GENERAL_ON_26TH
from factories import T0, new
from procs import RUN_TIMEOUT, chatapp_env, run_chatapp
from sqlalchemy import text

from chatapp.errors import UnknownRoom
from chatapp.store.engine import create_engine, open_store
from chatapp.store.readonly_database import ReadOnlyDatabase

#: Fresh databases on both backends, as in the store tests.

FIELDS = ["room", "seq", "id", "user_id", "user_name", "text", "created_at", "client_id"]


def export(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_chatapp("export", "--db", url, *args)


def records(result: subprocess.CompletedProcess[str]) -> list[dict]:
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_jsonl_export_has_every_message_of_the_room_in_seq_order(populated):
    """One JSON object per line, the room's messages only, by seq, with the SQL column names."""
    result = export(populated, "--room", "general")
    rows = records(result)
    assert [r["seq"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert list(rows[0]) == FIELDS
    assert rows[0]["text"] == "hello everyone" and rows[0]["user_id"] == "u-alice"
    assert rows[0]["created_at"] == "2026-11-25T23:59:59.999999Z"
    assert "6 messages from room 'general'" in result.stderr


def test_csv_export_has_a_header_and_survives_quotes_and_commas(populated):
    """CSV starts with the field names; awkward text reads back unchanged."""
    result = export(populated, "--room", "random", "--format", "csv")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert list(rows[0]) == FIELDS
    assert [r["seq"] for r in rows] == ["2", "3", "4"]  # seq 1 was pruned
    assert rows[1]["text"] == 'quotes " and AND ( NEAR'
    assert rows[2]["client_id"] == "c-1" and rows[0]["client_id"] == ""


@pytest.mark.parametrize(
    ("since", "until"),
    [
        ("2026-11-26", "2026-11-27"),
        ("2026-11-26T00:00:00Z", "2026-11-27T00:00:00+00:00"),
        ("2026-11-26T01:00:00+01:00", "2026-11-26T19:00:00-05:00"),
    ],
)
def test_since_and_until_select_a_time_range(populated, since, until):
    """--since is inclusive, --until exclusive, offsets are honoured and plain times are UTC."""
    rows = records(export(populated, "--room", "general", "--since", since, "--until", until))
    assert [r["seq"] for r in rows] == GENERAL_ON_26TH


def test_only_since_or_only_until_leave_the_other_end_open(populated):
    """Either bound alone cuts one side."""
    late = records(export(populated, "--room", "general", "--since", "2026-11-26T23:00"))
    assert [r["seq"] for r in late] == [5, 6]
    early = records(export(populated, "--room", "general", "--until", "2026-11-26T00:00:00"))
    assert [r["seq"] for r in early] == [1]


def test_an_empty_range_is_not_an_error(populated):
    """No messages in the range: nothing for JSON lines, just the header for CSV."""
    after = ["--room", "general", "--since", "2030-01-01"]
    assert records(export(populated, *after)) == []
    assert export(populated, *after, "--format", "csv").stdout == ",".join(FIELDS) + "\n"


def test_an_unknown_room_exits_1_with_nothing_on_stdout(populated):
    """A room that never existed is an error, and no partial output (not even a header)."""
    result = export(populated, "--room", "nowhere", "--format", "csv")
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr.strip() == "chatapp export: error: no room 'nowhere' in the database"


@pytest.mark.parametrize("bad", ["yesterday", "2026-13-01", "26/11/2026", ""])
@pytest.mark.parametrize("option", ["--since", "--until"])
def test_invalid_dates_are_usage_errors(tmp_path, option, bad):
    """A date that is not ISO-8601 is refused before anything is opened: exit 2, a reason."""
    result = run_chatapp("export", "--data-dir", str(tmp_path), "--room", "general", option, bad)
    assert result.returncode == 2 and result.stdout == ""
    assert f"argument {option}: not an ISO-8601 date or time" in result.stderr


def test_since_not_before_until_is_a_usage_error(tmp_path):
    """An empty or reversed range is a mistake worth reporting."""
    args = ["--room", "general", "--since", "2026-11-27", "--until", "2026-11-26"]
    result = run_chatapp("export", "--data-dir", str(tmp_path), *args)
    assert result.returncode == 2 and "--since must be earlier than --until" in result.stderr


@pytest.mark.parametrize("args", [[], ["--room=bad room"], ["--room=general", "--format=xml"]])
def test_a_missing_or_bad_room_or_format_is_a_usage_error(tmp_path, args):
    """--room is required and must be a valid room name; formats are jsonl and csv."""
    result = run_chatapp("export", "--data-dir", str(tmp_path), *args)
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_a_missing_database_is_an_error_and_is_not_created(tmp_path: Path):
    """With no database at --data-dir the export fails and creates nothing."""
    result = run_chatapp("export", "--data-dir", str(tmp_path / "none"), "--room", "general")
    assert result.returncode == 1 and "no database at" in result.stderr
    assert not (tmp_path / "none").exists()


# --- streaming ---------------------------------------------------------------------------


async def test_an_export_reads_one_snapshot_chunk_by_chunk(store, db_url):
    """Messages arrive in seq order across chunk boundaries; later commits are not mixed in."""
    await store.append([new(f"m{i}") for i in range(1, 8)])
    database = await ReadOnlyDatabase.open(db_url)
    seen = []
    try:
        async for message in database.export("general", chunk=3):
            seen.append(message.seq)
            if len(seen) == 1:
                await store.append([new("late")])
    finally:
        await database.close()
    assert seen == [1, 2, 3, 4, 5, 6, 7]


async def test_an_export_of_an_unknown_room_raises(store, db_url):
    """An unknown room is ``UnknownRoom`` before any message."""
    database = await ReadOnlyDatabase.open(db_url)
    try:
        with pytest.raises(UnknownRoom):
            async for _ in database.export("nowhere"):
                pass
    finally:
        await database.close()


def _peak_kib(data_dir: Path, *args: str) -> int:
    """Peak memory (KiB) of a process that runs ``export ARGS`` with stdout discarded."""
    probe = (
        "import resource, sys\n"
        "from chatapp.cli import main\n"
        "code = main(sys.argv[1:])\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
        "sys.exit(code)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, "export", "--data-dir", str(data_dir), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        timeout=RUN_TIMEOUT * 2,
        env=chatapp_env(),
        check=True,
    )
    return int(result.stderr.splitlines()[-1])


async def test_a_large_export_runs_in_constant_memory(tmp_path):
    """Exporting ~80 MB of text raises peak memory far less than holding it would."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'chat.db'}"
    await (await open_store(url)).close()  # just the schema
    count = 40_000
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text("INSERT INTO rooms (name, last_seq, created_at) VALUES ('big', :n, :at)"),
                {"n": count, "at": T0},
            )
            await conn.execute(
                text(
                    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < :n)"
                    " INSERT INTO messages (room, seq, user_id, user_name, text, created_at)"
                    " SELECT 'big', i, 'u', 'U', printf('%.2000c', 'x'), :at FROM n"
                ),
                {"n": count, "at": T0},
            )
    finally:
        await engine.dispose()
    baseline = _peak_kib(tmp_path, "--room", "big", "--since", "2030-01-01")
    full = _peak_kib(tmp_path, "--room", "big")
    assert full - baseline < 40 * 1024, (baseline, full)
