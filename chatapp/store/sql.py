"""The SQLAlchemy implementation of ``Store``: SQLite (aiosqlite) or PostgreSQL (asyncpg).

One ``AsyncSession`` per unit of work. Appends take a batch so that the
writer can commit many messages with one transaction (group commit).
"""

from __future__ import annotations

import functools
from collections.abc import AsyncGenerator, Callable, Coroutine, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import Row, delete, event, func, select, text
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from chatapp.errors import SchemaMismatch, StoreError, UnknownRoom
from chatapp.limits import DEFAULT_DB_TIMEOUT, MAX_SEQ
from chatapp.model import (
    Appended,
    NewMessage,
    Page,
    RoomActivity,
    SearchHit,
    StoredMessage,
    User,
)
from chatapp.store import files, locks, migrate, readonly, writable
from chatapp.store.schema import MESSAGE_COLUMNS, MessageRow, RoomRow, SecretRow
from chatapp.store.search import count_statement
from chatapp.store.search import statement as search_statement
from chatapp.store.search import words as search_words
from chatapp.store.writes import (
    Conflict,
    PoolTransactions,
    ThreadTransactions,
    Transactions,
    as_store_error,
    statements_for,
    write_batch,
)

#: Most values in one ``IN (...)`` list (SQLite allows 32766 parameters, PostgreSQL 65535).
_IN_CHUNK = 500

P = ParamSpec("P")
R = TypeVar("R")
#: Times the write of one batch is tried when other writers keep storing its client_ids.
CONFLICT_ROUNDS = 3
#: Seconds one write attempt waits for SQLite's lock (longer waits are retries).
WRITER_LOCK_WAIT = 0.25
#: Connections of the writer's own pool on PostgreSQL (one batch at a time, one spare).
WRITER_POOL_SIZE = 2


def _aware(moment: datetime) -> datetime:
    # SQLite keeps no offset; every stored time is UTC
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _message(row: Row[Any] | Any) -> StoredMessage:
    return StoredMessage(
        id=row.id,
        room=row.room,
        seq=row.seq,
        user=User(id=row.user_id, name=row.user_name),
        text=row.text,
        created_at=_aware(row.created_at),
        client_id=row.client_id,
    )


#: What makes storing a message idempotent: its user and client_id, or, without a
#: client_id, its user, room and creation time.
_Key = tuple[str, str | None] | tuple[str, None, str, datetime]


def _key(message: NewMessage) -> _Key:
    if message.client_id is not None:
        return (message.user.id, message.client_id)
    return (message.user.id, None, message.room, message.created_at)


def _fresh(batch: Sequence[NewMessage], originals: dict[_Key, StoredMessage]) -> list[NewMessage]:
    """The messages of ``batch`` to store: not stored before, and not a repeat of an earlier
    one in the batch with the same ``client_id``."""
    taken = set(originals)
    fresh = []
    for message in batch:
        key = _key(message)
        if key not in taken:
            if message.client_id is not None:
                taken.add(key)
            fresh.append(message)
    return fresh


def _results(
    batch: Sequence[NewMessage],
    originals: dict[_Key, StoredMessage],
    stored: list[StoredMessage],
) -> list[Appended]:
    """Each message's outcome, in batch order: stored now, or the original it repeats."""
    known = dict(originals)
    fresh = iter(stored)
    results = []
    for message in batch:
        key = _key(message)
        if key in known:
            results.append(Appended(known[key], duplicate=True))
            continue
        appended = next(fresh)
        results.append(Appended(appended, duplicate=False))
        if message.client_id is not None:
            known[key] = appended
    return results


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
        raise StoreError(f"bad database URL {shown!r}: {_first_line(exc)}") from None
    if read_only:
        readonly.install(engine.sync_engine)
    elif engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", sqlite_pragmas(timeout))
    return engine


def _prepare_sqlite_file(engine: AsyncEngine) -> None:
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


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


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
    engine, _ = await _prepared(url, _require_current, timeout=timeout)
    store = SqlStore(engine, _writer_transactions(engine, url, timeout))
    try:
        await store.writable()
    except StoreError:
        await store.close()
        raise
    return store


async def upgrade_schema(url: str) -> migrate.Revision:
    """Bring the database at ``url`` to the newest schema; returns where it stood before."""
    engine, before = await _prepared(url, migrate.upgrade, timeout=migrate.MIGRATION_TIMEOUT)
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
        _prepare_sqlite_file(engine)
    try:
        return engine, await prepare(engine)
    except (SQLAlchemyError, OSError) as exc:
        await engine.dispose()
        shown = engine.url.render_as_string(hide_password=True)
        raise StoreError(f"cannot open database {shown!r}: {_first_line(exc)}") from None
    except BaseException:
        await engine.dispose()
        raise


def _writer_transactions(engine: AsyncEngine, url: str, timeout: float) -> Transactions:
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


def _answers(method: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """Database failures leave a store method as ``StoreError`` (callers answer 503 or
    ``unavailable``, without a traceback); faults of the data pass as they are."""

    @functools.wraps(method)
    async def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await method(*args, **kwargs)
        except DBAPIError as exc:
            raise as_store_error(exc) from None
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            raise StoreError(f"the database did not answer: {_first_line(exc)}") from None

    return guarded


class SqlStore:
    """``Store`` over any SQLAlchemy async engine whose dialect supports RETURNING."""

    def __init__(self, engine: AsyncEngine, writes: Transactions | None = None) -> None:
        self._engine = engine
        self._file = files.sqlite_file(engine.url)
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._writes = writes or PoolTransactions(engine)
        self._sql = statements_for(engine.dialect.name)
        self._known_rooms: set[str] = set()

    @property
    def description(self) -> str:
        """The database URL without its password, for logs."""
        return self._engine.url.render_as_string(hide_password=True)

    @_answers
    async def append(self, batch: Sequence[NewMessage], retry: bool = False) -> list[Appended]:
        originals = await self._stored_already(batch) if retry else {}
        for _ in range(CONFLICT_ROUNDS):
            fresh = _fresh(batch, originals)
            new_rooms = sorted({m.room for m in fresh} - self._known_rooms)
            try:
                stored = await self._writes.run(
                    partial(write_batch, sql=self._sql, fresh=fresh, new_rooms=new_rooms)
                )
            except Conflict as conflict:  # client_ids stored before: look them up, try again
                originals.update(await self._by_client_ids(conflict.keys))
                continue
            self._known_rooms.update(new_rooms)
            return _results(batch, originals, stored)
        raise StoreError("messages with the same client_ids kept arriving from elsewhere")

    async def _stored_already(self, batch: Sequence[NewMessage]) -> dict[_Key, StoredMessage]:
        """On a retry: what an earlier attempt stored, by ``client_id``, or without one by
        user, room and ``created_at`` (the server sets it to the microsecond)."""
        keyed = [(m.user.id, m.client_id) for m in batch if m.client_id is not None]
        found = await self._by_client_ids(keyed) if keyed else {}
        async with self._sessions() as session:
            for message in (m for m in batch if m.client_id is None):
                row = (
                    await session.execute(
                        select(*MESSAGE_COLUMNS).where(
                            MessageRow.user_id == message.user.id,
                            MessageRow.created_at == message.created_at.astimezone(UTC),
                            MessageRow.room == message.room,
                        )
                    )
                ).first()
                if row is not None:
                    found[_key(message)] = _message(row)
        return found

    async def _by_client_ids(self, keys: list[tuple[str, str]]) -> dict[_Key, StoredMessage]:
        """The stored messages with these ``(user_id, client_id)`` pairs, one indexed lookup."""
        async with self._sessions() as session:
            rows = await session.execute(self._sql.find_keys, self._sql.keys_params(keys))
            return {(row.user_id, row.client_id): _message(row) for row in rows}

    @_answers
    async def latest(self, room: str, limit: int) -> Page:
        return await self._page(room, None, limit)

    @_answers
    async def before(self, room: str, before: int, limit: int) -> Page:
        return await self._page(room, before, limit)

    async def _page(self, room: str, before: int | None, limit: int) -> Page:
        query = select(*MESSAGE_COLUMNS).where(MessageRow.room == room)
        if before is not None and before <= MAX_SEQ:  # beyond every seq: the newest page
            query = query.where(MessageRow.seq < before)
        query = query.order_by(MessageRow.seq.desc()).limit(limit + 1)
        async with self._sessions() as session:
            rows = (await session.execute(query)).all()
            newest_first = [_message(r) for r in rows[:limit]]
            has_more = len(rows) > limit
            oldest = newest_first[-1].seq if newest_first else None
            pruned = None if has_more else await self._pruned_before(session, room, oldest, before)
        return Page(messages=newest_first[::-1], has_more=has_more, pruned_before=pruned)

    async def _pruned_before(
        self, session: AsyncSession, room: str, oldest: int | None, before: int | None
    ) -> int | None:
        """The oldest seq still stored, when nothing is stored below ``oldest`` (or ``before``)
        but something once was; None when nothing was deleted there.

        Seq is gapless, so a page that reaches the bottom of the room without
        reaching seq 1 proves older messages were deleted.
        """
        if oldest is not None:
            return oldest if oldest > 1 else None
        if before is not None and before <= 1:
            return None
        lowest = select(func.min(MessageRow.seq)).where(MessageRow.room == room)
        row = (
            await session.execute(
                select(RoomRow.last_seq, lowest.scalar_subquery()).where(RoomRow.name == room)
            )
        ).first()
        if row is None or row[0] == 0:
            return None
        return int(row[1]) if row[1] is not None else row[0] + 1

    @_answers
    async def after(self, room: str, since: int, limit: int) -> list[StoredMessage]:
        if since >= MAX_SEQ:
            return []  # no seq can follow (and the column could not hold the bound)
        query = (
            select(*MESSAGE_COLUMNS)
            .where(MessageRow.room == room, MessageRow.seq > since)
            .order_by(MessageRow.seq)
            .limit(limit)
        )
        async with self._sessions() as session:
            return [_message(r) for r in (await session.execute(query)).all()]

    @_answers
    async def search(self, query: str, rooms: Sequence[str] | None, limit: int) -> list[SearchHit]:
        found = search_words(query)
        if not found or limit < 1 or (rooms is not None and not rooms):
            return []
        statement = search_statement(
            self._engine.dialect.name, found, MESSAGE_COLUMNS, rooms, limit
        )
        async with self._sessions() as session:
            rows = (await session.execute(statement)).all()
        return [SearchHit(_message(row), float(row.score)) for row in rows]

    @_answers
    async def head(self, room: str) -> int:
        async with self._sessions() as session:
            last = await session.scalar(select(RoomRow.last_seq).where(RoomRow.name == room))
        return last or 0

    @_answers
    async def heads(self, rooms: Sequence[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        async with self._sessions() as session:
            for start in range(0, len(rooms), _IN_CHUNK):
                chunk = rooms[start : start + _IN_CHUNK]
                query = select(RoomRow.name, RoomRow.last_seq).where(RoomRow.name.in_(chunk))
                found.update({name: last for name, last in await session.execute(query)})
        return found

    @_answers
    async def count_matches(self, query: str, rooms: Sequence[str] | None, up_to: int) -> int:
        found = search_words(query)
        if not found or up_to < 1 or (rooms is not None and not rooms):
            return 0
        statement = count_statement(self._engine.dialect.name, found, rooms, up_to)
        async with self._sessions() as session:
            return int(await session.scalar(statement) or 0)

    @_answers
    async def room_names(self) -> list[str]:
        async with self._sessions() as session:
            return list(await session.scalars(select(RoomRow.name).order_by(RoomRow.name)))

    @_answers
    async def room_activity(self) -> list[RoomActivity]:
        # the newest message is found through UNIQUE (room, seq): one index lookup per room
        newest = (
            select(MessageRow.created_at)
            .where(MessageRow.room == RoomRow.name, MessageRow.seq == RoomRow.last_seq)
            .correlate(RoomRow)
            .scalar_subquery()
        )
        query = select(RoomRow.name, RoomRow.last_seq, newest.label("newest")).order_by(
            newest.desc().nulls_last(), RoomRow.name
        )
        async with self._sessions() as session:
            rows = (await session.execute(query)).all()
        return [
            RoomActivity(row.name, row.last_seq, _aware(row.newest) if row.newest else None)
            for row in rows
        ]

    @_answers
    async def prune(self, room: str, older_than: datetime, limit: int) -> int:
        oldest = (
            select(MessageRow.seq, MessageRow.created_at)
            .where(MessageRow.room == room)
            .order_by(MessageRow.seq)
            .limit(limit)
        )
        async with self._sessions.begin() as session:
            doomed: list[int] = []
            for seq, created_at in await session.execute(oldest):
                if _aware(created_at) >= older_than:
                    break  # keep it, and so everything after it
                doomed.append(seq)
            if doomed:
                await session.execute(
                    delete(MessageRow).where(MessageRow.room == room, MessageRow.seq <= doomed[-1])
                )
        return len(doomed)

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
                    yield _message(row)
        except (SQLAlchemyError, OSError) as exc:
            raise StoreError(f"reading {self.description} failed: {_first_line(exc)}") from None

    async def ping(self) -> None:
        try:
            async with self._sessions() as session:
                await session.execute(text("SELECT 1"))
        except (SQLAlchemyError, OSError) as exc:
            raise StoreError(f"database did not answer: {exc}") from None

    async def writable(self) -> None:
        """Raise ``StoreError`` saying why, unless a write would succeed now (see ``writable``)."""
        if self._file is not None:
            writable.check_sqlite_files(self._file)
        try:
            async with self._engine.connect() as connection:
                await connection.run_sync(writable.probe)
        except (SQLAlchemyError, OSError) as exc:
            orig = getattr(exc, "orig", None) or exc  # the database's words, not SQLAlchemy's
            raise StoreError(f"the database refuses writes: {_first_line(orig)}") from None

    async def ready(self) -> None:
        await self.ping()
        revision = await migrate.revision(self._engine)
        if not revision.is_current:
            raise SchemaMismatch(revision.problem())
        await self.writable()

    @_answers
    async def shared_secret(self, name: str, proposed: str) -> str:
        # Whoever inserts first wins; everyone then reads the same row.
        insert = pg_insert if self._engine.dialect.name == "postgresql" else sqlite_insert
        async with self._sessions.begin() as session:
            await session.execute(
                insert(SecretRow)
                .values(name=name, value=proposed, created_at=datetime.now(UTC))
                .on_conflict_do_nothing(index_elements=[SecretRow.name])
            )
            stored = await session.scalar(select(SecretRow.value).where(SecretRow.name == name))
        assert stored is not None
        return stored

    def exclusive(self, name: str, ttl: float) -> AbstractAsyncContextManager[bool]:
        return locks.exclusive(self._engine, name, ttl)

    async def close(self) -> None:
        await self._writes.close()
        await self._engine.dispose()
