"""The SQLAlchemy implementation of ``Store``: SQLite (aiosqlite) or PostgreSQL (asyncpg).

One ``AsyncSession`` per unit of work. Appends take a batch so that the
writer can commit many messages with one transaction (group commit).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncGenerator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Row, delete, event, func, insert, select, text, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from chatapp.errors import SchemaMismatch, StoreError, UnknownRoom
from chatapp.limits import MAX_SEQ
from chatapp.model import (
    Appended,
    NewMessage,
    Page,
    RoomActivity,
    SearchHit,
    StoredMessage,
    User,
)
from chatapp.store import migrate, readonly
from chatapp.store.schema import MessageRow, RoomRow
from chatapp.store.search import count_statement
from chatapp.store.search import statement as search_statement
from chatapp.store.search import words as search_words

#: Most values in one ``IN (...)`` list (SQLite allows 32766 parameters, PostgreSQL 65535).
_IN_CHUNK = 500

_MESSAGE_COLUMNS = (
    MessageRow.id,
    MessageRow.room,
    MessageRow.seq,
    MessageRow.user_id,
    MessageRow.user_name,
    MessageRow.text,
    MessageRow.created_at,
    MessageRow.client_id,
)


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


def _set_sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers run beside the writer; FULL syncs every commit, so an
    # acknowledged message survives even a power loss (group commit pays for it).
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def create_engine(url: str, *, read_only: bool = False) -> AsyncEngine:
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
    try:
        engine = create_async_engine(parsed, pool_pre_ping=parsed.get_backend_name() != "sqlite")
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
        event.listen(engine.sync_engine, "connect", _set_sqlite_pragmas)
    return engine


def _check_sqlite_path(engine: AsyncEngine) -> None:
    """Refuse an SQLite path that cannot be a database file before connecting to it.

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


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


async def open_store(url: str) -> SqlStore:
    """Connect, bring the schema up to date, and return a ready store."""
    engine = create_engine(url)
    _check_sqlite_path(engine)
    try:
        await migrate.upgrade(engine)
    except SchemaMismatch:
        await engine.dispose()
        raise
    except (SQLAlchemyError, OSError) as exc:
        await engine.dispose()
        shown = engine.url.render_as_string(hide_password=True)
        raise StoreError(f"cannot open database {shown!r}: {_first_line(exc)}") from None
    return SqlStore(engine)


class SqlStore:
    """``Store`` over any SQLAlchemy async engine whose dialect supports RETURNING."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._known_rooms: set[str] = set()
        dialect = engine.dialect.name
        self._insert_room = pg_insert if dialect == "postgresql" else sqlite_insert

    @property
    def description(self) -> str:
        """The database URL without its password, for logs."""
        return self._engine.url.render_as_string(hide_password=True)

    async def append(self, batch: Sequence[NewMessage], retry: bool = False) -> list[Appended]:
        async with self._sessions.begin() as session:
            originals = await self._originals(session, batch, retry)
            taken = set(originals)
            fresh: list[NewMessage] = []
            for message in batch:
                key = _key(message)
                if key not in taken:
                    if message.client_id is not None:  # a repeat later in the batch is one too
                        taken.add(key)
                    fresh.append(message)
            stored = iter(await self._insert(session, fresh))
        self._known_rooms.update(m.room for m in fresh)  # only once committed
        # Replay the same decisions, now that the fresh ones have ids and seqs.
        results: list[Appended] = []
        for message in batch:
            key = _key(message)
            if key in originals:
                results.append(Appended(originals[key], duplicate=True))
                continue
            appended = next(stored)
            results.append(Appended(appended, duplicate=False))
            if message.client_id is not None:
                originals[key] = appended
        return results

    async def _originals(
        self, session: AsyncSession, batch: Sequence[NewMessage], retry: bool
    ) -> dict[_Key, StoredMessage]:
        """Messages of ``batch`` stored already: by ``client_id``; and on a retry, those
        without one, by their user and ``created_at`` (the server sets it to the microsecond)."""
        found: dict[_Key, StoredMessage] = {}
        keys = {(m.user.id, m.client_id) for m in batch if m.client_id is not None}
        if keys:
            rows = await session.execute(
                select(*_MESSAGE_COLUMNS).where(
                    tuple_(MessageRow.user_id, MessageRow.client_id).in_(keys)
                )
            )
            found.update({(row.user_id, row.client_id): _message(row) for row in rows})
        for message in batch if retry else ():
            if message.client_id is None:
                row = (
                    await session.execute(
                        select(*_MESSAGE_COLUMNS).where(
                            MessageRow.user_id == message.user.id,
                            MessageRow.created_at == message.created_at.astimezone(UTC),
                            MessageRow.room == message.room,
                        )
                    )
                ).first()
                if row is not None:
                    found[_key(message)] = _message(row)
        return found

    async def _insert(self, session: AsyncSession, fresh: list[NewMessage]) -> list[StoredMessage]:
        if not fresh:
            return []
        counts = Counter(m.room for m in fresh)
        next_seq: dict[str, int] = {}
        for room, count in counts.items():
            await self._ensure_room(session, room)
            last = await session.scalar(
                update(RoomRow)
                .where(RoomRow.name == room)
                .values(last_seq=RoomRow.last_seq + count)
                .returning(RoomRow.last_seq)
            )
            assert last is not None
            next_seq[room] = last - count + 1
        seqs: list[int] = []
        for message in fresh:
            seqs.append(next_seq[message.room])
            next_seq[message.room] += 1
        rows = [
            {
                "room": message.room,
                "seq": seq,
                "user_id": message.user.id,
                "user_name": message.user.name,
                "text": message.text,
                # SQLite keeps no offset: store every instant as UTC
                "created_at": message.created_at.astimezone(UTC),
                "client_id": message.client_id,
            }
            for message, seq in zip(fresh, seqs, strict=True)
        ]
        ids = await session.scalars(
            insert(MessageRow).returning(MessageRow.id, sort_by_parameter_order=True), rows
        )
        return [
            StoredMessage(
                id=message_id,
                room=message.room,
                seq=seq,
                user=message.user,
                text=message.text,
                created_at=message.created_at.astimezone(UTC),
                client_id=message.client_id,
            )
            for message_id, seq, message in zip(ids, seqs, fresh, strict=True)
        ]

    async def _ensure_room(self, session: AsyncSession, room: str) -> None:
        if room in self._known_rooms:
            return
        await session.execute(
            self._insert_room(RoomRow)
            .values(name=room, last_seq=0, created_at=datetime.now(UTC))
            .on_conflict_do_nothing(index_elements=[RoomRow.name])
        )

    async def latest(self, room: str, limit: int) -> Page:
        return await self._page(room, None, limit)

    async def before(self, room: str, before: int, limit: int) -> Page:
        return await self._page(room, before, limit)

    async def _page(self, room: str, before: int | None, limit: int) -> Page:
        query = select(*_MESSAGE_COLUMNS).where(MessageRow.room == room)
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

    async def after(self, room: str, since: int, limit: int) -> list[StoredMessage]:
        if since >= MAX_SEQ:
            return []  # no seq can follow (and the column could not hold the bound)
        query = (
            select(*_MESSAGE_COLUMNS)
            .where(MessageRow.room == room, MessageRow.seq > since)
            .order_by(MessageRow.seq)
            .limit(limit)
        )
        async with self._sessions() as session:
            return [_message(r) for r in (await session.execute(query)).all()]

    async def search(self, query: str, rooms: Sequence[str] | None, limit: int) -> list[SearchHit]:
        found = search_words(query)
        if not found or limit < 1 or (rooms is not None and not rooms):
            return []
        statement = search_statement(
            self._engine.dialect.name, found, _MESSAGE_COLUMNS, rooms, limit
        )
        async with self._sessions() as session:
            rows = (await session.execute(statement)).all()
        return [SearchHit(_message(row), float(row.score)) for row in rows]

    async def head(self, room: str) -> int:
        async with self._sessions() as session:
            last = await session.scalar(select(RoomRow.last_seq).where(RoomRow.name == room))
        return last or 0

    async def heads(self, rooms: Sequence[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        async with self._sessions() as session:
            for start in range(0, len(rooms), _IN_CHUNK):
                chunk = rooms[start : start + _IN_CHUNK]
                query = select(RoomRow.name, RoomRow.last_seq).where(RoomRow.name.in_(chunk))
                found.update({name: last for name, last in await session.execute(query)})
        return found

    async def count_matches(self, query: str, rooms: Sequence[str] | None, up_to: int) -> int:
        found = search_words(query)
        if not found or up_to < 1 or (rooms is not None and not rooms):
            return 0
        statement = count_statement(self._engine.dialect.name, found, rooms, up_to)
        async with self._sessions() as session:
            return int(await session.scalar(statement) or 0)

    async def room_names(self) -> list[str]:
        async with self._sessions() as session:
            return list(await session.scalars(select(RoomRow.name).order_by(RoomRow.name)))

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
        query = select(*_MESSAGE_COLUMNS).where(MessageRow.room == room)
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

    async def ready(self) -> None:
        await self.ping()
        if not await migrate.is_current(self._engine):
            raise SchemaMismatch("the database schema is not at the newest migration")

    async def close(self) -> None:
        await self._engine.dispose()
