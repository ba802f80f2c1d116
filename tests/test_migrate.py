"""Schema migrations from many processes: concurrent start-up, ``migrate``, ``--no-migrate``.

Real ``python -m chatapp`` processes on a fresh database of each backend.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from conftest import connect_json, post
from procs import run_chatapp_async
from revisions import head_revision, revisions, set_revision, stored_revision
from sqlalchemy import inspect
from tornado.httpclient import AsyncHTTPClient

from chatapp.store.engine import create_engine, open_store

#: Servers started at once on one empty database.
STARTED_TOGETHER = 3
#: Seconds the stores get to open together (one waits for another's migration).
OPEN_TIMEOUT = 60.0


async def table_names(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
    finally:
        await engine.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_servers_started_at_once_on_an_empty_database_all_serve(launch, db_url, tmp_path):
    """Three processes racing to migrate one empty PostgreSQL database all start, and all
    serve it. (On SQLite one server holds the file unless they share a broker; the race of
    migrations there is covered by stores opened at once, below.)"""
    servers = await asyncio.gather(
        *(
            launch(tmp_path / f"data{i}", "--db", db_url, "--rate-limit", "0")
            for i in range(STARTED_TOGETHER)
        )
    )
    acked = []
    for server in servers:
        ready = await AsyncHTTPClient().fetch(f"{server.http_url}/readyz")
        assert json.loads(ready.body)["status"] == "ready"
        client, _, _ = await connect_json(server.ws_url)
        acked.append((await post(client, f"via {server.port}"))["seq"])
    assert acked == [1, 2, 3]
    assert await stored_revision(db_url) == [head_revision()]


async def test_stores_opened_at_once_on_an_empty_database_all_open_it(db_url):
    """Three stores migrating one empty database at the same moment all open, at the head.

    In one process their statements interleave at every await, so without the
    migration lock this fails nearly every time (the processes above race less).
    """
    stores = await asyncio.wait_for(
        asyncio.gather(*(open_store(db_url) for _ in range(STARTED_TOGETHER))), OPEN_TIMEOUT
    )
    for store in stores:
        await store.ready()
        await store.close()
    assert await stored_revision(db_url) == [head_revision()]


async def test_migrate_upgrades_an_empty_database_and_says_to_which_revision(db_url, tmp_path):
    """``migrate`` creates the schema and prints the revision; run again, it has nothing to do."""
    first = await run_chatapp_async("migrate", "--db", db_url, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert (
        first.stdout
        == f"schema upgraded from revision none (an empty database) to {head_revision()}\n"
    )
    assert {"rooms", "messages", "secrets"} <= await table_names(db_url)
    again = await run_chatapp_async("migrate", "--db", db_url, cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout == f"schema at revision {head_revision()}, the newest; nothing to do\n"


async def test_migrate_check_tells_current_from_behind_and_changes_nothing(db_url, tmp_path):
    """``migrate --check`` exits 1 on a database that is behind (left so), 0 once current."""
    older = revisions()[-2]
    await run_chatapp_async("migrate", "--db", db_url, cwd=tmp_path)
    await set_revision(db_url, older)
    behind = await run_chatapp_async("migrate", "--check", "--db", db_url, cwd=tmp_path)
    assert behind.returncode == 1
    assert f"at revision {older}" in behind.stdout and "python -m chatapp migrate" in behind.stdout
    assert await stored_revision(db_url) == [older]
    await set_revision(db_url, head_revision())
    current = await run_chatapp_async("migrate", "--check", "--db", db_url, cwd=tmp_path)
    assert current.returncode == 0, current.stderr
    assert current.stdout == f"schema at revision {head_revision()}, the newest\n"


async def test_migrate_refuses_a_database_from_a_newer_chatapp(db_url, tmp_path):
    """A revision this chatapp does not know is one error line and exit 1, not a traceback."""
    await run_chatapp_async("migrate", "--db", db_url, cwd=tmp_path)
    await set_revision(db_url, "9999_from_the_future")
    result = await run_chatapp_async("migrate", "--db", db_url, cwd=tmp_path)
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert "9999_from_the_future" in line and "newer version" in line


async def test_no_migrate_refuses_to_start_on_an_empty_database_and_leaves_it_empty(
    db_url, tmp_path
):
    """With ``--no-migrate`` a database without the schema is one error line, exit 1, untouched."""
    result = await run_chatapp_async("--port", "0", "--db", db_url, "--no-migrate", cwd=tmp_path)
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("chatapp: error: ") and "python -m chatapp migrate" in line
    assert not {"rooms", "messages", "alembic_version"} & await table_names(db_url)


async def test_no_migrate_refuses_a_database_that_is_behind_or_ahead(db_url, tmp_path):
    """An older or a newer revision keeps a ``--no-migrate`` server from starting."""
    await run_chatapp_async("migrate", "--db", db_url, cwd=tmp_path)
    for revision, says in [(revisions()[-2], "run `python -m chatapp migrate`"), ("ffff", "newer")]:
        await set_revision(db_url, revision)
        result = await run_chatapp_async(
            "--port", "0", "--db", db_url, "--no-migrate", cwd=tmp_path
        )
        assert result.returncode == 1
        [line] = result.stderr.splitlines()
        assert revision in line and says in line
        assert await stored_revision(db_url) == [revision]


async def test_no_migrate_serves_a_current_database(launch, db_url, tmp_path):
    """After ``migrate``, a server started with ``CHATAPP_NO_MIGRATE=1`` serves as usual."""
    await run_chatapp_async("migrate", "--db", db_url, cwd=tmp_path)
    server = await launch(None, "--db", db_url, env={"CHATAPP_NO_MIGRATE": "1"})
    client, _, _ = await connect_json(server.ws_url)
    assert (await post(client, "hello"))["seq"] == 1
