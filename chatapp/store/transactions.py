"""Where a batch of messages is written: a connection the writer does not share.

On SQLite a dedicated thread with a synchronous connection, so a batch costs
one hand-off between threads and that connection's page cache stays warm; on
PostgreSQL a pool of its own, so the writer never waits behind history reads.
Database failures become ``StoreError`` here (try again later); faults of a
statement or its data stay what they are (no retry mends them).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol, TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    IntegrityError,
    ProgrammingError,
    SQLAlchemyError,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from chatapp.errors import StoreError

T = TypeVar("T")


class Transactions(Protocol):
    """Runs a function of a connection in one transaction, committed unless it raises."""

    async def run(self, work: Callable[[Connection], T]) -> T: ...

    async def close(self) -> None: ...


class ThreadTransactions:
    """SQLite: one synchronous connection on a thread of its own; one hand-off per batch.

    Attempts queue on that thread, so a retry runs after the attempt it
    replaces has finished, and sees whatever it committed.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="chatapp-sqlite-writer")
        self._conn: Connection | None = None
        self._closed = False

    async def run(self, work: Callable[[Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._transaction, work)

    def _transaction(self, work: Callable[[Connection], T]) -> T:
        if self._conn is None or self._conn.invalidated or self._conn.closed:
            try:
                self._conn = self._engine.connect()
            except SQLAlchemyError as exc:
                raise StoreError(f"cannot open the database: {first_line(exc)}") from None
        try:
            with self._conn.begin():
                return work(self._conn)
        except DBAPIError as exc:
            raise as_store_error(exc) from None

    async def close(self) -> None:
        """Close the connection on its own thread, then the thread; again is a no-op."""
        if self._closed:
            return
        self._closed = True

        def release() -> None:
            if self._conn is not None:
                self._conn.close()
            self._engine.dispose()

        await asyncio.get_running_loop().run_in_executor(self._thread, release)
        self._thread.shutdown(wait=True)


class PoolTransactions:
    """PostgreSQL: a pool of its own, so the writer never waits behind readers."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def run(self, work: Callable[[Connection], T]) -> T:
        try:
            async with self._engine.begin() as conn:
                return await conn.run_sync(work)
        except DBAPIError as exc:
            raise as_store_error(exc) from None
        except (OSError, TimeoutError) as exc:
            raise StoreError(f"the database did not answer: {exc}") from None

    async def close(self) -> None:
        await self._engine.dispose()


def as_store_error(exc: DBAPIError) -> Exception:
    """The database's failure as ``StoreError`` (it is down, locked, or dropped the
    connection: try again later), or as it is when the statement or its data is at fault
    (a constraint, a bad value, a bug), which no retry of the same batch can mend."""
    blames_the_data = isinstance(exc, IntegrityError | DataError | ProgrammingError)
    if blames_the_data and not exc.connection_invalidated:
        return exc
    return StoreError(f"the database failed: {first_line(exc.orig or exc)}")


def first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
