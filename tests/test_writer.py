"""The group-commit BatchWriter over a real SqlStore on SQLite."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from factories import TICK, new
from tornado.ioloop import IOLoop

from chatapp.core.writer import BatchWriter
from chatapp.errors import StoreError, Unavailable
from chatapp.model import Appended, MessageEvent, NewMessage, Page, StoredMessage
from chatapp.store.engine import open_store
from chatapp.store.sql import SqlStore

POISON = "poison"
#: Seconds after which a submit that never returns counts as a stalled writer.
STALL_GUARD = 20 * TICK


@pytest.fixture
def sql_store(tmp_path: Path, io_loop: IOLoop) -> Iterator[SqlStore]:
    store = io_loop.run_sync(lambda: open_store(f"sqlite+aiosqlite:///{tmp_path / 'chat.db'}"))
    yield store
    io_loop.run_sync(store.close)


class WrappedStore:
    """Delegates to a real store; records each attempted batch, fails any holding POISON.

    With ``gate`` set, every append waits for it first, so a test can hold a
    commit in flight while more messages queue up.
    """

    def __init__(self, inner: SqlStore) -> None:
        self.inner = inner
        self.attempts: list[list[str]] = []
        self.attempted = asyncio.Event()
        self.gate: asyncio.Event | None = None

    @property
    def description(self) -> str:
        return self.inner.description

    async def append(self, batch: Sequence[NewMessage], retry: bool = False) -> list[Appended]:
        self.attempts.append([m.text for m in batch])
        self.attempted.set()
        if self.gate is not None:
            await self.gate.wait()
        if any(m.text == POISON for m in batch):
            raise RuntimeError("injected store failure")
        return await self.inner.append(batch)

    async def latest(self, room: str, limit: int) -> Page:
        return await self.inner.latest(room, limit)

    async def before(self, room: str, before: int, limit: int) -> Page:
        return await self.inner.before(room, before, limit)

    async def after(self, room: str, since: int, limit: int) -> list[StoredMessage]:
        return await self.inner.after(room, since, limit)

    async def ping(self) -> None:
        await self.inner.ping()

    async def close(self) -> None:
        await self.inner.close()


class Recorder:
    """Collects what the writer reports: committed events and batch sizes."""

    def __init__(self) -> None:
        self.events: list[MessageEvent] = []
        self.batches: list[int] = []
        self.duplicates = 0
        self.log: list[tuple[str, str]] = []

    async def on_commit(self, events: Sequence[MessageEvent]) -> None:
        self.events.extend(events)
        self.log.extend(("commit", e.message.text) for e in events)

    def on_batch(self, size: int, duplicates: int, seconds: float) -> None:
        self.batches.append(size)
        self.duplicates += duplicates


@asynccontextmanager
async def running(
    store: WrappedStore | SqlStore,
    recorder: Recorder,
    on_commit: Callable[[Sequence[MessageEvent]], object] | None = None,
) -> AsyncIterator[BatchWriter]:
    writer = BatchWriter(store, on_commit or recorder.on_commit, on_batch=recorder.on_batch)  # type: ignore[arg-type]
    writer.start()
    try:
        yield writer
    finally:
        await writer.close()


async def test_concurrent_submits_share_commits(sql_store):
    """Messages submitted together are committed in fewer transactions than messages."""
    recorder = Recorder()
    async with running(sql_store, recorder) as writer:
        results = await asyncio.gather(*(writer.submit(new(f"m{i}"), "c1") for i in range(30)))
    assert sum(recorder.batches) == 30
    assert len(recorder.batches) < 30
    assert [r.message.text for r in results] == [f"m{i}" for i in range(30)]
    assert sorted(r.message.seq for r in results) == list(range(1, 31))


async def test_messages_queued_during_a_commit_form_the_next_batch(sql_store):
    """While one commit is in flight, everything submitted meanwhile goes into one next batch."""
    store = WrappedStore(sql_store)
    store.gate = asyncio.Event()
    recorder = Recorder()
    async with running(store, recorder) as writer:
        first = asyncio.ensure_future(writer.submit(new("lone"), "c1"))
        await store.attempted.wait()
        assert store.attempts == [["lone"]]  # in flight, held at the gate
        rest = [asyncio.ensure_future(writer.submit(new(f"q{i}"), "c1")) for i in range(5)]
        await asyncio.sleep(0)
        store.gate.set()
        await asyncio.gather(first, *rest)
    assert store.attempts == [["lone"], ["q0", "q1", "q2", "q3", "q4"]]
    assert recorder.batches == [1, 5]


async def test_lone_message_is_committed_without_waiting_for_company(sql_store):
    """A single message is committed on its own, in a batch of one."""
    recorder = Recorder()
    async with running(sql_store, recorder) as writer:
        result = await writer.submit(new("alone"), "c1")
    assert result.message.seq == 1
    assert result.duplicate is False
    assert recorder.batches == [1]


async def test_on_commit_gets_events_in_commit_order_before_submitters_hear_back(sql_store):
    """Every message is published (in seq order, with its origin) before its submitter returns."""
    recorder = Recorder()

    async def send(i: int) -> None:
        result = await writer.submit(new(f"m{i}"), f"conn{i % 3}")
        recorder.log.append(("ack", result.message.text))

    async with running(sql_store, recorder) as writer:
        await asyncio.gather(*(send(i) for i in range(12)))
        await send(12)

    assert [e.message.seq for e in recorder.events] == list(range(1, 14))
    assert [e.origin for e in recorder.events] == [f"conn{i % 3}" for i in range(13)]
    for i in range(13):
        assert recorder.log.index(("commit", f"m{i}")) < recorder.log.index(("ack", f"m{i}"))


async def test_the_next_batch_is_written_while_the_last_is_published_in_order(sql_store):
    """Publishing a batch overlaps the writing of the next (so the loop and the database
    work at once), but batches are published in commit order, each before its acks."""
    recorder = Recorder()
    release = asyncio.Event()

    publishing_first = asyncio.Event()

    async def slow_publish(events: Sequence[MessageEvent]) -> None:
        recorder.log.extend(("publishing", e.message.text) for e in events)
        if events[0].message.text == "first":
            publishing_first.set()
            await release.wait()
        await recorder.on_commit(events)

    async with running(sql_store, recorder, on_commit=slow_publish) as writer:
        first = asyncio.ensure_future(writer.submit(new("first"), "c1"))
        await asyncio.wait_for(publishing_first.wait(), STALL_GUARD)
        second = asyncio.ensure_future(writer.submit(new("second"), "c1"))
        for _ in range(200):  # stored while "first" is still being published
            if len((await sql_store.latest("general", 10)).messages) == 2:
                break
            await asyncio.sleep(TICK / 10)
        assert [m.text for m in (await sql_store.latest("general", 10)).messages] == [
            "first",
            "second",
        ]
        assert ("publishing", "second") not in recorder.log  # not beside the batch before
        assert not first.done() and not second.done()
        release.set()
        assert (await first).message.seq == 1
        assert (await second).message.seq == 2
    assert [e.message.text for e in recorder.events] == ["first", "second"]


async def test_a_close_that_times_out_while_publishing_answers_everyone(sql_store):
    """A publish that hangs past close's timeout: its senders, and those behind, hear
    Unavailable (their messages may be stored: resending with the key is safe)."""
    publishing = asyncio.Event()

    async def hung_publish(events: Sequence[MessageEvent]) -> None:
        publishing.set()
        await asyncio.Event().wait()

    writer = BatchWriter(sql_store, hung_publish)
    writer.start()
    first = asyncio.ensure_future(writer.submit(new("first"), "c1"))
    await asyncio.wait_for(publishing.wait(), STALL_GUARD)
    second = asyncio.ensure_future(writer.submit(new("second"), "c1"))
    await asyncio.wait_for(writer.close(timeout=5 * TICK), STALL_GUARD)
    for sent in (first, second):
        with pytest.raises(Unavailable):
            await asyncio.wait_for(sent, STALL_GUARD)


async def test_duplicates_are_answered_with_the_original_and_published_again(sql_store):
    """A resent client_id gets the original back, stored once; it is published again with
    its original seq, so a message whose first answer was lost still reaches the hub (which
    drops seqs it has delivered)."""
    recorder = Recorder()
    async with running(sql_store, recorder) as writer:
        first = await writer.submit(new("once", client_id="k1"), "c1")
        again = await writer.submit(new("once", client_id="k1"), "c1")
    assert again.duplicate is True
    assert again.message == first.message
    assert [(e.message.text, e.message.seq) for e in recorder.events] == [("once", 1)] * 2
    assert recorder.duplicates == 1  # counted once, in the batch that answered the retry
    assert len((await sql_store.latest("general", 10)).messages) == 1


async def test_close_commits_everything_queued(sql_store):
    """close() waits until messages queued behind an in-flight commit are all stored."""
    store = WrappedStore(sql_store)
    store.gate = asyncio.Event()
    recorder = Recorder()
    writer = BatchWriter(store, recorder.on_commit, on_batch=recorder.on_batch)
    writer.start()
    pending = [asyncio.ensure_future(writer.submit(new(f"m{i}"), "c1")) for i in range(6)]
    await asyncio.sleep(0)
    closing = asyncio.ensure_future(writer.close())
    await asyncio.sleep(0)
    store.gate.set()
    await closing
    assert all(task.done() for task in pending)
    assert [task.result().message.seq for task in pending] == [1, 2, 3, 4, 5, 6]
    stored = (await sql_store.latest("general", 10)).messages
    assert [m.text for m in stored] == [f"m{i}" for i in range(6)]


async def test_submit_after_close_raises_writer_closed(sql_store):
    """Once closed, the writer refuses new messages with Unavailable and stores nothing."""
    recorder = Recorder()
    writer = BatchWriter(sql_store, recorder.on_commit, on_batch=recorder.on_batch)
    writer.start()
    await writer.close()
    with pytest.raises(Unavailable):
        await writer.submit(new("too late"), "c1")
    assert (await sql_store.latest("general", 10)).messages == []


async def test_failure_of_one_message_does_not_fail_its_batch(sql_store):
    """A message the store rejects fails alone with Unavailable; its batch-mates are stored."""
    store = WrappedStore(sql_store)
    recorder = Recorder()
    async with running(store, recorder) as writer:
        outcomes = await asyncio.gather(
            writer.submit(new("ok1"), "c1"),
            writer.submit(new(POISON), "c2"),
            writer.submit(new("ok2"), "c3"),
            return_exceptions=True,
        )
    assert store.attempts[0] == ["ok1", POISON, "ok2"]  # they really shared a batch
    ok1, failed, ok2 = outcomes
    assert isinstance(failed, Unavailable)
    assert isinstance(ok1, Appended) and isinstance(ok2, Appended)
    assert (ok1.message.seq, ok2.message.seq) == (1, 2)
    assert [e.message.text for e in recorder.events] == ["ok1", "ok2"]
    stored = (await sql_store.latest("general", 10)).messages
    assert [m.text for m in stored] == ["ok1", "ok2"]


async def test_writer_keeps_working_after_a_failed_message(sql_store):
    """After a lone message fails with Unavailable, the next message is stored normally."""
    store = WrappedStore(sql_store)
    recorder = Recorder()
    async with running(store, recorder) as writer:
        with pytest.raises(Unavailable):
            await writer.submit(new(POISON), "c1")
        result = await writer.submit(new("fine"), "c1")
    assert result.message.seq == 1
    assert result.message.text == "fine"


async def test_failing_on_commit_still_answers_submitters(sql_store):
    """If publishing fails, the message is stored all the same and its submitter gets the result."""
    recorder = Recorder()

    async def broken_publish(events: Sequence[MessageEvent]) -> None:
        raise RuntimeError("broker down")

    async with running(sql_store, recorder, on_commit=broken_publish) as writer:
        result = await writer.submit(new("stored anyway"), "c1")
    assert result.message.seq == 1
    assert [m.text for m in (await sql_store.latest("general", 10)).messages] == ["stored anyway"]


async def test_cancelled_submitter_does_not_disturb_the_others(sql_store):
    """A submitter that gives up while queued is withdrawn; the others are stored."""
    recorder = Recorder()
    async with running(sql_store, recorder) as writer:
        tasks = [asyncio.ensure_future(writer.submit(new(f"m{i}"), "c1")) for i in range(3)]
        await asyncio.sleep(0)
        tasks[1].cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        later = await writer.submit(new("later"), "c1")
    assert tasks[0].result().message.seq == 1
    assert tasks[2].result().message.seq == 2
    assert later.message.seq == 3


async def test_failing_batch_callback_does_not_stall_the_writer(sql_store):
    """If the batch callback (metrics) raises, submitters still hear back and the writer goes on."""
    recorder = Recorder()

    def broken_metrics(size: int, duplicates: int, seconds: float) -> None:
        raise RuntimeError("metrics broke")

    writer = BatchWriter(sql_store, recorder.on_commit, on_batch=broken_metrics)
    writer.start()
    try:
        # wait_for only turns a stalled writer into a failure instead of a hung suite
        first = await asyncio.wait_for(writer.submit(new("one"), "c1"), STALL_GUARD)
        second = await asyncio.wait_for(writer.submit(new("two"), "c1"), STALL_GUARD)
    finally:
        with contextlib.suppress(RuntimeError):  # a dead writer task re-raises its error
            await writer.close()
    assert (first.message.seq, second.message.seq) == (1, 2)
    assert [e.message.text for e in recorder.events] == ["one", "two"]


# --- database faults: a bounded answer, no message-by-message retries, no double store ---

#: The writer's bound in these tests: short, so failing tests fail fast.
TIMEOUT = 3 * TICK


class FaultyStore(WrappedStore):
    """A real store behind a switch: ``down`` refuses, ``hang`` never answers, and
    ``lose_answer`` commits the next batch, then reports a failure (an uncertain commit)."""

    def __init__(self, inner: SqlStore) -> None:
        super().__init__(inner)
        self.down = False
        self.hang = False
        self.lose_answer = False

    async def append(self, batch: Sequence[NewMessage], retry: bool = False) -> list[Appended]:
        self.attempts.append([m.text for m in batch])
        self.attempted.set()
        if self.hang:
            await asyncio.Event().wait()
        if self.down:
            raise StoreError("database is locked")
        results = await self.inner.append(batch, retry)
        if self.lose_answer:
            self.lose_answer = False
            raise StoreError("connection lost during commit")
        return results


@pytest.fixture
def faulty(sql_store: SqlStore) -> FaultyStore:
    return FaultyStore(sql_store)


async def test_when_the_database_fails_every_sender_hears_unavailable(faulty):
    """A failing database answers each waiting sender with Unavailable within the bound,
    retrying whole batches, never one message at a time."""
    faulty.down = True
    recorder = Recorder()
    writer = BatchWriter(faulty, recorder.on_commit, timeout=TIMEOUT)
    writer.start()
    try:
        outcomes = await asyncio.wait_for(
            asyncio.gather(
                *(writer.submit(new(f"m{i}"), "c1") for i in range(20)), return_exceptions=True
            ),
            STALL_GUARD * 5,
        )
    finally:
        await writer.close()
    assert all(isinstance(o, Unavailable) for o in outcomes)
    assert {len(attempt) for attempt in faulty.attempts} <= {1, 19, 20}
    assert recorder.events == []


async def test_the_first_message_after_the_database_recovers_is_stored_at_once(faulty):
    """No back-off survives an outage: once the database answers, the next message is acked."""
    recorder = Recorder()
    writer = BatchWriter(faulty, recorder.on_commit, timeout=TIMEOUT)
    writer.start()
    try:
        faulty.down = True
        with pytest.raises(Unavailable):
            await writer.submit(new("lost"), "c1")
        faulty.down = False
        result = await asyncio.wait_for(writer.submit(new("back"), "c1"), STALL_GUARD)
    finally:
        await writer.close()
    assert (result.message.seq, result.message.text) == (1, "back")


async def test_messages_queued_behind_a_hung_commit_are_withdrawn_in_time(faulty):
    """A database that never answers: the batch in flight and those queued behind it all get
    Unavailable, each within about the bound after it arrived."""
    faulty.hang = True
    recorder = Recorder()
    writer = BatchWriter(faulty, recorder.on_commit, timeout=TIMEOUT)
    writer.start()
    first = asyncio.ensure_future(writer.submit(new("in flight"), "c1"))
    await faulty.attempted.wait()
    queued = asyncio.ensure_future(writer.submit(new("queued"), "c1"))
    outcomes = await asyncio.wait_for(
        asyncio.gather(first, queued, return_exceptions=True), STALL_GUARD * 5
    )
    faulty.hang = False
    await writer.close()
    assert all(isinstance(o, Unavailable) for o in outcomes)


async def test_a_commit_whose_answer_was_lost_is_found_not_stored_twice(faulty, sql_store):
    """Retried after an uncertain commit, a batch finds what it stored: with or without a
    client_id, each message is stored once and published with its one seq."""
    faulty.lose_answer = True
    recorder = Recorder()
    writer = BatchWriter(faulty, recorder.on_commit, timeout=TIMEOUT * 10)
    writer.start()
    try:
        results = await asyncio.gather(
            writer.submit(new("keyed", client_id="k1"), "c1"), writer.submit(new("bare"), "c2")
        )
    finally:
        await writer.close()
    stored = (await sql_store.latest("general", 10)).messages
    assert [m.text for m in stored] == ["keyed", "bare"]
    assert [r.message.seq for r in results] == [1, 2]
    assert [(e.message.seq, e.origin) for e in recorder.events] == [(1, "c1"), (2, "c2")]
