"""The database a server starts on: one server per SQLite file, writable, and private."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import connect_json, pg_admin, post
from procs import assert_startup_error, run_chatapp_async
from sqlalchemy.engine import make_url
from tornado.httpclient import AsyncHTTPClient

from chatapp.store.engine import open_store


@pytest.fixture
def read_only() -> Iterator[Callable[[Path], None]]:
    """Make a file or folder unwritable for real, undone at teardown.

    Root ignores file modes, so as root the inode is made immutable (``chattr +i``);
    any other user gets ``chmod a-w``.
    """
    changed: list[Path] = []
    as_root = os.geteuid() == 0

    def make(path: Path) -> None:
        if as_root:
            chattr = shutil.which("chattr")
            done = chattr and subprocess.run([chattr, "+i", str(path)], check=False)
            if not done or done.returncode != 0:
                pytest.skip("running as root, and chattr +i does not work here")
        else:
            path.chmod(stat.S_IMODE(path.stat().st_mode) & ~0o222)
        changed.append(path)

    yield make
    for path in reversed(changed):
        if as_root:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        else:
            path.chmod(stat.S_IMODE(path.stat().st_mode) | 0o200)


async def start_error(*args: str, cwd: Path) -> str:
    """Start ``python -m chatapp ARGS`` expecting it to refuse: its one error line."""
    return assert_startup_error(await run_chatapp_async("--port", "0", *args, cwd=cwd))


async def readyz(http_url: str) -> tuple[int, dict[str, str]]:
    response = await AsyncHTTPClient().fetch(f"{http_url}/readyz", raise_error=False)
    return response.code, json.loads(response.body)


# --- one server per SQLite file ----------------------------------------------


async def test_a_second_server_on_the_same_database_refuses_and_the_first_keeps_working(
    launch, tmp_path
):
    """Same --data-dir, or the same file through --db: one line naming the first server's pid."""
    first = await launch()
    same_file = f"sqlite+aiosqlite:///{first.db_path}"
    for args in (("--data-dir", str(first.data_dir)), ("--db", same_file)):
        line = await start_error(*args, cwd=tmp_path)
        assert "another chatapp server" in line and f"pid {first.proc.pid}" in line
    client, _, _ = await connect_json(first.ws_url)
    assert (await post(client, "still here"))["seq"] == 1


async def test_a_killed_server_leaves_no_stale_lock(launch, tmp_path):
    """After kill -9 the kernel has dropped the lock: a new server starts on the same data."""
    first = await launch()
    client, _, _ = await connect_json(first.ws_url)
    await post(client, "before the crash")
    client.close()
    assert await first.stop(signal.SIGKILL) == -signal.SIGKILL
    second = await launch(first.data_dir)
    _, _, history = await connect_json(second.ws_url)
    assert [m["text"] for m in history["messages"]] == ["before the crash"]


# --- a database that does not take writes ----------------------------------


async def test_a_read_only_database_file_stops_the_start(tmp_path, read_only):
    """chat.db that cannot be written: a start-up error, not a server whose posts all fail."""
    data = tmp_path / "data"
    data.mkdir()
    await (await open_store(f"sqlite+aiosqlite:///{data / 'chat.db'}")).close()
    read_only(data / "chat.db")
    line = await start_error("--data-dir", str(data), cwd=tmp_path)
    assert "chat.db" in line and "read-only" in line


async def test_a_database_in_a_read_only_folder_stops_the_start(launch, tmp_path, read_only):
    """SQLite creates chat.db-wal and -shm beside the file: the folder must be writable too."""
    folder = tmp_path / "db"
    folder.mkdir()
    url = f"sqlite+aiosqlite:///{folder / 'chat.db'}"
    await (await launch(None, "--db", url)).stop()
    read_only(folder)
    line = await start_error("--data-dir", str(tmp_path / "data"), "--db", url, cwd=tmp_path)
    assert str(folder) in line and "not writable" in line


async def test_a_database_opened_read_only_by_its_url_stops_the_start(tmp_path):
    """The write probe itself: SQLite opened with mode=ro answers reads but refuses the probe."""
    path = tmp_path / "chat.db"
    await (await open_store(f"sqlite+aiosqlite:///{path}")).close()
    url = f"sqlite+aiosqlite:///file:{path}?mode=ro&uri=true"
    line = await start_error("--data-dir", str(tmp_path / "data"), "--db", url, cwd=tmp_path)
    assert "refuses writes" in line and "readonly" in line


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_a_read_only_postgresql_database_stops_the_start(db_url, tmp_path):
    """PostgreSQL whose transactions are read-only by default: a start-up error saying so."""
    await (await open_store(db_url)).close()
    name = make_url(db_url).database
    await pg_admin(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
    line = await start_error("--data-dir", str(tmp_path / "data"), "--db", db_url, cwd=tmp_path)
    assert "read-only" in line


async def test_readyz_is_503_while_the_database_refuses_writes(db_url, serve, read_only):
    """Writes that start failing at run time take the server out of readiness, with a reason."""
    port = await serve(db_url=db_url)
    url = f"http://127.0.0.1:{port}"
    assert (await readyz(url))[0] == 200
    if db_url.startswith("sqlite"):
        read_only(Path(make_url(db_url).database or ""))
    else:
        name = make_url(db_url).database
        await pg_admin(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on')
        await pg_admin(  # the server reconnects, now read-only
            f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
        )
    status, body = await readyz(url)
    assert status == 503, body
    assert body["error"] == "unavailable" and "read-only" in body["reason"]


# --- private files -----------------------------------------------------------


async def test_the_data_dir_and_every_database_file_are_private(launch, tmp_path):
    """A new data dir is 0700; chat.db, its -wal and -shm, the lock and the search index
    file (with its own -wal and -shm) are 0600."""
    server = await launch()
    client, _, _ = await connect_json(server.ws_url)
    await post(client, "written")  # the -wal and -shm files exist while the server runs
    data = server.data_dir
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in [data, *data.iterdir()]}
    assert modes == {
        "data": 0o700,
        "chat.db": 0o600,
        "chat.db-wal": 0o600,
        "chat.db-shm": 0o600,
        "chat.db.lock": 0o600,
        "chat-search.db": 0o600,
        "chat-search.db-wal": 0o600,
        "chat-search.db-shm": 0o600,
    }
