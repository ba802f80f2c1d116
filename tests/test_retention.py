"""Retention: old messages are pruned from the start of each room, and clients are told.

Store behaviour runs on SQLite and PostgreSQL; what clients see (``pruned_before``
in ``history`` frames and scrollback pages) runs against a real server.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import connect_json, post
from factories import T0, eventually, new, seqs
from sqlalchemy import text
from tornado.httpclient import AsyncHTTPClient

from chatapp.cli import build_parser
from chatapp.commands.options import settings_from
from chatapp.model import NewMessage, User
from chatapp.ops.retention import RETENTION_LEASE_TTL, RETENTION_LOCK, Retention
from chatapp.store.engine import create_engine, open_store
from chatapp.store.sql import SqlStore

#: Fresh databases on both backends, as in the store tests.

DAY = timedelta(days=1)


async def aged(store: SqlStore, room: str, *days_old: float) -> None:
    """Store one message per entry, created that many days before T0, in that order."""
    await store.append([new(f"{room}-{d}", room=room, at=T0 - d * DAY) for d in days_old])


async def last_seq(db_url: str, room: str) -> int:
    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            query = text("SELECT last_seq FROM rooms WHERE name = :room")
            return int((await conn.execute(query, {"room": room})).scalar_one())
    finally:
        await engine.dispose()


# --- the store -----------------------------------------------------------------------


async def test_prune_deletes_the_messages_older_than_the_cutoff(store):
    """Messages created before the cutoff go, younger ones stay; the count is returned."""
    await aged(store, "general", 5, 4, 3, 0)
    assert await store.prune("general", T0 - 3.5 * DAY, 100) == 2
    assert seqs((await store.latest("general", 10)).messages) == [3, 4]


async def test_prune_deletes_only_from_the_start_of_a_room(store):
    """An old message after a younger one stays until the younger one is old too."""
    await aged(store, "general", 5, 1, 6, 0)  # the clock went back for seq 3
    assert await store.prune("general", T0 - 2 * DAY, 100) == 1
    assert seqs((await store.latest("general", 10)).messages) == [2, 3, 4]


async def test_prune_deletes_at_most_limit_messages_per_call(store):
    """Each call deletes a bounded batch; repeated calls finish the job."""
    await aged(store, "general", 9, 8, 7, 6, 5)
    assert [await store.prune("general", T0, 2) for _ in range(4)] == [2, 2, 1, 0]
    assert (await store.latest("general", 10)).messages == []


async def test_prune_leaves_other_rooms_alone(store):
    """Pruning one room never touches another."""
    await aged(store, "a", 9, 8)
    await aged(store, "b", 9, 8)
    await store.prune("a", T0, 10)
    assert seqs((await store.latest("b", 10)).messages) == [1, 2]


async def test_seq_continues_after_pruning_everything(store, db_url):
    """``rooms.last_seq`` is untouched, so the next message continues the sequence."""
    await aged(store, "general", 9, 8, 7)
    await store.prune("general", T0, 10)
    assert await last_seq(db_url, "general") == 3
    [result] = await store.append([new("after")])
    assert result.message.seq == 4


async def test_rooms_lists_every_room_that_held_a_message(store):
    """``room_names`` includes rooms whose messages were all pruned."""
    await aged(store, "b", 1)
    await aged(store, "a", 1)
    await store.prune("a", T0, 10)
    assert await store.room_names() == ["a", "b"]


async def test_a_page_reaching_the_oldest_kept_message_says_pruned_before(store):
    """When nothing older is stored but older messages existed, the page names the oldest kept."""
    await aged(store, "general", 9, 8, 7, 6, 5)
    await store.prune("general", T0 - 6.5 * DAY, 10)
    whole = await store.latest("general", 10)
    assert seqs(whole.messages) == [4, 5]
    assert (whole.has_more, whole.pruned_before) == (False, 4)
    partial = await store.latest("general", 1)
    assert (partial.has_more, partial.pruned_before) == (True, None)
    bottom = await store.before("general", 5, 10)
    assert (seqs(bottom.messages), bottom.has_more, bottom.pruned_before) == ([4], False, 4)


async def test_a_page_below_the_oldest_kept_message_is_empty_with_pruned_before(store):
    """Asking for seqs that were pruned gives no messages, has_more false and pruned_before."""
    await aged(store, "general", 9, 8, 7, 6)
    await store.prune("general", T0 - 7.5 * DAY, 10)
    page = await store.before("general", 3, 10)
    assert (page.messages, page.has_more, page.pruned_before) == ([], False, 3)


async def test_an_emptied_room_reports_the_next_seq_as_pruned_before(store):
    """With every message pruned, pruned_before is last_seq + 1."""
    await aged(store, "general", 9, 8)
    await store.prune("general", T0, 10)
    page = await store.latest("general", 10)
    assert (page.messages, page.has_more, page.pruned_before) == ([], False, 3)


async def test_nothing_pruned_means_no_pruned_before(store):
    """Rooms that lost nothing, and rooms that never existed, never report pruned_before."""
    await aged(store, "general", 2, 1)
    assert (await store.latest("general", 10)).pruned_before is None
    assert (await store.before("general", 1, 10)).pruned_before is None
    assert (await store.latest("nowhere", 10)).pruned_before is None
    assert (await store.before("nowhere", 5, 10)).pruned_before is None


# --- the background task ----------------------------------------------------------


async def test_a_retention_pass_prunes_every_room_in_batches(store):
    """One pass deletes everything older than the kept days from every room, batch by batch."""
    await aged(store, "a", 9, 8, 7, 6, 5, 1)
    await aged(store, "b", 9, 0)
    retention = Retention(store, days=3, batch=2, clock=lambda: T0)
    assert await retention.prune_once() == 6
    assert seqs((await store.latest("a", 10)).messages) == [6]
    assert seqs((await store.latest("b", 10)).messages) == [2]
    assert await retention.prune_once() == 0


class Watched:
    """A real store whose ``prune`` calls are counted while they run, across every
    ``Watched`` sharing one ``overlap`` record; ``gate`` can hold them mid-pass."""

    def __init__(self, store: SqlStore, overlap: dict[str, int], gate: asyncio.Event) -> None:
        self._store = store
        self._overlap = overlap
        self._gate = gate
        self.inside = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def prune(self, room: str, older_than: datetime, limit: int) -> int:
        self._overlap["now"] += 1
        self._overlap["most"] = max(self._overlap["most"], self._overlap["now"])
        self.inside.set()
        try:
            await self._gate.wait()
            return await self._store.prune(room, older_than, limit)
        finally:
            self._overlap["now"] -= 1


@pytest.fixture
def two_stores(db_url: str, io_loop: Any) -> Iterator[tuple[SqlStore, SqlStore]]:
    """Two stores on one database, as two processes would have."""
    first = io_loop.run_sync(lambda: open_store(db_url))
    second = io_loop.run_sync(lambda: open_store(db_url))
    yield first, second
    io_loop.run_sync(first.close)
    io_loop.run_sync(second.close)


async def test_runners_sharing_a_database_never_prune_at_the_same_time(two_stores):
    """Passes started together on two stores of one database never overlap; all is pruned."""
    first, second = two_stores
    for room in "abcdef":
        await aged(first, room, 9, 8, 7, 6)
    overlap = {"now": 0, "most": 0}
    gate = asyncio.Event()
    gate.set()
    runners = [
        Retention(Watched(store, overlap, gate), days=3, batch=1, clock=lambda: T0)
        for store in (first, second, first, second)
    ]
    deleted = await asyncio.gather(*(r.prune_once() for r in runners))
    assert overlap["most"] == 1
    assert sum(deleted) == 24
    for room in "abcdef":
        assert (await first.latest(room, 10)).messages == []


async def test_a_runner_skips_its_pass_while_another_holds_the_lock(two_stores):
    """While one process's pass runs, another's does nothing and the lock shows as taken."""
    first, second = two_stores
    await aged(first, "general", 9, 8)
    overlap = {"now": 0, "most": 0}
    gate = asyncio.Event()
    held = Watched(first, overlap, gate)
    running = asyncio.ensure_future(
        Retention(held, days=3, clock=lambda: T0).prune_once()  # type: ignore[arg-type]
    )
    await held.inside.wait()
    assert await Retention(second, days=3, clock=lambda: T0).prune_once() == 0
    async with second.exclusive(RETENTION_LOCK, RETENTION_LEASE_TTL) as taken:
        assert taken is False
    gate.set()
    assert await running == 2
    async with second.exclusive(RETENTION_LOCK, RETENTION_LEASE_TTL) as taken:
        assert taken is True


async def test_the_server_prunes_in_the_background_from_start_up(serve, settings):
    """A server started with retention_days deletes old messages without being asked."""
    settings.data_dir.mkdir(parents=True)
    seed = await open_store(settings.database_url)
    now = datetime.now(UTC)
    user = User("u-1", "Ann")
    try:
        await seed.append(
            [NewMessage("general", user, f"m{d}", None, now - d * DAY) for d in (30, 20, 0)]
        )
    finally:
        await seed.close()
    port = await serve(retention_days=7)
    url = f"http://127.0.0.1:{port}/api/rooms/general/messages"

    async def pruned() -> dict:
        page = json.loads((await AsyncHTTPClient().fetch(url)).body)
        return page if page.get("pruned_before") else {}

    page = await eventually(pruned, "old messages pruned")
    assert [m["seq"] for m in page["messages"]] == [3]
    assert page["pruned_before"] == 3 and page["has_more"] is False


def test_retention_days_is_a_server_option():
    """``--retention-days N`` reaches the settings; the default keeps everything."""
    assert settings_from(build_parser().parse_args([])).retention_days == 0
    assert settings_from(build_parser().parse_args(["--retention-days", "7"])).retention_days == 7


def test_negative_retention_days_is_refused(capsys):
    """A negative number of days is a usage error."""
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["--retention-days", "-1"])
    assert exited.value.code == 2
    assert "--retention-days" in capsys.readouterr().err


# --- what clients see ---------------------------------------------------------------


async def pruned_server_room(settings, count: int, keep_from: int) -> None:
    """``count`` messages in general of the running server's database, seq < keep_from pruned."""
    seed = await open_store(settings.database_url)
    try:
        await aged(seed, "general", *(count - i for i in range(count)))
        await seed.prune("general", T0 - (count - keep_from + 1.5) * DAY, 1000)
    finally:
        await seed.close()


async def test_joining_a_pruned_room_says_where_history_starts(ws_url, settings):
    """The join's history frame has pruned_before when it reaches the oldest kept message."""
    await pruned_server_room(settings, 6, keep_from=4)
    _, _, history = await connect_json(ws_url)
    assert [m["seq"] for m in history["messages"]] == [4, 5, 6]
    assert history["has_more"] is False and history["pruned_before"] == 4


async def test_a_page_with_more_kept_behind_it_has_no_pruned_before(ws_url, settings):
    """pruned_before appears only on the page that reaches the oldest kept message."""
    await pruned_server_room(settings, 6, keep_from=2)
    _, _, history = await connect_json(ws_url, "?limit=2")
    assert history["has_more"] is True and "pruned_before" not in history


async def test_history_below_the_pruned_range_is_empty_with_pruned_before(ws_url, settings):
    """Paging back into pruned seqs returns nothing, has_more false, and pruned_before."""
    await pruned_server_room(settings, 6, keep_from=4)
    client, _, _ = await connect_json(ws_url)
    await client.send({"type": "history", "room": "general", "before": 3})
    page = await client.expect("history")
    assert page["messages"] == [] and page["has_more"] is False and page["pruned_before"] == 4


async def test_resuming_into_pruned_messages_gets_the_rest_and_pruned_before(ws_url, settings):
    """since pointing into pruned seqs replays what remains, flagged, then live traffic."""
    await pruned_server_room(settings, 6, keep_from=4)
    client, _, history = await connect_json(ws_url, "?since=1")
    assert [m["seq"] for m in history["messages"]] == [4, 5, 6]
    assert history["has_more"] is False and history["pruned_before"] == 4
    assert (await post(client, "live"))["seq"] == 7


async def test_resuming_after_the_pruned_range_has_no_pruned_before(ws_url, settings):
    """A client that already had the pruned messages is not told about them."""
    await pruned_server_room(settings, 6, keep_from=4)
    _, _, history = await connect_json(ws_url, "?since=4")
    assert [m["seq"] for m in history["messages"]] == [5, 6]
    assert "pruned_before" not in history


async def test_resuming_in_a_room_pruned_empty_says_so(ws_url, settings):
    """When everything after since was pruned, the empty history carries pruned_before."""
    await pruned_server_room(settings, 3, keep_from=4)
    client, _, history = await connect_json(ws_url, "?since=1")
    assert history["messages"] == [] and history["pruned_before"] == 4
    assert (await post(client, "again"))["seq"] == 4


async def test_scrollback_endpoint_reports_pruned_before(http_url, settings):
    """``GET /api/rooms/R/messages`` carries pruned_before like the history frame."""
    await pruned_server_room(settings, 5, keep_from=3)
    response = await AsyncHTTPClient().fetch(f"{http_url}/api/rooms/general/messages")
    page = json.loads(response.body)
    assert [m["seq"] for m in page["messages"]] == [3, 4, 5] and page["pruned_before"] == 3
