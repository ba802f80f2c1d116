"""Opening a database: engines and their set-up per dialect, the schema, the writer's
connection, and the ready store.

Every failure an operator can cause (a bad URL, a missing driver, a file that
cannot be a database, a schema from elsewhere) is a ``StoreError`` whose reason
names the database, with its password masked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from chatapp.errors import SchemaMismatch, StoreError
from chatapp.limits import DEFAULT_DB_TIMEOUT
from chatapp.store import files, migrate, readonly, search_index, writable
from chatapp.store.search_index import SearchIndex
from chatapp.store.sql import SqlStore
from chatapp.store.transactions import (
    PoolTransactions,
    ThreadTransactions,
    Transactions,
    first_line,
)

R = TypeVar("R")

#: Seconds one write attempt waits for SQLite's lock (longer waits are retries).
WRITER_LOCK_WAIT = 0.25


#: Seconds between tries to open a database that other starting servers hold locked.
STARTUP_RETRY_PAUSE = 0.05
#: Connections of the writer's own pool on PostgreSQL (one batch at a time, one spare).
WRITER_POOL_SIZE = 2


def sqlite_pragmas(busy_seconds: float) -> Callable[[Any, Any], None]:
    """Set up each new SQLite connection; lock waits end after ``busy_seconds``."""

    def set_up(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        # first: switching a new file to WAL must wait for another process doing the same
        cursor.execute(f"PRAGMA busy_timeout={int(busy_seconds * 1000)}")
        # WAL lets readers run beside the writer; FULL syncs every commit, so an
        # acknowledged message survives even a power loss (group commit pays for it).
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return set_up


def create_engine(
    url: str, *, read_only: bool = False, timeout: float = DEFAULT_DB_TIMEOUT, pool_size: int = 5
) -> AsyncEngine:
    """An async engine for ``url``; ``StoreError`` with a readable reason if it cannot be.

    ``read_only`` opens connections on which the database refuses every
    write (see ``readonly``). Messages show the URL with its password masked.
    """
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise StoreError("bad database URL: expected e.g. sqlite+aiosqlite:///chat.db") from None
    shown = parsed.render_as_string(hide_password=True)
    if read_only:
        parsed = readonly.read_only_url(parsed)
    backend = parsed.get_backend_name()
    options: dict[str, Any] = {}
    if backend == "postgresql":
        options["pool_pre_ping"] = True
        options["pool_size"] = pool_size
        if not read_only:  # the tools' exports may run long; the server's statements may not
            options["connect_args"] = {"timeout": timeout, "command_timeout": timeout}
    try:
        engine = create_async_engine(parsed, **options)
    except NoSuchModuleError:
        raise StoreError(f"bad database URL {shown!r}: unknown dialect or driver") from None
    except ImportError as exc:
        raise StoreError(
            f"bad database URL {shown!r}: its driver is not installed ({exc.name})"
        ) from None
    except (ArgumentError, SQLAlchemyError, ValueError) as exc:
        raise StoreError(f"bad database URL {shown!r}: {first_line(exc)}") from None
    if read_only:
        readonly.install(engine.sync_engine)
    elif engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", sqlite_pragmas(timeout))
    return engine


def prepare_sqlite_file(engine: AsyncEngine) -> None:
    """Refuse an SQLite path that cannot be a writable database file before connecting to it,
    and create a new one private (0600).

    A failed aiosqlite connect can leave its worker thread reporting to a loop
    that is already closed (a traceback at exit), so fail early instead.
    """
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return
    if database.startswith("file:"):
        return  # a URI filename; SQLite parses it
    path = Path(database)
    if path.is_dir():
        raise StoreError(f"cannot open database {database!r}: it is a directory")
    if not path.parent.is_dir():
        raise StoreError(f"cannot open database {database!r}: no directory {str(path.parent)!r}")
    writable.check_sqlite_files(path.resolve())
    files.create_private(path)


async def open_store(
    url: str, timeout: float = DEFAULT_DB_TIMEOUT, *, migrate_schema: bool = True
) -> SqlStore:
    """Connect, bring the schema up to date, check that it takes writes; a ready store.

    ``timeout`` bounds waits for locks and connections, in seconds (migrations,
    which may take long, run on a connection of their own). Without
    ``migrate_schema`` the schema is never touched: ``SchemaMismatch`` unless
    it is already at the newest revision.
    """
    if migrate_schema:
        await upgrade_schema(url)
    engine = await _opened_beside_others(url, timeout)
    try:
        index = await _search_index(engine)
    except StoreError:
        await engine.dispose()
        raise
    store = SqlStore(engine, writer_transactions(engine, url, timeout), index)
    try:
        await store.writable()
    except StoreError:
        await store.close()
        raise
    return store


async def _opened_beside_others(url: str, timeout: float) -> AsyncEngine:
    """The store's engine, once the schema is seen current."""
    engine, _ = await _beside_others(lambda: _prepared(url, _require_current, timeout=timeout))
    return engine


async def _beside_others(attempt: Callable[[], Coroutine[Any, Any, R]]) -> R:
    """``attempt()``, tried again while it fails on a locked database. Servers started
    together on a new SQLite file race to switch it to WAL, which SQLite may answer
    "locked" at once instead of waiting; try again for as long as a migration may take."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + migrate.MIGRATION_TIMEOUT
    while True:
        try:
            return await attempt()
        except StoreError as exc:
            if "database is locked" not in str(exc) or loop.time() > deadline:
                raise
            await asyncio.sleep(STARTUP_RETRY_PAUSE)


async def _search_index(engine: AsyncEngine) -> SearchIndex | None:
    """SQLite: the search index file beside the database, attached to every connection of
    ``engine`` from now on."""
    database = files.sqlite_file(engine.url)
    if engine.dialect.name != "sqlite" or database is None:
        return None
    index = SearchIndex(database)
    await index.open()
    event.listen(
        engine.sync_engine, "connect", lambda conn, _record: search_index.attach(conn, index.path)
    )
    await engine.dispose()  # connections opened so far lack it
    return index


async def upgrade_schema(url: str) -> migrate.Revision:
    """Bring the database at ``url`` to the newest schema; returns where it stood before."""
    engine, before = await _beside_others(
        lambda: _prepared(url, migrate.upgrade, timeout=migrate.MIGRATION_TIMEOUT)
    )
    await engine.dispose()
    return before


async def schema_revision(url: str) -> migrate.Revision:
    """Where the schema of the database at ``url`` stands, read on a read-only connection."""
    engine, revision = await _prepared(url, migrate.revision, read_only=True)
    await engine.dispose()
    return revision


async def _require_current(engine: AsyncEngine) -> migrate.Revision:
    revision = await migrate.revision(engine)
    if not revision.is_current:
        raise SchemaMismatch(revision.problem())
    return revision


async def _prepared(
    url: str,
    prepare: Callable[[AsyncEngine], Coroutine[Any, Any, R]],
    *,
    read_only: bool = False,
    timeout: float = DEFAULT_DB_TIMEOUT,
) -> tuple[AsyncEngine, R]:
    """An engine for ``url`` once ``prepare`` has run on it; if either fails, the engine
    is disposed of and the error is a ``StoreError`` that names the database."""
    engine = create_engine(url, read_only=read_only, timeout=timeout)
    if not read_only:
        prepare_sqlite_file(engine)
    try:
        return engine, await prepare(engine)
    except (SQLAlchemyError, OSError) as exc:
        await engine.dispose()
        shown = engine.url.render_as_string(hide_password=True)
        raise StoreError(f"cannot open database {shown!r}: {first_line(exc)}") from None
    except BaseException:
        await engine.dispose()
        raise


def writer_transactions(engine: AsyncEngine, url: str, timeout: float) -> Transactions:
    """Where batches are written: a thread with its own connection for an SQLite file, a
    pool of its own on PostgreSQL, the engine itself otherwise (an in-memory database)."""
    database = engine.url.database
    if engine.dialect.name == "sqlite" and database and database != ":memory:":
        sync = create_sync_engine(engine.url.set(drivername="sqlite"))
        # SQLite's wait for a lock cannot be interrupted: keep each one short, and let the
        # writer's retries (until --db-timeout) do the waiting, so shutdown never hangs on it.
        event.listen(sync, "connect", sqlite_pragmas(min(timeout, WRITER_LOCK_WAIT)))
        return ThreadTransactions(sync)
    if engine.dialect.name == "postgresql":
        return PoolTransactions(create_engine(url, timeout=timeout, pool_size=WRITER_POOL_SIZE))
    return PoolTransactions(engine)
