"""Full-text search: the store's ``search`` on SQLite (FTS5) and PostgreSQL, and ``/api/search``."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path
from urllib.parse import urlencode

import pytest
from chatdata import populate
from factories import ALICE, BOB, SECRET, T0, eventually, new, token
from revisions import migrate_to
from sqlalchemy import event, text
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from chatapp.limits import MAX_SEARCH_QUERY_CHARS, SEARCH_COUNT_CAP
from chatapp.store.engine import create_engine, open_store
from chatapp.store.files import sqlite_file
from chatapp.store.schema import FTS_TABLE, PG_SEARCH_INDEX, MessageRow
from chatapp.store.search import Word, fts5_query, words
from chatapp.store.search import statement as search_statement
from chatapp.store.search_index import attach, index_path
from chatapp.store.sql import SqlStore

#: Fresh databases on both backends, as in the store tests.


async def found(store: SqlStore, query: str, rooms: list[str] | None = None, limit: int = 20):
    """(room, seq) of each hit, best first."""
    return [(h.message.room, h.message.seq) for h in await store.search(query, rooms, limit)]


# --- the query language ---------------------------------------------------------


def test_words_split_on_whitespace_and_mark_prefixes():
    """Whitespace separates words; trailing stars make a prefix; a lone star is no word."""
    assert words("  hel*  world ** x") == [
        Word("hel", True),
        Word("world", False),
        Word("x", False),
    ]


def test_fts5_query_quotes_every_word():
    """Each word becomes an FTS5 string, quotes doubled, so operators are only text."""
    assert fts5_query(words('say "hi" AND NEAR( pre*')) == '"say" """hi""" "AND" "NEAR(" "pre"*'


# --- the store, on both databases ------------------------------------------------


async def test_search_finds_messages_containing_every_word(store):
    """Only messages holding all the words match, whatever their case."""
    await store.append([new("Hello world"), new("hello there"), new("world peace")])
    assert await found(store, "WORLD hello") == [("general", 1)]
    assert sorted(await found(store, "hello")) == [("general", 1), ("general", 2)]


async def test_search_ranks_better_matches_first(store):
    """A message that repeats the word outranks an older and a newer one that mentions it once."""
    await store.append(
        [
            new("deploy notes for the week"),
            new("deploy deploy deploy"),
            new("one more deploy remark"),
        ]
    )
    hits = await store.search("deploy", None, 10)
    assert hits[0].message.seq == 2
    assert hits[0].score > hits[1].score


async def test_search_hits_carry_the_whole_message(store):
    """A hit is the stored message itself: room, seq, user, text and time."""
    [stored] = await store.append([new("find me", room="lobby", user=BOB)])
    [hit] = await store.search("find", None, 5)
    assert hit.message == stored.message
    assert isinstance(hit.score, float)


async def test_search_is_limited_to_the_given_rooms(store):
    """``rooms`` restricts the hits; an empty list finds nothing."""
    await store.append(
        [new("shared word", room="a"), new("shared word", room="b"), new("shared", room="c")]
    )
    assert sorted(await found(store, "shared", ["a", "c"])) == [("a", 1), ("c", 1)]
    assert await found(store, "shared", []) == []


async def test_search_returns_at_most_limit_hits(store):
    """``limit`` caps the hits."""
    await store.append([new(f"repeat {i}") for i in range(7)])
    assert len(await store.search("repeat", None, 3)) == 3


async def test_count_matches_counts_every_match_beyond_the_limit(store):
    """The count covers every matching message, however few hits were asked for."""
    await store.append([new(f"deploy step {i}") for i in range(7)] + [new("other")])
    assert len(await store.search("deploy", None, 2)) == 2
    assert await store.count_matches("deploy", None, 100) == 7
    assert await store.count_matches("deplo*", None, 100) == 7
    assert await store.count_matches("deploy other", None, 100) == 0


async def test_count_matches_stops_at_its_bound_and_keeps_to_the_rooms(store):
    """``up_to`` bounds the count; ``rooms`` restricts it like the search; no words count 0."""
    await store.append([new("shared", room="a") for _ in range(5)] + [new("shared", room="b")])
    assert await store.count_matches("shared", None, 3) == 3
    assert await store.count_matches("shared", ["b"], 100) == 1
    assert await store.count_matches("shared", [], 100) == 0
    assert await store.count_matches("  ***  ", None, 100) == 0


async def test_a_word_ending_in_star_matches_as_a_prefix(store):
    """``deplo*`` finds deploy and deployment; ``deplo`` alone finds neither."""
    await store.append([new("deploy now"), new("deployment done"), new("other")])
    assert sorted(await found(store, "deplo*")) == [("general", 1), ("general", 2)]
    assert await found(store, "deplo") == []


#: The one message of the test below, and that message as a hit.
LITERAL = "a OR b AND c NOT d o'neil back\\slash col:val"
HIT = [("general", 1)]


@pytest.mark.parametrize(
    ("query", "hits"),
    [
        ('"', []),
        ('"unbalanced', []),
        ("AND", HIT),
        ("a OR", HIT),
        ("NOT", HIT),
        ("(", []),
        (")", []),
        ("NEAR(a b", []),
        ("*", []),
        ("col:val", HIT),
        ("o'neil", HIT),
        ("back\\slash", HIT),
        ("a & b | !c", HIT),
        ("-minus", []),
        ("^caret", []),
        ("{x}", []),
        ("%_", []),
        ("\x00", []),
    ],
)
async def test_query_syntax_is_taken_literally_and_never_fails(store, query, hits):
    """Whatever people type is searched for as words, never parsed as query syntax: operator
    words match themselves, punctuation is dropped, and a word the message lacks finds
    nothing."""
    await store.append([new(LITERAL)])
    assert await found(store, query) == hits


async def test_quotes_and_operators_inside_messages_are_found_as_words(store):
    """Words next to quotes and operator words match like any other."""
    await store.append([new('she said "banana" AND left'), new("no fruit")])
    assert await found(store, '"banana"') == [("general", 1)]
    assert await found(store, "AND") == [("general", 1)]


async def test_a_query_without_words_finds_nothing(store):
    """Blank or star-only queries match nothing instead of everything."""
    await store.append([new("anything")])
    assert await found(store, "   ") == []
    assert await found(store, "***") == []


async def test_messages_deleted_by_hand_are_not_found(store, db_url):
    """A message deleted outside chatapp (plain SQL) is gone from search at once."""
    await store.append([new("kept wording"), new("to be removed")])
    assert await found(store, "removed") == [("general", 2)]
    engine = create_engine(db_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("DELETE FROM messages WHERE seq = 2"))
    finally:
        await engine.dispose()
    assert await found(store, "removed") == []
    assert await found(store, "kept") == [("general", 1)]


async def test_pruned_messages_are_not_found(store):
    """Retention's deletes reach the search index too."""
    await store.append([new("old secret", at=T0), new("new secret")])
    await store.prune("general", T0.replace(year=2030), 1)
    assert await found(store, "secret") == [("general", 2)]


# --- SQLite specifics ---------------------------------------------------------------


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'chat.db'}"


def indexed_ids(database: str) -> list[int]:
    with sqlite3.connect(index_path(Path(database))) as db:
        return [row[0] for row in db.execute("SELECT rowid FROM messages_fts ORDER BY rowid")]


async def test_retention_removes_pruned_text_from_the_index_file(sqlite_url, tmp_path):
    """What retention deletes leaves no trace in chat-search.db either."""
    store = await open_store(sqlite_url)
    try:
        await store.append([new("old secret", at=T0), new("new secret")])
        assert await found(store, "secret") == [("general", 2), ("general", 1)]
        await store.prune("general", T0.replace(year=2030), 1)
        assert indexed_ids(str(tmp_path / "chat.db")) == [2]
    finally:
        await store.close()


async def test_a_lost_index_file_is_rebuilt_from_the_messages(sqlite_url, tmp_path):
    """The index is derived data: without its file, the next start indexes every message."""
    store = await open_store(sqlite_url)
    await store.append([new("first words"), new("second words")])
    await store.close()
    for name in ("chat-search.db", "chat-search.db-wal", "chat-search.db-shm"):
        (tmp_path / name).unlink(missing_ok=True)
    store = await open_store(sqlite_url)
    try:
        assert sorted(await found(store, "words")) == [("general", 1), ("general", 2)]
        assert indexed_ids(str(tmp_path / "chat.db")) == [1, 2]
    finally:
        await store.close()


async def test_messages_are_indexed_in_the_background_soon_after_their_commit(sqlite_url, tmp_path):
    """No search needed: the index file follows the commits by itself."""
    store = await open_store(sqlite_url)
    try:
        await store.append([new("one"), new("two")])
        await eventually(
            lambda: indexed_ids(str(tmp_path / "chat.db")) == [1, 2], "both messages indexed"
        )
    finally:
        await store.close()


async def test_search_ignores_accents(store):
    """``cafe`` finds ``café`` and ``CAFÉ`` finds ``cafe``, on either database."""
    await store.append([new("un café"), new("the cafe"), new("naïve cafés")])
    assert sorted(await found(store, "cafe")) == [("general", 1), ("general", 2)]
    assert sorted(await found(store, "CAFÉ")) == [("general", 1), ("general", 2)]
    assert sorted(await found(store, "cafe*")) == [("general", 1), ("general", 2), ("general", 3)]
    assert await found(store, "NAIVE") == [("general", 3)]


async def test_a_word_of_several_tokens_matches_as_a_phrase(store):
    """``o'neil`` finds the two parts side by side, not apart, as FTS5 takes a quoted word."""
    await store.append([new("ask o'neil"), new("neil said o")])
    assert await found(store, "o'neil") == [("general", 1)]


#: Queries over ``chatdata``'s sample history and their hits, best first: the same on
#: SQLite (bm25) and PostgreSQL (ts_rank), shorter messages first, then newer ones.
SAME_ON_BOTH = [
    ("hello", [("random", 4), ("general", 1), ("general", 2)]),
    ("HEL*", [("random", 4), ("general", 1), ("general", 2)]),
    ("hello alice", [("general", 2)]),
    ("hello again", [("random", 4)]),
    ("Cafe", [("general", 2)]),
    ("café*", [("general", 2)]),
    ("see you", [("general", 4)]),
    ("you*", [("general", 4)]),
    ("good morning", [("general", 6)]),
    ("usual pl*", [("general", 3)]),
    ('quotes " AND ( NEAR', [("random", 3)]),
    ("AND", [("random", 3)]),
    ("pruned", []),
    ("hello nobody", []),
]


@pytest.mark.parametrize(("query", "hits"), SAME_ON_BOTH, ids=[q for q, _ in SAME_ON_BOTH])
async def test_search_finds_and_ranks_alike_on_both_databases(populated, query, hits):
    """The sample history answers each query with the same hits in the same order."""
    store = await open_store(populated)
    try:
        assert await found(store, query) == hits
    finally:
        await store.close()


async def test_search_reads_the_full_text_index(populated):
    """The search statement is planned on the full-text index: FTS5's table on SQLite,
    the GIN index on PostgreSQL (even on a tiny table, once scans are discouraged)."""
    engine = create_engine(populated)
    database = sqlite_file(populated)
    if database is not None:  # as the store's connections see it
        index = index_path(database)
        event.listen(engine.sync_engine, "connect", lambda conn, _record: attach(conn, index))
    dialect = engine.dialect
    query = search_statement(dialect.name, words("hello wor*"), [MessageRow.id], None, 20)
    sql = str(query.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
    try:
        async with engine.connect() as conn:
            if dialect.name == "sqlite":
                plan = [r[3] for r in await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}")]
                assert any(
                    line.startswith(f"SCAN search.{FTS_TABLE} VIRTUAL TABLE") for line in plan
                ), plan
                return
            await conn.exec_driver_sql("SET enable_seqscan = off")  # tiny table: make it choose
            plan = [r[0] for r in await conn.exec_driver_sql(f"EXPLAIN {sql}")]
            assert any(f"Bitmap Index Scan on {PG_SEARCH_INDEX}" in line for line in plan), plan
    finally:
        await engine.dispose()


async def test_messages_stored_before_the_search_migration_are_found(sqlite_url, tmp_path):
    """Upgrading a database from before search backfills the index with its messages."""
    await asyncio.to_thread(migrate_to, sqlite_url, "0002")  # alembic runs its own loop
    engine = create_engine(sqlite_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(
                text("INSERT INTO rooms (name, last_seq, created_at) VALUES ('old', 2, :at)"),
                {"at": T0},
            )
            for seq, body in [(1, "archived greeting"), (2, "archived farewell")]:
                await conn.execute(
                    text(
                        "INSERT INTO messages (room, seq, user_id, user_name, text, created_at)"
                        " VALUES ('old', :seq, 'u-alice', 'Alice', :body, :at)"
                    ),
                    {"seq": seq, "body": body, "at": T0},
                )
    finally:
        await engine.dispose()
    store = await open_store(sqlite_url)  # migrates to the newest revision
    try:
        assert sorted(await found(store, "archived")) == [("old", 1), ("old", 2)]
        assert await found(store, "farewell") == [("old", 2)]
    finally:
        await store.close()


# --- GET /api/search -----------------------------------------------------------------


async def get_search(base: str, headers: dict[str, str] | None = None, **params: object) -> dict:
    query = urlencode({k: v for k, v in params.items() if v is not None})
    response = await AsyncHTTPClient().fetch(f"{base}/api/search?{query}", headers=headers)
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.headers["Cache-Control"] == "no-store"
    return json.loads(response.body)


async def test_search_endpoint_returns_ranked_hits_with_room_and_seq(http_url, settings):
    """Hits are message objects with room, seq, user, text, ts and a score, best first."""
    await populate(settings.database_url)
    body = await get_search(http_url, q="hello")
    assert body["query"] == "hello" and body["room"] is None
    assert sorted((h["room"], h["seq"]) for h in body["hits"]) == [
        ("general", 1),
        ("general", 2),
        ("random", 4),
    ]
    hit = next(h for h in body["hits"] if h["seq"] == 1 and h["room"] == "general")
    assert hit["text"] == "hello everyone"
    assert hit["user"] == {"id": ALICE.id, "name": ALICE.name}
    assert hit["ts"] == "2026-11-25T23:59:59.999999Z"
    scores = [h["score"] for h in body["hits"]]
    assert scores == sorted(scores, reverse=True)


async def test_search_endpoint_counts_all_matches_beside_the_top_hits(http_url, settings):
    """``total`` is how many messages match in all, whatever ``limit`` shows of them."""
    await populate(settings.database_url)
    body = await get_search(http_url, q="hello", limit=1)
    assert len(body["hits"]) == 1
    assert (body["total"], body["total_capped"]) == (3, False)
    body = await get_search(http_url, q="hello", room="random")
    assert (body["total"], body["total_capped"]) == (1, False)


async def test_search_endpoint_caps_the_count(http_url, settings):
    """Past SEARCH_COUNT_CAP matches the count stops there and says it was capped."""
    store = await open_store(settings.database_url)
    try:
        await store.append([new(f"flood {i}") for i in range(SEARCH_COUNT_CAP + 1)])
        await store.append([new("flood, the last one")])
    finally:
        await store.close()
    body = await get_search(http_url, q="flood")
    assert (body["total"], body["total_capped"]) == (SEARCH_COUNT_CAP, True)
    exactly = await get_search(http_url, q="last")
    assert (exactly["total"], exactly["total_capped"]) == (1, False)


async def test_search_endpoint_filters_by_room_and_limits(http_url, settings):
    """``room`` keeps one room's hits; ``limit`` caps them."""
    await populate(settings.database_url)
    body = await get_search(http_url, q="hello", room="random")
    assert [(h["room"], h["seq"]) for h in body["hits"]] == [("random", 4)]
    assert body["room"] == "random"
    assert len((await get_search(http_url, q="hello", limit=1))["hits"]) == 1


async def test_search_endpoint_treats_an_empty_room_as_every_room(http_url, settings):
    """``room=`` (as an empty form field sends it) searches every room."""
    await populate(settings.database_url)
    assert len((await get_search(http_url, q="hello", room=""))["hits"]) == 3


async def test_search_endpoint_takes_query_syntax_literally(http_url, settings):
    """FTS5 operators and stray quotes are searched for, not an error."""
    await populate(settings.database_url)
    body = await get_search(http_url, q='quotes " AND ( NEAR')
    assert [(h["room"], h["seq"]) for h in body["hits"]] == [("random", 3)]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({}, "bad_field"),
        ({"q": "   "}, "bad_field"),
        ({"q": "x" * (MAX_SEARCH_QUERY_CHARS + 1)}, "too_long"),
        ({"q": "hi", "room": "bad room"}, "bad_room"),
        ({"q": "hi", "limit": "0"}, "bad_field"),
        ({"q": "hi", "limit": "many"}, "bad_field"),
    ],
)
async def test_search_endpoint_bad_parameters_get_400_with_a_reason(http_url, params, code):
    """A missing or blank query, an overlong one, a bad room or limit: 400 and a reason."""
    with pytest.raises(HTTPClientError) as caught:
        await get_search(http_url, **params)
    assert caught.value.code == 400
    body = json.loads(caught.value.response.body)
    assert body["error"] == code and body["reason"]


async def test_search_endpoint_keeps_to_the_rooms_a_token_allows(serve, settings):
    """A token limited to some rooms finds nothing elsewhere, and naming another room is 403."""
    port = await serve(jwt_secret=SECRET)
    await populate(settings.database_url)
    base = f"http://127.0.0.1:{port}"
    limited = {"Authorization": f"Bearer {token(rooms=['gen*'])}"}
    body = await get_search(base, limited, q="hello")
    assert sorted((h["room"], h["seq"]) for h in body["hits"]) == [("general", 1), ("general", 2)]
    with pytest.raises(HTTPClientError) as caught:
        await get_search(base, limited, q="hello", room="random")
    assert caught.value.code == 403
    with pytest.raises(HTTPClientError) as caught:
        await get_search(base, q="hello")
    assert caught.value.code == 401


async def test_an_index_ahead_of_a_restored_database_starts_afresh(sqlite_url, tmp_path):
    """A database restored from an older backup gives out message ids again; the index of
    the lost messages must not answer for the new ones."""
    store = await open_store(sqlite_url)
    await store.append([new("before the backup")])
    await store.close()
    backup = tmp_path / "backup.db"
    with sqlite3.connect(tmp_path / "chat.db") as db, sqlite3.connect(backup) as copy:
        db.backup(copy)
    store = await open_store(sqlite_url)
    await store.append([new("lost in the restore")])
    assert await found(store, "lost") == [("general", 2)]
    await store.close()
    for suffix in ("", "-wal", "-shm"):
        (tmp_path / f"chat.db{suffix}").unlink(missing_ok=True)
    backup.rename(tmp_path / "chat.db")
    store = await open_store(sqlite_url)
    try:
        await store.append([new("after the restore")])  # id 2 again
        assert await found(store, "lost") == []
        assert await found(store, "restore") == [("general", 2)]
    finally:
        await store.close()
