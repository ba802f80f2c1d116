"""Where a benchmarked server stores: a throwaway database per run, empty or pre-filled.

SQLite: a ``chat.db`` in the run's data folder; the pre-filled one is built
once, cached in ``bench/results/prefill-KEY.db`` and copied per run.
PostgreSQL (``--db postgresql+asyncpg://...``): a database created per run
on that server and dropped afterwards; the pre-filled one is built once as
the template ``chatapp_bench_tpl_KEY`` and cloned per run (drop it by hand
when done: ``DROP DATABASE chatapp_bench_tpl_KEY``).

The schema always comes from the server itself (``create_schema`` starts
``python -m chatapp`` on the database once and stops it).
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from bench import prefill
from bench.prefill import PrefillSpec
from bench.system import RESULTS, BenchError
from chatapp.store.search_index import index_path

_T = TypeVar("_T")

#: Starts the server once on a database URL so that it creates (migrates) the schema.
SchemaMaker = Callable[[str], None]


class Databases(Protocol):
    """Hands out database URLs for runs and removes them again."""

    kind: str

    def fresh(self, data_dir: Path) -> str:
        """An empty database for one run."""
        ...

    def prefilled(self, data_dir: Path, spec: PrefillSpec) -> str:
        """A copy of the pre-filled database for one run."""
        ...

    def release(self, url: str) -> None:
        """Remove a run's database (a no-op for SQLite: its data folder goes)."""
        ...

    def close(self) -> None:
        """Remove every database handed out and not released yet."""
        ...


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path.resolve()}"


class SqliteDatabases:
    kind = "sqlite"

    def __init__(self, create_schema: SchemaMaker, scratch: Path) -> None:
        self._create_schema = create_schema
        self._scratch = scratch

    def fresh(self, data_dir: Path) -> str:
        data_dir.mkdir(parents=True, exist_ok=True)
        return sqlite_url(data_dir / "chat.db")

    def prefilled(self, data_dir: Path, spec: PrefillSpec) -> str:
        cached = self.cached(spec)
        data_dir.mkdir(parents=True, exist_ok=True)
        for source, copy in (
            (cached, data_dir / "chat.db"),
            (index_path(cached), index_path(data_dir / "chat.db")),
        ):
            shutil.copyfile(source, copy)
            _flush(copy)
        return sqlite_url(data_dir / "chat.db")

    def cached(self, spec: PrefillSpec) -> Path:
        """The pre-filled file for ``spec``, built on first use (atomically: no half files)."""
        cached = RESULTS / f"prefill-{spec.key()}.db"
        if cached.exists():
            return cached
        building = self._scratch / "prefill-building"
        shutil.rmtree(building, ignore_errors=True)
        building.mkdir(parents=True)
        self._create_schema(sqlite_url(building / "chat.db"))
        for leftover in ("chat.db-wal", "chat.db-shm"):
            if (building / leftover).exists():
                raise BenchError("prefill: the schema server left a WAL behind (not stopped?)")
        prefill.fill_sqlite(building / "chat.db", spec)
        RESULTS.mkdir(parents=True, exist_ok=True)
        # the search index first: a cached database never lacks its index
        os.replace(index_path(building / "chat.db"), index_path(cached))
        os.replace(building / "chat.db", cached)
        shutil.rmtree(building, ignore_errors=True)
        return cached

    def release(self, url: str) -> None:
        return None

    def close(self) -> None:
        return None


class PostgresDatabases:
    kind = "postgresql"

    def __init__(self, admin_url: str, create_schema: SchemaMaker) -> None:
        try:
            self._url = make_url(admin_url)
        except ArgumentError:
            raise BenchError(f"bad --db URL {admin_url!r}") from None
        if self._url.drivername != "postgresql+asyncpg":
            raise BenchError("--db must be a postgresql+asyncpg://USER@HOST:PORT/DB URL")
        prefill.import_asyncpg()
        self._create_schema = create_schema
        self._live: list[str] = []
        self._count = 0

    def _dsn(self, database: str | None = None) -> str:
        url: URL = self._url.set(drivername="postgresql")
        if database is not None:
            url = url.set(database=database)
        return url.render_as_string(hide_password=False)

    def _sqlalchemy_url(self, database: str) -> str:
        return self._url.set(database=database).render_as_string(hide_password=False)

    def _run(self, work: Callable[[Any], Awaitable[_T]]) -> _T:
        """Run ``work(connection)`` on the maintenance database named in --db."""
        asyncpg = prefill.import_asyncpg()

        async def run() -> _T:
            db = await asyncpg.connect(self._dsn())
            try:
                return await work(db)
            finally:
                await db.close()

        try:
            return asyncio.run(run())
        except (OSError, asyncpg.PostgresError) as exc:
            where = f"{self._url.host}:{self._url.port or 5432}"
            raise BenchError(f"PostgreSQL at {where}: {exc}") from None

    def _admin(self, *statements: str) -> None:
        async def work(db: Any) -> None:
            for statement in statements:
                await db.execute(statement)

        self._run(work)

    def _exists(self, name: str) -> bool:
        async def work(db: Any) -> bool:
            return bool(await db.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name))

        return self._run(work)

    def _new_name(self) -> str:
        self._count += 1
        return f"chatapp_bench_{os.getpid()}_{self._count}"

    def fresh(self, data_dir: Path) -> str:
        data_dir.mkdir(parents=True, exist_ok=True)
        name = self._new_name()
        self._admin(f'CREATE DATABASE "{name}"')
        self._live.append(name)
        return self._sqlalchemy_url(name)

    def prefilled(self, data_dir: Path, spec: PrefillSpec) -> str:
        template = self.template(spec)
        data_dir.mkdir(parents=True, exist_ok=True)
        name = self._new_name()
        # CHECKPOINT: the clone was written through the WAL (PostgreSQL 15's default copy
        # strategy); flush it now, or the run's first checkpoint measures that instead
        self._admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"', "CHECKPOINT")
        self._live.append(name)
        return self._sqlalchemy_url(name)

    def template(self, spec: PrefillSpec) -> str:
        """The pre-filled template database for ``spec``, built on first use."""
        template = f"chatapp_bench_tpl_{spec.key()}"
        if self._exists(template):
            return template
        building = f"{template}_building"
        self._admin(f'DROP DATABASE IF EXISTS "{building}" WITH (FORCE)')
        self._admin(f'CREATE DATABASE "{building}"')
        try:
            self._create_schema(self._sqlalchemy_url(building))
            prefill.fill_postgres_sync(self._dsn(building), spec)
            self._admin(f'ALTER DATABASE "{building}" RENAME TO "{template}"')
        except BaseException:
            self._admin(f'DROP DATABASE IF EXISTS "{building}" WITH (FORCE)')
            raise
        return template

    def release(self, url: str) -> None:
        name = make_url(url).database
        if name in self._live:
            self._live.remove(name)
            self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def close(self) -> None:
        for name in list(self._live):
            self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self._live.clear()


def _flush(path: Path) -> None:
    """Write a fresh copy to disk before the server opens it: otherwise the server's first
    fsync flushes the whole copy (hundreds of MB) and the run measures that stall."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def databases(db: str | None, create_schema: SchemaMaker, scratch: Path) -> Databases:
    """SQLite unless ``db`` names a PostgreSQL server to create throwaway databases on."""
    if db is None:
        return SqliteDatabases(create_schema, scratch)
    return PostgresDatabases(db, create_schema)
