"""Reading a live database for people: ad-hoc SQL and exports, never a write.

``ReadOnlyDatabase`` opens the database as ``readonly`` describes, so the
database itself refuses writes, and runs nothing that migrates or creates.
A user's SQL goes to the driver verbatim (no parameter parsing, so ``:``
and ``%`` mean what they mean in SQL) and its rows are streamed in chunks.
A statement may be given a time limit, which the database enforces:
PostgreSQL's ``statement_timeout``, and on SQLite a progress handler that
interrupts the statement once the time is up.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncGenerator, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import Connection, make_url, select
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from chatapp.errors import QueryError, StoreError, UnknownRoom, WriteRefused
from chatapp.model import StoredMessage
from chatapp.store.authorizer import AUTHORIZER, ReadsOnly
from chatapp.store.engine import create_engine
from chatapp.store.schema import MESSAGE_COLUMNS, MessageRow, RoomRow
from chatapp.store.sql import message_of
from chatapp.store.transactions import first_line

#: Rows fetched from the database at a time.
CHUNK_ROWS = 500
#: SQLite virtual-machine steps between two looks at the clock during a time-limited statement.
SQLITE_PROGRESS_STEPS = 10_000
#: Primary result codes of sqlite3 (the module names only some of them).
_SQLITE_INTERRUPT = 9
_SQLITE_READONLY = 8
_PG_READ_ONLY_TRANSACTION = "25006"
_PG_QUERY_CANCELED = "57014"
_PG_MAX_TIMEOUT_MS = 2**31 - 1


class RowSink(Protocol):
    """Receives a query's result: its column names once, then rows in chunks."""

    def columns(self, names: Sequence[str]) -> None: ...

    def rows(self, rows: Sequence[Sequence[Any]]) -> None: ...


class ReadOnlyDatabase:
    """A database opened read-only: ad-hoc SQL (``query``) and room exports (``export``)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._shown = engine.url.render_as_string(hide_password=True)

    @classmethod
    async def open(cls, url: str) -> ReadOnlyDatabase:
        """Connect once to surface a bad URL or a missing database as ``StoreError``."""
        engine = create_engine(url, read_only=True)
        shown = make_url(url).render_as_string(hide_password=True)  # as given, not rewritten
        try:
            async with engine.connect():
                pass
        except (SQLAlchemyError, OSError) as exc:
            await engine.dispose()
            raise StoreError(f"cannot open database {shown!r}: {_reason(exc)}") from None
        return cls(engine)

    async def query(self, sql: str, sink: RowSink, timeout: float | None = None) -> None:
        """Run one SQL statement and feed its result to ``sink``.

        ``WriteRefused`` when the database rejected a write (or anything but
        a read); ``QueryError`` for any other error the database reports
        (syntax, unknown table, ...), and when the statement was still running
        after ``timeout`` seconds (fetching included), which cancels it.
        A statement that returns no rows gives an empty column list.
        """
        try:
            async with self._engine.connect() as connection:
                await connection.run_sync(_stream, sql, sink, timeout)
        except Exception as exc:
            error = _database_error(exc, timeout)
            if error is None:
                raise
            raise error from None

    async def export(
        self,
        room: str,
        since: datetime | None = None,
        until: datetime | None = None,
        chunk: int = 1000,
    ) -> AsyncGenerator[StoredMessage, None]:
        """The room's messages created in ``[since, until)``, in seq order, fetched ``chunk``
        rows at a time from one query (one consistent snapshot, never all in memory).

        ``UnknownRoom`` if the room never held a message.
        """
        query = select(*MESSAGE_COLUMNS).where(MessageRow.room == room)
        if since is not None:
            query = query.where(MessageRow.created_at >= since.astimezone(UTC))
        if until is not None:
            query = query.where(MessageRow.created_at < until.astimezone(UTC))
        query = query.order_by(MessageRow.seq).execution_options(yield_per=chunk)
        try:
            async with self._engine.connect() as connection:
                known = select(RoomRow.name).where(RoomRow.name == room)
                if await connection.scalar(known) is None:
                    raise UnknownRoom(f"no room {room!r} in the database")
                async for row in await connection.stream(query):
                    yield message_of(row)
        except (SQLAlchemyError, OSError) as exc:
            raise StoreError(f"reading {self._shown} failed: {first_line(exc)}") from None

    async def close(self) -> None:
        await self._engine.dispose()


def _stream(connection: Connection, sql: str, sink: RowSink, timeout: float | None) -> None:
    authorizer: ReadsOnly | None = connection.connection.info.get(AUTHORIZER)  # SQLite's
    if authorizer is not None:
        authorizer.refused = None
    try:
        with _time_limit(connection, timeout):
            result = connection.exec_driver_sql(sql, execution_options={"stream_results": True})
            if not result.returns_rows:
                sink.columns([])
                return
            sink.columns(list(result.keys()))
            for chunk in result.partitions(CHUNK_ROWS):
                sink.rows(chunk)
    except Exception:
        if authorizer is not None and authorizer.refused is not None:
            raise WriteRefused(f"not authorized: {authorizer.refused}") from None
        raise


@contextmanager
def _time_limit(connection: Connection, timeout: float | None) -> Iterator[None]:
    """Have the database cancel what runs on ``connection`` after ``timeout`` seconds."""
    if not timeout or not math.isfinite(timeout):
        yield
        return
    if connection.dialect.name == "postgresql":
        milliseconds = min(math.ceil(timeout * 1000), _PG_MAX_TIMEOUT_MS)
        # LOCAL: for this transaction only, which the connection's return to the pool ends.
        connection.exec_driver_sql(f"SET LOCAL statement_timeout = {milliseconds}")
        yield
        return
    driver = connection.connection.dbapi_connection
    assert driver is not None
    deadline = time.monotonic() + timeout

    def expired() -> bool:  # SQLite interrupts the statement when this returns true
        return time.monotonic() > deadline

    driver.run_async(lambda sqlite: sqlite.set_progress_handler(expired, SQLITE_PROGRESS_STEPS))
    try:
        yield
    finally:
        driver.run_async(lambda sqlite: sqlite.set_progress_handler(None, 0))


def _database_error(exc: Exception, timeout: float | None = None) -> StoreError | None:
    """What ``exc`` means for the user, or None when it is not the database's doing."""
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    # Errors met while fetching from a server-side cursor can arrive as the
    # driver's own exceptions, unwrapped: recognise those by their codes too.
    code = getattr(orig, "sqlite_errorcode", None)
    state = getattr(orig, "sqlstate", None)
    primary = code & 0xFF if isinstance(code, int) else None
    if primary == _SQLITE_INTERRUPT or state == _PG_QUERY_CANCELED:
        limit = f" after {timeout:g} s, its time limit" if timeout else ""
        return QueryError(f"the statement was cancelled{limit}")
    if primary == _SQLITE_READONLY:
        return WriteRefused(_reason(exc))
    if state == _PG_READ_ONLY_TRANSACTION:
        return WriteRefused(_reason(exc))
    if isinstance(exc, DBAPIError) or code is not None or state is not None:
        return QueryError(_reason(exc))
    if isinstance(exc, SQLAlchemyError | OSError):
        return StoreError(f"database did not answer: {_reason(exc)}")
    return None


def _reason(exc: BaseException) -> str:
    """The first line of the database's own message, without SQLAlchemy's wrapping."""
    orig = exc.orig if isinstance(exc, DBAPIError) and exc.orig is not None else exc
    text = str(orig).strip()
    return text.splitlines()[0] if text else type(orig).__name__
