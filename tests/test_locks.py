"""Locks every process on one database sees (``Store.exclusive``), on SQLite and PostgreSQL.

A holder in another process is a real ``python`` process holding the lock
through the store, killed with SIGKILL to play a crash.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest
from factories import TICK, eventually
from procs import chatapp_env

from chatapp.store.engine import open_store
from chatapp.store.sql import SqlStore

#: Seconds a holder's lease lasts after its last renewal (SQLite), kept short for the tests.
TTL = 10 * TICK
#: Seconds a test waits for a lock to come free.
FREE_TIMEOUT = 300 * TICK

#: A process that takes lock ``retention`` on the database at argv[1], says so, and holds it.
HOLDER = """
import asyncio, sys
from chatapp.store.engine import open_store

async def hold():
    store = await open_store(sys.argv[1])
    async with store.exclusive("retention", float(sys.argv[2])) as taken:
        print("taken" if taken else "busy", flush=True)
        await asyncio.sleep(3600)

asyncio.run(hold())
"""


@pytest.fixture
def stores(db_url: str, io_loop) -> Iterator[tuple[SqlStore, SqlStore]]:
    """Two stores on one database, as two processes would have."""
    first = io_loop.run_sync(lambda: open_store(db_url))
    second = io_loop.run_sync(lambda: open_store(db_url))
    yield first, second
    io_loop.run_sync(first.close)
    io_loop.run_sync(second.close)


async def is_free(store: SqlStore, name: str = "retention") -> bool:
    async with store.exclusive(name, TTL) as taken:
        return taken


@asynccontextmanager
async def holder_process(db_url: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """A process holding the ``retention`` lock; killed (if still alive) on exit."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        HOLDER,
        db_url,
        str(TTL),
        stdout=asyncio.subprocess.PIPE,
        env=chatapp_env(),
    )
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), FREE_TIMEOUT)
        assert line == b"taken\n"
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_a_lock_is_held_by_one_store_at_a_time(stores):
    """While one store holds a lock, another is told it is taken; once released, it is free."""
    first, second = stores
    async with first.exclusive("retention", TTL) as taken:
        assert taken is True
        assert not await is_free(second)
        assert not await is_free(first)  # a second holder in the same process is refused too
    assert await is_free(second)


async def test_locks_of_different_names_are_independent(stores):
    """Holding one lock takes nothing from a lock of another name."""
    first, second = stores
    async with first.exclusive("retention", TTL) as taken:
        assert taken is True
        assert await is_free(second, "something-else")


async def test_a_live_holder_keeps_its_lock_beyond_the_ttl(stores, db_url):
    """A holder that lives keeps the lock past its lease time (it renews it)."""
    _, second = stores
    async with holder_process(db_url):
        await asyncio.sleep(3 * TTL)
        assert not await is_free(second)


async def test_a_killed_holder_loses_the_lock(stores, db_url):
    """A holder killed with SIGKILL frees the lock: at once on PostgreSQL, after its
    lease runs out on SQLite."""
    _, second = stores
    async with holder_process(db_url) as holder:
        assert not await is_free(second)
        holder.send_signal(signal.SIGKILL)
        await holder.wait()
        await eventually(lambda: is_free(second), "the dead holder's lock free", FREE_TIMEOUT)
