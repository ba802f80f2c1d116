"""Reading a live database for people: ad-hoc SQL and exports, never a write.

``ReadOnlyDatabase`` opens the database as ``readonly`` describes, so the
database itself refuses writes, and runs nothing that migrates or creates.
A user's SQL goes to the driver verbatim (no parameter parsing, so ``:``
and ``%`` mean what they mean in SQL) and its rows are streamed in chunks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from sqlalchemy import Connection, make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from chatapp.errors import QueryError, StoreError, WriteRefused
from chatapp.store.sql import SqlStore, create_engine

#: Rows fetched from the database at a time.
CHUNK_ROWS = 500
_SQLITE_READONLY = 8  # sqlite3.SQLITE_READONLY, the primary result code
_PG_READ_ONLY_TRANSACTION = "25006"


class RowSink(Protocol):
    """Receives a query's result: its column names once, then rows in chunks."""

    def columns(self, names: Sequence[str]) -> None: ...

    def rows(self, rows: Sequence[Sequence[Any]]) -> None: ...


class ReadOnlyDatabase:
    """A database opened read-only; ``store`` reads it like the server does."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self.store = SqlStore(engine)

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

    async def query(self, sql: str, sink: RowSink) -> None:
        """Run one SQL statement and feed its result to ``sink``.

        ``WriteRefused`` when the database rejected a write; ``QueryError``
        for any other error the database reports (syntax, unknown table, ...).
        A statement that returns no rows gives an empty column list.
        """
        try:
            async with self._engine.connect() as connection:
                await connection.run_sync(_stream, sql, sink)
        except Exception as exc:
            error = _database_error(exc)
            if error is None:
                raise
            raise error from None

    async def close(self) -> None:
        await self.store.close()


def _stream(connection: Connection, sql: str, sink: RowSink) -> None:
    result = connection.exec_driver_sql(sql, execution_options={"stream_results": True})
    if not result.returns_rows:
        sink.columns([])
        return
    sink.columns(list(result.keys()))
    for chunk in result.partitions(CHUNK_ROWS):
        sink.rows(chunk)


def _database_error(exc: Exception) -> StoreError | None:
    """What ``exc`` means for the user, or None when it is not the database's doing."""
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    # Errors met while fetching from a server-side cursor can arrive as the
    # driver's own exceptions, unwrapped: recognise those by their codes too.
    code = getattr(orig, "sqlite_errorcode", None)
    state = getattr(orig, "sqlstate", None)
    if isinstance(code, int) and code & 0xFF == _SQLITE_READONLY:
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
