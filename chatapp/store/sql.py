"""The SQLAlchemy implementation of ``Store``: SQLite (aiosqlite) or PostgreSQL (asyncpg).

(Longer than most modules because it is one class implementing the whole
``Store`` protocol over one engine; opening a database is ``engine``, the
write path ``writes`` and ``transactions``.)

One ``AsyncSession`` per unit of work. Appends take a batch so that the
writer can commit many messages with one transaction (group commit).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from functools import partial
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import Row, delete, func, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
)

from chatapp.errors import SchemaMismatch, SearchUnsupported, StoreError
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
from chatapp.store import exclusive, files, migrate, writable
from chatapp.store.schema import MESSAGE_COLUMNS, MessageRow, RoomRow, SecretRow
from chatapp.store.search import count_statement
from chatapp.store.search import statement as search_statement
from chatapp.store.search import words as search_words
from chatapp.store.search_index import SearchIndex
from chatapp.store.transactions import PoolTransactions, Transactions, as_store_error, first_line
from chatapp.store.writes import (
    CONFLICT_ROUNDS,
    Conflict,
    Key,
    fresh_messages,
    key_of,
    results_of,
    statements_for,
    write_batch,
)

#: Most values in one ``IN (...)`` list (SQLite allows 32766 parameters, PostgreSQL 65535).
_IN_CHUNK = 500

P = ParamSpec("P")
R = TypeVar("R")


def _aware(moment: datetime) -> datetime:
    # SQLite keeps no offset; every stored time is UTC
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def message_of(row: Row[Any] | Any) -> StoredMessage:
    return StoredMessage(
        id=row.id,
        room=row.room,
        seq=row.seq,
        user=User(id=row.user_id, name=row.user_name),
        text=row.text,
        created_at=_aware(row.created_at),
        client_id=row.client_id,
    )


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
            raise StoreError(f"the database did not answer: {first_line(exc)}") from None

    return guarded


class SqlStore:
    """``Store`` over any SQLAlchemy async engine whose dialect supports RETURNING."""

    def __init__(
        self,
        engine: AsyncEngine,
        writes: Transactions | None = None,
        index: SearchIndex | None = None,
    ) -> None:
        self._engine = engine
        self._index = index
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
            fresh = fresh_messages(batch, originals)
            new_rooms = sorted({m.room for m in fresh} - self._known_rooms)
            try:
                stored = await self._writes.run(
                    partial(write_batch, sql=self._sql, fresh=fresh, new_rooms=new_rooms)
                )
            except Conflict as conflict:  # client_ids stored before: look them up, try again
                originals.update(await self._by_client_ids(conflict.keys))
                continue
            self._known_rooms.update(new_rooms)
            if self._index is not None:
                self._index.committed()
            return results_of(batch, originals, stored)
        raise StoreError("messages with the same client_ids kept arriving from elsewhere")

    async def _stored_already(self, batch: Sequence[NewMessage]) -> dict[Key, StoredMessage]:
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
                    found[key_of(message)] = message_of(row)
        return found

    async def _by_client_ids(self, keys: list[tuple[str, str]]) -> dict[Key, StoredMessage]:
        """The stored messages with these ``(user_id, client_id)`` pairs, one indexed lookup."""
        async with self._sessions() as session:
            rows = await session.execute(self._sql.find_keys, self._sql.keys_params(keys))
            return {(row.user_id, row.client_id): message_of(row) for row in rows}

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
            newest_first = [message_of(r) for r in rows[:limit]]
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
            return [message_of(r) for r in (await session.execute(query)).all()]

    @_answers
    async def search(self, query: str, rooms: Sequence[str] | None, limit: int) -> list[SearchHit]:
        found = search_words(query)
        if not found or limit < 1 or (rooms is not None and not rooms):
            return []
        await self._searchable()
        statement = search_statement(
            self._engine.dialect.name, found, MESSAGE_COLUMNS, rooms, limit
        )
        async with self._sessions() as session:
            rows = (await session.execute(statement)).all()
        return [SearchHit(message_of(row), float(row.score)) for row in rows]

    async def _searchable(self) -> None:
        """SQLite: the index holds every message committed before the search began."""
        if self._engine.dialect.name != "sqlite":
            return
        if self._index is None:
            raise SearchUnsupported("search needs an SQLite database file, not one in memory")
        await self._index.catch_up()

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
        await self._searchable()
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
                deleted = await session.execute(
                    delete(MessageRow)
                    .where(MessageRow.room == room, MessageRow.seq <= doomed[-1])
                    .returning(MessageRow.id)
                )
                ids = list(deleted.scalars())
        if doomed and self._index is not None:
            await self._index.forget(ids)
        return len(doomed)

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
            raise StoreError(f"the database refuses writes: {first_line(orig)}") from None

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
        return exclusive.exclusive(self._engine, name, ttl)

    async def close(self) -> None:
        await self._writes.close()
        if self._index is not None:
            await self._index.close()
        await self._engine.dispose()
