"""The service over a real store (each backend): joins, resumes and catch-up, without gap or
duplicate.

Connections are fakes that record what they are pushed live and what the
service hands them to send (history pages and catch-up deliveries).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from factories import ALICE, BOB, TICK, eventually, fill
from tornado.ioloop import IOLoop

from chatapp.auth.tokens import Identity
from chatapp.broker.memory import LocalBroker
from chatapp.core import service as service_module
from chatapp.core.admission import Admission
from chatapp.core.hub import Delivery, Hub
from chatapp.core.service import ChatService
from chatapp.errors import ErrorCode, RequestError, StoreError
from chatapp.limits import MAX_REPLAY
from chatapp.model import History, MessageEvent, Page, StoredMessage, User
from chatapp.ops.metrics import Metrics
from chatapp.store.sql import SqlStore


class FakeConnection:
    """Records live pushes and what it was given to send; ``full`` refuses live pushes."""

    def __init__(self, conn_id: str, user: User) -> None:
        self.id = conn_id
        self.user = user
        self.identity = Identity(user)
        self.address = ""
        self.full = False
        self.seen: list[int] = []  # message seqs, live and sent, in arrival order
        self.pages: list[Page] = []

    def push(self, delivery: Delivery) -> bool:
        if self.full:
            return False
        self._record(delivery)
        return True

    def take(self, item: History | Delivery) -> None:
        if isinstance(item, History):
            self.pages.append(item.page)
            self.seen.extend(m.seq for m in item.page.messages)
        else:
            self._record(item)

    def _record(self, delivery: Delivery) -> None:
        self.seen.extend(e.message.seq for e in delivery.events if isinstance(e, MessageEvent))

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        pass


@pytest.fixture
def service(store: SqlStore, io_loop: IOLoop) -> Iterator[ChatService]:
    """A running service on a fresh database of each backend (the ``store`` fixture)."""
    hub = Hub()
    running = ChatService(store, hub, LocalBroker(), Metrics(), Admission(), max_rooms=3)

    async def start() -> None:
        await running.start()

    io_loop.run_sync(start)
    yield running
    io_loop.run_sync(running.drain)
    io_loop.run_sync(running.close)


async def join(service: ChatService, conn: FakeConnection, room: str = "general", **kw) -> None:
    service.connect(conn)
    async for item in service.join(conn, room, **kw):
        conn.take(item)


async def post(service: ChatService, conn: FakeConnection, count: int, room: str = "general"):
    for i in range(count):
        await service.post(conn, room, f"m{i}", None)


async def test_a_joiner_gets_the_newest_page_then_live_traffic(service, store):
    """Without since: one page of the newest messages, then every new one, once."""
    await fill(store, 60)
    alice, bob = FakeConnection("c1", ALICE), FakeConnection("c2", BOB)
    await join(service, alice, limit=10)
    await join(service, bob)
    await post(service, bob, 3)
    assert [len(p.messages) for p in alice.pages] == [10]
    assert alice.pages[0].has_more is True
    assert alice.seen == list(range(51, 64))


async def test_joins_racing_with_traffic_see_every_message_once_in_order(service):
    """Members joining while others send get history then live traffic: no gap, no repeat."""
    sender = FakeConnection("s", BOB)
    await join(service, sender)
    posting = asyncio.ensure_future(post(service, sender, 100))
    joiners = [FakeConnection(f"j{i}", ALICE) for i in range(10)]
    for joiner in joiners:
        await join(service, joiner, limit=5)
        await asyncio.sleep(TICK / 50)  # joins spread over the traffic
    await posting
    for joiner in joiners:
        first = joiner.seen[0]
        assert joiner.seen == list(range(first, 101)), joiner.id


async def test_since_replays_every_missed_message_in_pages(service, store):
    """since within MAX_REPLAY: every message after it, page by page, oldest first."""
    await fill(store, 25)
    alice = FakeConnection("c1", ALICE)
    await join(service, alice, since=3, limit=10)
    assert [len(p.messages) for p in alice.pages] == [10, 10, 2]
    assert alice.seen == list(range(4, 26))
    assert not any(p.has_more for p in alice.pages)


async def test_since_too_far_back_sends_the_newest_page_with_has_more(service, store):
    """More than MAX_REPLAY missed: the newest page, and the client pages back itself."""
    await fill(store, MAX_REPLAY + 5)
    alice = FakeConnection("c1", ALICE)
    await join(service, alice, since=1, limit=10)
    [page] = alice.pages
    assert page.has_more and [m.seq for m in page.messages][-1] == MAX_REPLAY + 5


async def test_a_member_whose_backlog_was_full_gets_what_it_missed_from_the_store(service):
    """Refused pushes make the member lag; catch_up sends the missed messages, then it is
    live again: every message once, in order."""
    alice, bob = FakeConnection("c1", ALICE), FakeConnection("c2", BOB)
    await join(service, alice)
    await join(service, bob)
    await post(service, bob, 2)
    alice.full = True
    await post(service, bob, 5)
    alice.full = False
    async for delivery in service.catch_up(alice):
        alice.take(delivery)
    await post(service, bob, 2)
    assert alice.seen == list(range(1, 10))


async def test_a_lost_publish_is_delivered_from_the_store(service, store, monkeypatch):
    """A message committed without being published (its process died) still reaches the
    members here, before the next one, by the periodic check of room heads."""
    monkeypatch.setattr(service_module, "HEAD_CHECK_INTERVAL", TICK / 2)
    alice = FakeConnection("c1", ALICE)
    await join(service, alice)
    await fill(store, 2)  # committed, never published
    await eventually(lambda: alice.seen == [1, 2], "the unpublished messages delivered")


async def test_a_message_after_a_lost_publish_waits_for_it(service, store):
    """A message published after a gap is held until the missing one comes from the store."""
    alice, bob = FakeConnection("c1", ALICE), FakeConnection("c2", BOB)
    await join(service, alice)
    await join(service, bob)
    await fill(store, 1)  # seq 1, never published
    await post(service, bob, 1)  # seq 2, published
    await eventually(lambda: alice.seen == [1, 2], "both delivered, in order")


async def test_a_join_past_the_room_limit_is_refused(service):
    """A connection in max_rooms rooms gets too_many_rooms; rooms it is in stay joined."""
    alice = FakeConnection("c1", ALICE)
    for room in ("a", "b", "c"):
        await join(service, alice, room)
    with pytest.raises(RequestError) as refused:
        await join(service, alice, "d")
    assert refused.value.code == ErrorCode.TOO_MANY_ROOMS
    await join(service, alice, "a")  # joining again is not a new room


class UnreadableStore(SqlStore):
    """A store whose history reads fail, as during a database outage."""

    async def latest(self, room: str, limit: int) -> Page:
        raise StoreError("database did not answer")

    async def after(self, room: str, since: int, limit: int) -> list[StoredMessage]:
        raise StoreError("database did not answer")


@pytest.mark.parametrize("since", [None, 0])
async def test_a_failed_join_leaves_no_half_joined_member(store, since):
    """A join whose history read fails is undone: no membership, nothing held for it."""
    hub = Hub()
    unreadable = UnreadableStore(store._engine)
    service = ChatService(unreadable, hub, LocalBroker(), Metrics(), Admission())
    alice = FakeConnection("c1", ALICE)
    await fill(store, 3)
    with pytest.raises(StoreError):
        await join(service, alice, since=since)
    assert not hub.is_member(alice, "general")
    assert hub.active_rooms() == {}


class CountingStore(SqlStore):
    """A real store that counts the newest-page and head reads."""

    latest_reads = 0
    head_reads = 0

    async def latest(self, room: str, limit: int) -> Page:
        CountingStore.latest_reads += 1
        return await super().latest(room, limit)

    async def head(self, room: str) -> int:
        CountingStore.head_reads += 1
        return await super().head(room)


async def test_joiners_of_an_active_room_get_its_newest_page_from_memory(store):
    """Once a room's recent messages are in memory, the next joiners' pages come from there,
    the same page the store would give."""
    counting = CountingStore(store._engine)
    hub = Hub()
    service = ChatService(counting, hub, LocalBroker(), Metrics(), Admission())
    await service.start()
    try:
        await fill(store, 60)
        first, sender = FakeConnection("c1", ALICE), FakeConnection("c2", BOB)
        await join(service, first)
        await join(service, sender)
        await post(service, sender, 2)
        reads = CountingStore.latest_reads
        later = FakeConnection("c3", ALICE)
        await join(service, later)
        assert CountingStore.latest_reads == reads
        [page] = later.pages
        expected = await store.latest("general", 50)
        assert (page.messages, page.has_more) == (expected.messages, expected.has_more)
    finally:
        await service.drain()
        await service.close()


@pytest.mark.parametrize("stored", [0, 5, 50, 60])
async def test_the_first_joiner_of_a_quiet_room_fills_memory_for_the_next(store, stored):
    """Without live traffic too (an empty room, one smaller than a page, one larger), only
    the first joiner reads the store; the next get the same page from memory."""
    counting = CountingStore(store._engine)
    hub = Hub()
    service = ChatService(counting, hub, LocalBroker(), Metrics(), Admission())
    await service.start()
    try:
        await fill(store, stored)
        await join(service, FakeConnection("c1", ALICE))
        reads = CountingStore.latest_reads
        later = FakeConnection("c2", BOB)
        await join(service, later)
        assert CountingStore.latest_reads == reads
        [page] = later.pages
        expected = await store.latest("general", 50)
        assert (page.messages, page.has_more, page.pruned_before) == (
            expected.messages,
            expected.has_more,
            expected.pruned_before,
        )
    finally:
        await service.drain()
        await service.close()


async def test_a_burst_of_joiners_of_an_unknown_room_reads_it_once(store):
    """Joiners arriving together at a room this process does not know yet share one read
    of its head and one of its newest page; each gets the page the store would give."""
    counting = CountingStore(store._engine)
    service = ChatService(counting, Hub(), LocalBroker(), Metrics(), Admission())
    await service.start()
    try:
        await fill(store, 60)
        heads, pages = CountingStore.head_reads, CountingStore.latest_reads
        joiners = [FakeConnection(f"c{i}", ALICE if i % 2 else BOB) for i in range(30)]
        await asyncio.gather(*(join(service, conn) for conn in joiners))
        assert CountingStore.head_reads - heads == 1
        assert CountingStore.latest_reads - pages == 1
        expected = await store.latest("general", 50)
        for conn in joiners:
            [page] = conn.pages
            assert (page.messages, page.has_more) == (expected.messages, expected.has_more)
    finally:
        await service.drain()
        await service.close()


async def test_a_shared_read_that_fails_fails_every_joiner_sharing_it(store):
    """A database that does not answer gives each joiner of the burst its error, and no
    half-joined member stays behind."""
    hub = Hub()
    service = ChatService(
        UnreadableStore(store._engine), hub, LocalBroker(), Metrics(), Admission()
    )
    await fill(store, 3)
    joiners = [FakeConnection(f"c{i}", ALICE) for i in range(5)]
    outcomes = await asyncio.gather(*(join(service, c) for c in joiners), return_exceptions=True)
    assert all(isinstance(outcome, StoreError) for outcome in outcomes), outcomes
    assert not any(hub.is_member(conn, "general") for conn in joiners)
