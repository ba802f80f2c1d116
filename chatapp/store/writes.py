"""Storing a batch of messages: one transaction of a few statements, whatever its size.

Every statement has one fixed text per dialect, so nothing is compiled per
batch size and no ``IN (VALUES ...)`` list can defeat an index. The common
case costs a handful of statements and a commit: reserve each room's seqs,
insert the messages (a ``client_id`` stored before makes the insert skip
that row), learn their ids, commit. A skipped row rolls the whole
transaction back (``Conflict``); it is tried again knowing the originals, so
seqs stay gapless.

How the rows go in differs by dialect, each the cheapest measured there:
PostgreSQL takes the batch as arrays in one ``INSERT ... SELECT unnest(...)
RETURNING``. SQLite runs a one-row ``INSERT`` once per message
(``executemany``): an ``INSERT ... SELECT`` over the whole batch (from
``json_each``, or a multi-row ``VALUES``) cost it 40 % more CPU per message
(25 against 18 µs on a million-message table, batches of 150), as its rows
pass through a temporary table first. That statement returns no ids; the
transaction holds SQLite's write lock from the seq reservation on, so the ids
above the highest one before the insert are this batch's, read back by the
primary key.

The batch runs on a connection of its own (``chatapp.store.transactions``).
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, TextClause, TextualSelect, bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.exc import DBAPIError
from sqlalchemy.types import DateTime, Integer, String

from chatapp.model import Appended, NewMessage, StoredMessage
from chatapp.store.schema import MESSAGE_COLUMNS


class Conflict(Exception):
    """Some messages' ``(user_id, client_id)`` were stored before; the batch was rolled back."""

    def __init__(self, keys: list[tuple[str, str]]) -> None:
        super().__init__(f"{len(keys)} client_ids already stored")
        self.keys = keys


#: Moves each room's ``last_seq`` on by its count in the open transaction; the new values.
Reserver = Callable[[Connection, Counter[str]], dict[str, int]]
#: Inserts a batch's rows (message and seq) in the open transaction; the id of each row
#: stored, by ``(room, seq)``. A row whose ``client_id`` was stored before is skipped.
Inserter = Callable[[Connection, Sequence[NewMessage], Sequence[int]], dict[tuple[str, int], int]]


@dataclass(frozen=True, slots=True)
class Statements:
    """The write path's SQL in one dialect, and how each statement takes a whole batch."""

    ensure_rooms: TextClause
    lock_rooms: TextClause | None  # taken in name order, so concurrent batches never deadlock
    reserve: Reserver
    insert: Inserter
    find_keys: TextualSelect
    rooms_param: Callable[[list[str]], Any]
    keys_params: Callable[[Sequence[tuple[str, str]]], dict[str, Any]]


def _sqlite_time(moment: datetime) -> str:
    """How SQLAlchemy stores a DateTime in SQLite (UTC, no offset), so both read back alike."""
    utc = moment if moment.tzinfo is UTC else moment.astimezone(UTC)
    return utc.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


_SQLITE_RESERVE = (
    "UPDATE rooms SET last_seq = rooms.last_seq + wanted.n "
    "FROM (SELECT value->>0 AS name, value->>1 AS n FROM json_each(?)) AS wanted "
    "WHERE rooms.name = wanted.name RETURNING rooms.name, rooms.last_seq"
)
_SQLITE_INSERT = (
    "INSERT INTO messages (room, seq, user_id, user_name, text, created_at, client_id) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (user_id, client_id) DO NOTHING"
)


@contextlib.contextmanager
def _driver_cursor(conn: Connection) -> Iterator[Any]:
    """The driver's own cursor, in the transaction ``conn`` has open.

    SQLite's statements run on it without SQLAlchemy's execution machinery,
    which cost more than SQLite itself for a small batch (a one-message commit:
    260 against 135 µs of CPU). The driver's errors become SQLAlchemy's, as
    ``conn.execute`` would raise them, so a locked database is still told
    apart from a bad row.
    """
    dbapi_error = conn.dialect.loaded_dbapi.Error
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        yield cursor
    except dbapi_error as exc:
        raise DBAPIError.instance(None, None, exc, dbapi_error, dialect=conn.dialect) from exc
    finally:
        cursor.close()


def _sqlite_reserve(conn: Connection, counts: Counter[str]) -> dict[str, int]:
    with _driver_cursor(conn) as cursor:
        cursor.execute(_SQLITE_RESERVE, (json.dumps(list(counts.items()), ensure_ascii=False),))
        return dict(cursor.fetchall())


def _sqlite_insert(
    conn: Connection, batch: Sequence[NewMessage], seqs: Sequence[int]
) -> dict[tuple[str, int], int]:
    """One ``INSERT`` per row, then the ids read back (see the module's doc for why)."""
    if not batch:
        return {}
    rows = [
        (m.room, seq, m.user.id, m.user.name, m.text, _sqlite_time(m.created_at), m.client_id)
        for m, seq in zip(batch, seqs, strict=True)
    ]
    with _driver_cursor(conn) as cursor:
        cursor.execute("SELECT coalesce(max(id), 0) FROM messages")
        (highest,) = cursor.fetchone()
        cursor.executemany(_SQLITE_INSERT, rows)
        cursor.execute("SELECT id, room, seq FROM messages WHERE id > ?", (highest,))
        return {(room, seq): row_id for row_id, room, seq in cursor.fetchall()}


SQLITE = Statements(
    ensure_rooms=text(
        "INSERT INTO rooms (name, last_seq, created_at) "
        "SELECT value, 0, :now FROM json_each(:names) WHERE true "
        "ON CONFLICT (name) DO NOTHING"
    ),
    lock_rooms=None,  # SQLite has one writer at a time: the transaction is the lock
    reserve=_sqlite_reserve,
    insert=_sqlite_insert,
    find_keys=text(
        "SELECT id, room, seq, user_id, user_name, text, created_at, client_id FROM messages "
        "WHERE (user_id, client_id) IN (SELECT value->>0, value->>1 FROM json_each(:keys))"
    ).columns(*MESSAGE_COLUMNS),
    rooms_param=json.dumps,
    keys_params=lambda keys: {"keys": json.dumps(keys, ensure_ascii=False)},
)

_TEXTS = ARRAY(String())
_INTS = ARRAY(Integer())
_PG_INSERT = text(
    "INSERT INTO messages (room, seq, user_id, user_name, text, created_at, client_id) "
    "SELECT * FROM unnest(:rooms, :seqs, :user_ids, :user_names, :texts, :times, :client_ids) "
    "ON CONFLICT (user_id, client_id) DO NOTHING RETURNING id, room, seq"
).bindparams(
    *(bindparam(n, type_=_TEXTS) for n in ("rooms", "user_ids", "user_names", "texts")),
    bindparam("seqs", type_=_INTS),
    bindparam("times", type_=ARRAY(DateTime(timezone=True))),
    bindparam("client_ids", type_=_TEXTS),
)


_PG_RESERVE = text(
    "UPDATE rooms SET last_seq = rooms.last_seq + wanted.n "
    "FROM unnest(:names, :counts) AS wanted(name, n) "
    "WHERE rooms.name = wanted.name RETURNING rooms.name, rooms.last_seq"
).bindparams(bindparam("names", type_=_TEXTS), bindparam("counts", type_=_INTS))


def _postgresql_reserve(conn: Connection, counts: Counter[str]) -> dict[str, int]:
    params = {"names": list(counts), "counts": list(counts.values())}
    return {name: int(last) for name, last in conn.execute(_PG_RESERVE, params)}


def _postgresql_insert(
    conn: Connection, batch: Sequence[NewMessage], seqs: Sequence[int]
) -> dict[tuple[str, int], int]:
    """The whole batch as arrays in one statement, which returns the ids."""
    params = {
        "rooms": [m.room for m in batch],
        "seqs": list(seqs),
        "user_ids": [m.user.id for m in batch],
        "user_names": [m.user.name for m in batch],
        "texts": [m.text for m in batch],
        "times": [m.created_at for m in batch],
        "client_ids": [m.client_id for m in batch],
    }
    return {(room, int(seq)): int(row_id) for row_id, room, seq in conn.execute(_PG_INSERT, params)}


POSTGRESQL = Statements(
    ensure_rooms=text(
        "INSERT INTO rooms (name, last_seq, created_at) SELECT unnest(:names), 0, :now "
        "ON CONFLICT (name) DO NOTHING"
    ).bindparams(bindparam("names", type_=_TEXTS)),
    lock_rooms=text(
        "SELECT name FROM rooms WHERE name = ANY(:names) ORDER BY name FOR UPDATE"
    ).bindparams(bindparam("names", type_=_TEXTS)),
    reserve=_postgresql_reserve,
    insert=_postgresql_insert,
    find_keys=text(
        "SELECT id, room, seq, user_id, user_name, text, created_at, client_id FROM messages "
        "WHERE (user_id, client_id) IN (SELECT * FROM unnest(:user_ids, :client_ids))"
    )
    .bindparams(bindparam("user_ids", type_=_TEXTS), bindparam("client_ids", type_=_TEXTS))
    .columns(*MESSAGE_COLUMNS),
    rooms_param=list,
    keys_params=lambda keys: {
        "user_ids": [user for user, _ in keys],
        "client_ids": [client_id for _, client_id in keys],
    },
)


def statements_for(dialect: str) -> Statements:
    return POSTGRESQL if dialect == "postgresql" else SQLITE


def write_batch(
    conn: Connection, sql: Statements, fresh: Sequence[NewMessage], new_rooms: list[str]
) -> list[StoredMessage]:
    """Store ``fresh`` in the transaction open on ``conn``; the stored messages, in order.

    Raises ``Conflict`` (the caller rolls back) if some client_ids were stored before.
    """
    if new_rooms:
        conn.execute(sql.ensure_rooms, {"names": sql.rooms_param(new_rooms), "now": _now()})
    counts = Counter(m.room for m in fresh)
    if sql.lock_rooms is not None and len(counts) > 1:
        conn.execute(sql.lock_rooms, {"names": sorted(counts)})
    last = sql.reserve(conn, counts)
    following = {room: last[room] - count + 1 for room, count in counts.items()}
    seqs = []
    for message in fresh:
        seqs.append(following[message.room])
        following[message.room] += 1
    ids = sql.insert(conn, fresh, seqs)
    if len(ids) < len(fresh):
        raise Conflict(
            [
                (m.user.id, m.client_id)
                for m, seq in zip(fresh, seqs, strict=True)
                if (m.room, seq) not in ids and m.client_id is not None
            ]
        )
    return [
        StoredMessage(
            id=ids[(m.room, seq)],
            room=m.room,
            seq=seq,
            user=m.user,
            text=m.text,
            created_at=m.created_at.astimezone(UTC),
            client_id=m.client_id,
        )
        for m, seq in zip(fresh, seqs, strict=True)
    ]


def _now() -> datetime:
    return datetime.now(UTC)


#: Times the write of one batch is tried when other writers keep storing its client_ids.
CONFLICT_ROUNDS = 3


#: What makes storing a message idempotent: its user and client_id, or, without a
#: client_id, its user, room and creation time.
Key = tuple[str, str | None] | tuple[str, None, str, datetime]


def key_of(message: NewMessage) -> Key:
    if message.client_id is not None:
        return (message.user.id, message.client_id)
    return (message.user.id, None, message.room, message.created_at)


def fresh_messages(
    batch: Sequence[NewMessage], originals: dict[Key, StoredMessage]
) -> list[NewMessage]:
    """The messages of ``batch`` to store: not stored before, and not a repeat of an earlier
    one in the batch with the same ``client_id``."""
    taken = set(originals)
    fresh = []
    for message in batch:
        key = key_of(message)
        if key not in taken:
            if message.client_id is not None:
                taken.add(key)
            fresh.append(message)
    return fresh


def results_of(
    batch: Sequence[NewMessage],
    originals: dict[Key, StoredMessage],
    stored: list[StoredMessage],
) -> list[Appended]:
    """Each message's outcome, in batch order: stored now, or the original it repeats."""
    known = dict(originals)
    fresh = iter(stored)
    results = []
    for message in batch:
        key = key_of(message)
        if key in known:
            results.append(Appended(known[key], duplicate=True))
            continue
        appended = next(fresh)
        results.append(Appended(appended, duplicate=False))
        if message.client_id is not None:
            known[key] = appended
    return results
