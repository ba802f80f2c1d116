"""SqlStore behaviour, run against SQLite and PostgreSQL alike.

Every test gets a fresh database: a temporary SQLite file, or a PostgreSQL
database with a unique name created on the server at 127.0.0.1:5432 (trust
auth) and dropped afterwards.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from conftest import PG_HOST, PG_PORT, PG_USER
from factories import ALICE, BOB, T0, TICK, dialect_of, fill, new, seqs
from revisions import head_revision, migrate_to, revisions, stored_revision
from sqlalchemy import event, insert, inspect, text
from sqlalchemy.exc import IntegrityError

from chatapp.errors import StoreError
from chatapp.model import NewMessage, StoredMessage, User
from chatapp.store.engine import create_engine, open_store
from chatapp.store.schema import Base, MessageRow, RoomRow, include_name
from chatapp.store.sql import SqlStore
from chatapp.store.writes import statements_for

# --- the write path -----------------------------------------------------------


async def test_a_batch_with_a_client_id_stored_before_stays_gapless(store):
    """A resent client_id in the middle of a batch is answered with its original; the other
    messages get consecutive seqs, none lost to the skipped row."""
    await store.append([new("first", client_id="k1")])
    results = await store.append([new("a"), new("again", client_id="k1"), new("b", client_id="k2")])
    assert [(r.message.text, r.message.seq, r.duplicate) for r in results] == [
        ("a", 2, False),
        ("first", 1, True),
        ("b", 3, False),
    ]
    assert seqs((await store.latest("general", 10)).messages) == [1, 2, 3]


#: How often a batch SQLite refused as locked is sent before the test gives up.
LOCKED_ATTEMPTS = 20


async def test_concurrent_batches_over_the_same_rooms_in_opposite_orders_all_commit(db_url):
    """Two writers (as two processes would be) appending to the same rooms in opposite orders
    never deadlock; every room's seqs stay gapless, and each message is told the id it was
    stored under (SQLite reads the ids back after the insert: the other writer's never mix in).

    SQLite runs one writer at a time and the other waits for the lock only briefly, so there
    a batch refused with StoreError is sent again, as the server's writer does; PostgreSQL
    must commit every batch the first time."""
    first, second = await open_store(db_url), await open_store(db_url)
    patient = dialect_of(db_url) == "sqlite"
    told: list[StoredMessage] = []
    try:

        async def write(store: SqlStore, rooms: list[str]) -> None:
            for i in range(20):
                batch = [new(f"{room}{i}", room=room) for room in rooms for _ in range(3)]
                for attempt in range(LOCKED_ATTEMPTS):
                    try:
                        told.extend(r.message for r in await store.append(batch, retry=attempt > 0))
                        break
                    except StoreError:
                        if not patient or attempt == LOCKED_ATTEMPTS - 1:
                            raise
                        await asyncio.sleep(TICK)

        await asyncio.gather(write(first, ["a", "b", "c"]), write(second, ["c", "b", "a"]))
        stored = {}
        for room in ("a", "b", "c"):
            messages = await first.after(room, 0, 500)
            assert seqs(messages) == list(range(1, 121))
            stored.update({(m.room, m.seq): m for m in messages})
        assert sorted(told, key=lambda m: m.id) == sorted(stored.values(), key=lambda m: m.id)
        assert all(stored[(m.room, m.seq)] == m for m in told)
    finally:
        await first.close()
        await second.close()


async def test_looking_up_stored_client_ids_uses_the_unique_index(store, db_url):
    """On a large table, finding a batch's stored client_ids is an index search, not a scan
    (the plan is checked, as docs/sql.md's examples are)."""
    for start in range(0, 20_000, 1000):
        await store.append(
            [
                new("x", client_id=f"k{i}", user=User(f"u{i % 50}", "U"))
                for i in range(start, start + 1000)
            ]
        )
    statement = statements_for(dialect_of(db_url)).find_keys
    params = statements_for(dialect_of(db_url)).keys_params([("u3", "k3"), ("u7", "k57")])
    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            if dialect_of(db_url) == "sqlite":
                explain = text("EXPLAIN QUERY PLAN " + statement.element.text)
                plan = "\n".join(r[3] for r in await conn.execute(explain, params))
                assert re.search(
                    r"SEARCH messages USING INDEX \w+ \(user_id=\? AND client_id=\?\)", plan
                ), plan
            else:
                await conn.execute(text("ANALYZE messages"))
                explain = text("EXPLAIN " + statement.element.text).bindparams(
                    *statement.element._bindparams.values()
                )
                plan = "\n".join(r[0] for r in await conn.execute(explain, params))
                assert (
                    "uq_messages_user_id_client_id" in plan and "Seq Scan on messages" not in plan
                ), plan
            found = (await conn.execute(statement, params)).all()
    finally:
        await engine.dispose()
    assert sorted((r.user_id, r.client_id) for r in found) == [("u3", "k3"), ("u7", "k57")]


# --- sequence numbers -------------------------------------------------------


async def test_first_message_of_a_room_gets_seq_1(store):
    """A room's first stored message has seq 1."""
    [result] = await store.append([new("first", room="lobby")])
    assert result.message.seq == 1
    assert result.duplicate is False


async def test_seq_is_gapless_per_room_across_batches_and_rooms(store):
    """Interleaved batches over two rooms give each room its own 1, 2, 3, ... sequence."""
    await store.append([new(room="a"), new(room="b"), new(room="a")])
    await store.append([new(room="b")])
    await store.append([new(room="a"), new(room="a"), new(room="b"), new(room="c")])
    assert seqs((await store.latest("a", 50)).messages) == [1, 2, 3, 4]
    assert seqs((await store.latest("b", 50)).messages) == [1, 2, 3]
    assert seqs((await store.latest("c", 50)).messages) == [1]


async def test_batch_is_stored_in_order_and_results_match_input(store):
    """Results follow the input order, and the room reads back in that same order."""
    batch = [new(f"n{i}", user=ALICE if i % 2 else BOB) for i in range(10)]
    results = await store.append(batch)
    assert [r.message.text for r in results] == [m.text for m in batch]
    assert seqs([r.message for r in results]) == list(range(1, 11))
    stored = (await store.latest("general", 50)).messages
    assert [m.text for m in stored] == [m.text for m in batch]
    assert [m.user for m in stored] == [m.user for m in batch]


async def test_ids_are_unique_and_increase_in_commit_order(store):
    """Message ids are distinct and grow with commit order, across rooms and batches."""
    first = await store.append([new(room="a"), new(room="b")])
    second = await store.append([new(room="a")])
    ids = [r.message.id for r in first + second]
    assert ids == sorted(ids)
    assert len(set(ids)) == 3


async def test_appended_message_reads_back_identically(store):
    """What append returns equals what a later read returns, field for field."""
    [result] = await store.append([new("exact", client_id="c1")])
    [read] = (await store.latest("general", 1)).messages
    assert read == result.message
    assert read.user == ALICE
    assert read.client_id == "c1"
    assert read.room == "general"


async def test_empty_batch_stores_nothing(store):
    """Appending an empty batch returns no results and stores nothing."""
    assert await store.append([]) == []
    assert (await store.latest("general", 10)).messages == []


async def test_failed_batch_stores_nothing_and_consumes_no_seq(store):
    """A batch that fails in the database is rolled back whole: no message, no seq used up."""
    broken = NewMessage(room="fresh", user=ALICE, text=None, client_id=None, created_at=T0)  # type: ignore[arg-type]
    with pytest.raises(IntegrityError):
        await store.append([new("ok", room="fresh"), broken])
    assert (await store.latest("fresh", 10)).messages == []
    [result] = await store.append([new("after", room="fresh")])
    assert result.message.seq == 1


# --- idempotency ----------------------------------------------------------------


async def test_resent_client_id_across_batches_returns_the_original_as_duplicate(store):
    """Resending a user's client_id later stores nothing and returns the original message."""
    [original] = await store.append([new("hello", client_id="c1")])
    [again] = await store.append([new("hello (retry)", client_id="c1")])
    assert again.duplicate is True
    assert again.message == original.message
    assert again.message.text == "hello"
    assert seqs((await store.latest("general", 10)).messages) == [1]


async def test_duplicate_does_not_consume_a_seq(store):
    """After a refused duplicate the next new message continues the sequence without a gap."""
    await store.append([new("a", client_id="c1")])
    results = await store.append([new("a", client_id="c1"), new("b")])
    assert [r.duplicate for r in results] == [True, False]
    assert results[1].message.seq == 2


async def test_same_client_id_twice_in_one_batch_is_stored_once(store):
    """Within one batch the second copy of a client_id is the first one, marked duplicate."""
    results = await store.append(
        [
            new("one", client_id="c1"),
            new("two"),
            new("one again", client_id="c1"),
            new("three"),
        ]
    )
    assert [r.duplicate for r in results] == [False, False, True, False]
    assert results[2].message == results[0].message
    assert seqs([r.message for r in results]) == [1, 2, 1, 3]
    stored = (await store.latest("general", 10)).messages
    assert [m.text for m in stored] == ["one", "two", "three"]


async def test_duplicate_in_batch_of_message_stored_earlier_returns_the_stored_original(store):
    """A batch repeating an earlier client_id twice yields the stored original both times."""
    [original] = await store.append([new("orig", client_id="c1")])
    results = await store.append([new("x", client_id="c1"), new("y", client_id="c1")])
    assert [r.duplicate for r in results] == [True, True]
    assert results[0].message == results[1].message == original.message


async def test_same_client_id_from_another_user_is_a_different_message(store):
    """client_id is scoped to the user: another user's equal client_id is stored anew."""
    [mine] = await store.append([new("from alice", user=ALICE, client_id="c1")])
    [theirs] = await store.append([new("from bob", user=BOB, client_id="c1")])
    assert theirs.duplicate is False
    assert theirs.message.id != mine.message.id
    assert theirs.message.seq == 2
    assert theirs.message.user == BOB


async def test_same_client_id_from_two_users_in_one_batch_stores_both(store):
    """Two users using the same client_id in one batch each get their own message."""
    results = await store.append(
        [new(user=ALICE, client_id="same"), new(user=BOB, client_id="same")]
    )
    assert [r.duplicate for r in results] == [False, False]
    assert seqs([r.message for r in results]) == [1, 2]


async def test_messages_without_client_id_are_never_deduplicated(store):
    """Identical messages without client_id are each stored."""
    results = await store.append([new("same"), new("same")])
    results += await store.append([new("same")])
    assert [r.duplicate for r in results] == [False, False, False]
    assert len((await store.latest("general", 10)).messages) == 3


async def test_client_id_is_deduplicated_across_rooms(store):
    """A user's client_id identifies one message: resent to another room, it is the original."""
    [original] = await store.append([new(room="a", client_id="c1")])
    [again] = await store.append([new(room="b", client_id="c1")])
    assert again.duplicate is True
    assert again.message == original.message
    assert (await store.latest("b", 10)).messages == []


# --- pages ---------------------------------------------------------------------


async def test_latest_returns_newest_messages_oldest_first_with_has_more(store):
    """latest(limit) gives the newest ``limit`` messages oldest first; has_more if older exist."""
    await fill(store, 5)
    page = await store.latest("general", 3)
    assert seqs(page.messages) == [3, 4, 5]
    assert page.has_more is True


async def test_latest_covering_the_whole_room_has_no_more(store):
    """When the page holds every message of the room, has_more is false."""
    await fill(store, 3)
    exact = await store.latest("general", 3)
    assert seqs(exact.messages) == [1, 2, 3]
    assert exact.has_more is False
    larger = await store.latest("general", 10)
    assert seqs(larger.messages) == [1, 2, 3]
    assert larger.has_more is False


async def test_latest_of_an_unknown_room_is_empty(store):
    """A room nobody wrote to has an empty page without more."""
    page = await store.latest("nobody-here", 10)
    assert page.messages == []
    assert page.has_more is False


async def test_before_returns_the_newest_messages_below_a_seq(store):
    """before(seq, limit) gives the newest ``limit`` messages with a smaller seq, oldest first."""
    await fill(store, 10)
    page = await store.before("general", 8, 3)
    assert seqs(page.messages) == [5, 6, 7]
    assert page.has_more is True


async def test_before_reaching_the_first_message_has_no_more(store):
    """A page that includes seq 1 has has_more false, even when exactly full."""
    await fill(store, 10)
    exact = await store.before("general", 4, 3)
    assert seqs(exact.messages) == [1, 2, 3]
    assert exact.has_more is False
    short = await store.before("general", 3, 5)
    assert seqs(short.messages) == [1, 2]
    assert short.has_more is False


async def test_before_first_seq_is_empty(store):
    """Nothing is older than seq 1."""
    await fill(store, 3)
    page = await store.before("general", 1, 10)
    assert page.messages == []
    assert page.has_more is False


async def test_before_beyond_the_newest_is_the_latest_page(store):
    """A before above the newest seq pages back from the newest message."""
    await fill(store, 4)
    page = await store.before("general", 100, 2)
    assert seqs(page.messages) == [3, 4]
    assert page.has_more is True


@pytest.mark.parametrize("huge", [2**31, 2**63], ids=["2^31", "2^63"])
async def test_before_far_beyond_any_seq_is_the_latest_page(store, huge):
    """A before larger than any seq the database can hold still pages back from the newest."""
    await fill(store, 4)
    page = await store.before("general", huge, 2)
    assert seqs(page.messages) == [3, 4]
    assert page.has_more is True


async def test_paging_back_visits_every_message_once(store):
    """Following has_more with before=first seq walks the whole room without gap or repeat."""
    await fill(store, 11)
    page = await store.latest("general", 4)
    seen = seqs(page.messages)
    while page.has_more:
        page = await store.before("general", page.messages[0].seq, 4)
        seen = seqs(page.messages) + seen
    assert seen == list(range(1, 12))


async def test_after_returns_the_oldest_messages_above_a_seq(store):
    """after(since, limit) gives the oldest ``limit`` messages with a greater seq, in order."""
    await fill(store, 10)
    assert seqs(await store.after("general", 3, 4)) == [4, 5, 6, 7]
    assert seqs(await store.after("general", 0, 100)) == list(range(1, 11))


async def test_after_the_newest_is_empty(store):
    """Nothing follows the newest message."""
    await fill(store, 3)
    assert await store.after("general", 3, 10) == []
    assert await store.after("general", 50, 10) == []


@pytest.mark.parametrize("huge", [2**31, 2**63], ids=["2^31", "2^63"])
async def test_after_far_beyond_any_seq_is_empty(store, huge):
    """A since larger than any seq the database can hold yields nothing, not a database error."""
    await fill(store, 3)
    assert await store.after("general", huge, 10) == []


async def test_pages_never_mix_rooms(store):
    """latest, before and after only return messages of the room asked for."""
    await store.append(
        [new("a1", room="a"), new("b1", room="b"), new("a2", room="a"), new("b2", room="b")]
    )
    assert [m.text for m in (await store.latest("a", 10)).messages] == ["a1", "a2"]
    assert [m.text for m in (await store.before("b", 3, 10)).messages] == ["b1", "b2"]
    assert [m.text for m in await store.after("a", 0, 10)] == ["a1", "a2"]


# --- time ----------------------------------------------------------------------


async def test_created_at_round_trips_as_timezone_aware_utc(store):
    """A UTC timestamp reads back as the same aware UTC datetime, microseconds included."""
    await store.append([new(at=T0)])
    [read] = (await store.latest("general", 1)).messages
    assert read.created_at == T0
    assert read.created_at.utcoffset() == timedelta(0)
    assert read.created_at.microsecond == 123456


async def test_created_at_with_another_offset_reads_back_as_the_same_instant(store):
    """A timestamp given with a non-UTC offset is stored as the same instant, read back in UTC."""
    plus_two = datetime(2026, 11, 26, 14, 0, 0, tzinfo=timezone(timedelta(hours=2)))
    [result] = await store.append([new(at=plus_two)])
    [read] = (await store.latest("general", 1)).messages
    assert read.created_at == plus_two  # 12:00 UTC, not 14:00 UTC
    assert read.created_at.utcoffset() == timedelta(0)
    assert read == result.message


# --- constraints and schema ------------------------------------------------------


async def test_database_rejects_a_duplicate_room_seq(store, db_url):
    """The (room, seq) unique constraint lives in the database itself, not only in the code."""
    await store.append([new("first")])
    engine = create_engine(db_url)
    insert = text(
        "INSERT INTO messages (room, seq, user_id, user_name, text, created_at)"
        " VALUES ('general', :seq, 'intruder', 'Intruder', 'sneaky', :at)"
    )
    try:
        async with engine.begin() as conn:  # a fresh seq is fine: the row itself is valid
            await conn.execute(insert, {"seq": 2, "at": T0})
        with pytest.raises(IntegrityError):
            async with engine.begin() as conn:
                await conn.execute(insert, {"seq": 1, "at": T0})
    finally:
        await engine.dispose()


async def test_database_rejects_a_duplicate_user_client_id(store, db_url):
    """The (user_id, client_id) unique constraint lives in the database itself."""
    await store.append([new("first", client_id="c1")])
    engine = create_engine(db_url)
    insert = text(
        "INSERT INTO messages (room, seq, user_id, user_name, text, created_at, client_id)"
        " VALUES ('general', 99, :user, 'Alice', 'again', :at, 'c1')"
    )
    try:
        with pytest.raises(IntegrityError):
            async with engine.begin() as conn:
                await conn.execute(insert, {"user": ALICE.id, "at": T0})
    finally:
        await engine.dispose()


async def test_fresh_database_gets_the_schema_and_alembic_head(store, db_url):
    """Opening an empty database creates the tables and stamps the newest migration."""
    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
            columns = await conn.run_sync(
                lambda c: {col["name"] for col in inspect(c).get_columns("messages")}
            )
            version = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
    finally:
        await engine.dispose()
    assert {"rooms", "messages", "alembic_version"} <= tables
    assert columns == {
        "id",
        "room",
        "seq",
        "user_id",
        "user_name",
        "text",
        "created_at",
        "client_id",
    }
    assert version == [(head_revision(),)]


def _modelled_tables(name: str | None, type_: str, parents: object) -> bool:
    """Compare the tables the models describe, as autogenerate does; migrations may add
    others (e.g. search)."""
    return include_name(name, type_, parents) and (type_ != "table" or name in Base.metadata.tables)


async def test_migrated_schema_matches_the_models(store, db_url):
    """Autogenerate finds no difference between the migrated tables and schema.py."""
    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda c: compare_metadata(
                    MigrationContext.configure(c, opts={"include_name": _modelled_tables}),
                    Base.metadata,
                )
            )
    finally:
        await engine.dispose()
    assert diff == []


@pytest.mark.parametrize("revision", revisions()[:-1])
async def test_a_database_left_at_an_older_revision_upgrades_with_its_messages(db_url, revision):
    """A database an older chatapp left at any earlier revision opens at the newest one,
    its messages readable and searchable, its sequence continuing."""
    await asyncio.to_thread(migrate_to, db_url, revision)  # alembic runs its own loop
    engine = create_engine(db_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(insert(RoomRow).values(name="old", last_seq=2, created_at=T0))
            await conn.execute(
                insert(MessageRow),
                [
                    {
                        "room": "old",
                        "seq": seq,
                        "user_id": ALICE.id,
                        "user_name": ALICE.name,
                        "text": body,
                        "created_at": T0,
                        "client_id": None,
                    }
                    for seq, body in [(1, "archived greeting"), (2, "archived farewell")]
                ],
            )
    finally:
        await engine.dispose()
    store = await open_store(db_url)
    try:
        assert [m.text for m in (await store.latest("old", 10)).messages] == [
            "archived greeting",
            "archived farewell",
        ]
        assert [h.message.seq for h in await store.search("farewell", None, 10)] == [2]
        [appended] = await store.append([new("new", room="old")])
        assert appended.message.seq == 3
    finally:
        await store.close()
    assert await stored_revision(db_url) == [head_revision()]


async def test_reopening_a_populated_database_keeps_its_data_and_sequence(db_url):
    """Opening an existing database again migrates nothing away: messages stay, seq continues."""
    first = await open_store(db_url)
    try:
        before = await first.append(
            [new("one", client_id="c1"), new("two"), new("x", room="other")]
        )
    finally:
        await first.close()
    second = await open_store(db_url)
    try:
        kept = (await second.latest("general", 10)).messages
        assert kept == [r.message for r in before[:2]]
        assert (await second.latest("other", 10)).messages == [before[2].message]
        [again] = await second.append([new("one", client_id="c1")])
        assert again.duplicate is True
        [next_one] = await second.append([new("three")])
        assert next_one.message.seq == 3
    finally:
        await second.close()


async def test_ping_asks_the_database_every_time(db_url):
    """ping returns quietly when the database answers, and it does ask it: one statement
    per ping, none remembered from before (so a database gone since is noticed)."""
    engine = create_engine(db_url)
    asked: list[str] = []

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def record(conn, cursor, statement, parameters, context, executemany):
        asked.append(statement)

    store = SqlStore(engine)
    try:
        await store.ping()
        first = len(asked)
        await store.ping()
    finally:
        await store.close()
    assert first >= 1 and asked[first - 1] == "SELECT 1"
    assert asked[first:] == ["SELECT 1"]


async def test_description_names_the_database_without_password():
    """description is safe to log: the password is masked."""
    engine = create_engine("postgresql+asyncpg://bob:s3cret@db.example:5432/chat")
    store = SqlStore(engine)
    try:
        assert "s3cret" not in store.description
        assert "db.example" in store.description
    finally:
        await store.close()


# --- opening errors ---------------------------------------------------------------


@pytest.mark.parametrize("url", ["", "not a url", "sqlite+aiosqlite"])
def test_unparsable_url_raises_store_error(url):
    """A URL SQLAlchemy cannot parse raises StoreError saying the URL is bad."""
    with pytest.raises(StoreError, match="bad database URL"):
        create_engine(url)


def test_unknown_dialect_raises_store_error():
    """An unknown dialect or driver name raises StoreError, not a SQLAlchemy exception."""
    with pytest.raises(StoreError, match="bad database URL"):
        create_engine("postgresql+nosuchdriver://bob@localhost/chat")


def test_missing_driver_raises_store_error_naming_it():
    """A driver that is not installed raises StoreError naming the missing module."""
    with pytest.raises(StoreError, match=r"not installed \(aiomysql\)"):
        create_engine("mysql+aiomysql://bob@localhost/chat")


def test_sync_driver_raises_store_error():
    """A synchronous driver where an async one is needed raises StoreError."""
    with pytest.raises(StoreError, match="async"):
        create_engine("sqlite:///chat.db")


def test_store_error_for_bad_url_does_not_reveal_the_password():
    """Opening errors end up in logs, so they never contain the URL's password."""
    with pytest.raises(StoreError) as info:
        create_engine("postgresql+nosuchdriver://bob:s3cret@localhost/chat")
    assert "s3cret" not in str(info.value)


async def test_open_store_on_missing_directory_raises_store_error(tmp_path):
    """An SQLite file in a missing directory raises StoreError 'cannot open database'."""
    with pytest.raises(StoreError, match="cannot open database"):
        await open_store(f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'chat.db'}")


async def test_open_store_on_a_directory_raises_store_error(tmp_path):
    """An SQLite path naming a directory raises StoreError 'cannot open database'."""
    with pytest.raises(StoreError, match="cannot open database"):
        await open_store(f"sqlite+aiosqlite:///{tmp_path}")


async def test_open_store_on_unreachable_server_raises_store_error_without_password():
    """A server that refuses the connection raises StoreError with the password masked."""
    with pytest.raises(StoreError, match="cannot open database") as info:
        await open_store("postgresql+asyncpg://bob:s3cret@127.0.0.1:1/chat")
    assert "s3cret" not in str(info.value)


async def test_ping_on_unreachable_server_raises_store_error():
    """ping raises StoreError when the database does not answer."""
    store = SqlStore(create_engine("postgresql+asyncpg://bob@127.0.0.1:1/chat"))
    try:
        with pytest.raises(StoreError, match="did not answer"):
            await store.ping()
    finally:
        await store.close()


@pytest.mark.postgres
async def test_open_store_on_missing_postgres_database_raises_store_error():
    """A PostgreSQL database that does not exist raises StoreError naming the problem."""
    missing = f"chatapp_missing_{uuid.uuid4().hex[:12]}"
    with pytest.raises(StoreError, match="does not exist"):
        await open_store(f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{missing}")
