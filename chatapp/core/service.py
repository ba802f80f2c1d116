"""The single choke point between the connections and the rest: validate, store, publish.

(Longer than most modules: it is the one place every request passes through.)

Handlers decode frames and call in here. The service checks access and
membership, hands messages to the group-commit writer, publishes what was
committed through the broker, and answers joins and history requests with
values: ``History`` pages and ``Delivery`` batches, which the connection
encodes and sends as its socket drains. It never writes to a socket.

The database is the truth: whatever a member missed (while joining, while
its backlog was full, or because a publish was lost) it is sent from the
store, in seq order, before it goes live again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Coroutine
from datetime import UTC, datetime
from functools import partial
from typing import Any, Protocol, TypeVar, cast

from chatapp.auth.tokens import Identity
from chatapp.broker import Broker
from chatapp.core import protocol
from chatapp.core.admission import Admission, Connected
from chatapp.core.hub import Delivery, Hub, Member
from chatapp.core.writer import BatchWriter
from chatapp.errors import AccessDenied, ChatError, ErrorCode, RequestError
from chatapp.limits import (
    DEFAULT_DB_TIMEOUT,
    DEFAULT_HISTORY_LIMIT,
    DEFAULT_MAX_ROOMS,
    DEFAULT_SEARCH_LIMIT,
    MAX_HISTORY_LIMIT,
    MAX_REPLAY,
    MAX_SEARCH_LIMIT,
    SEARCH_COUNT_CAP,
)
from chatapp.model import (
    Appended,
    History,
    MessageEvent,
    NewMessage,
    Page,
    RoomActivity,
    SearchResult,
    TypingEvent,
)
from chatapp.ops.metrics import Metrics
from chatapp.ops.retention import Retention
from chatapp.presence import Presence
from chatapp.presence.memory import LocalPresence
from chatapp.store import Store
from chatapp.tasks import cancel_and_wait

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Seconds between checks that every room with members here has had its newest messages
#: delivered (a publish lost between commit and broker is then fetched from the store).
HEAD_CHECK_INTERVAL = 2.0


def require_access(identity: Identity, room: str, ref: str | None = None) -> None:
    """The one room-access rule: the token's ``rooms`` claim must cover ``room``."""
    if not identity.may_use(room):
        raise AccessDenied(f"no access to room {room!r}", ref=ref)


class Connection(Member, Connected, Protocol):
    @property
    def identity(self) -> Identity: ...


class ChatService:
    def __init__(
        self,
        store: Store,
        hub: Hub,
        broker: Broker,
        metrics: Metrics,
        admission: Admission,
        *,
        max_rooms: int = DEFAULT_MAX_ROOMS,
        retention_days: float = 0,
        db_timeout: float = DEFAULT_DB_TIMEOUT,
        presence: Presence | None = None,
    ) -> None:
        self._store = store
        self._presence: Presence = presence or LocalPresence()
        self._hub = hub
        self._broker = broker
        self._metrics = metrics
        self.admission = admission
        self._max_rooms = max_rooms
        self._retention = Retention(store, retention_days) if retention_days > 0 else None
        self._writer = BatchWriter(
            store, broker.publish, on_batch=metrics.observe_commit, timeout=db_timeout
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self._filling: set[str] = set()
        self._reading: dict[tuple[str, str], asyncio.Future[Any]] = {}  # see _read_once
        hub.on_gap = self._gap
        metrics.count_connections(lambda: len(admission.open))

    async def start(self) -> None:
        await self._broker.start(self._hub.deliver, self._resync)
        await self._presence.start(self._hub.others_changed)
        self._writer.start()
        if self._retention is not None:
            self._retention.start()
        self._spawn(self._watch_heads())

    async def drain(self, timeout: float | None = None) -> None:
        """Refuse new messages; commit, deliver and acknowledge everything queued. After
        ``timeout`` seconds, senders still waiting are told ``unavailable`` instead."""
        await self._writer.close(timeout)

    async def close(self) -> None:
        """Release everything (after ``drain``)."""
        await cancel_and_wait(*self._tasks)
        if self._retention is not None:
            await self._retention.close()
        await self._writer.close()
        await self._presence.close()
        await self._broker.close()
        await self._store.close()

    async def check(self) -> None:
        """Raise ``StoreError`` unless the database answers, is current and takes writes."""
        await self._store.ready()

    # --- connections and rooms -------------------------------------------

    def connect(self, conn: Connection) -> None:
        self.admission.add(conn)

    async def disconnect(self, conn: Connection) -> None:
        if not self.admission.remove(conn):
            return
        for room in self._hub.rooms_of(conn):
            await self.leave(conn, room)

    async def join(
        self, conn: Connection, room: str, since: int | None = None, limit: int | None = None
    ) -> AsyncGenerator[History | Delivery, None]:
        """What a joiner is sent, in order: its history, then what arrived meanwhile; once all
        of it has been taken, the member is live. No gap, no duplicate.

        Without ``since``: the newest page. With it: every message after
        ``since`` (up to MAX_REPLAY, page by page), or the newest page with
        ``has_more`` when more were missed than that.
        """
        require_access(conn.identity, room)
        rooms = self._hub.rooms_of(conn)
        if room not in rooms and len(rooms) >= self._max_rooms:
            raise RequestError(
                f"a connection may be in {self._max_rooms} rooms at most; leave one first",
                ErrorCode.TOO_MANY_ROOMS,
                room=room,
            )
        size = protocol.clamp_limit(limit, DEFAULT_HISTORY_LIMIT)
        self._hub.begin_join(conn, room)
        try:
            await self._broker.subscribe(room)
            known = self._hub.last_seq(room)
            if since is not None:
                head = await self._store.head(room)
            elif known is None:
                head = await self._read_once("head", room, lambda: self._store.head(room))
            else:
                head = known
            self._hub.set_head(room, head)
            cursor = head
            async for page, covered in self._history(room, head, since, size):
                yield History(room, page)
                cursor = covered
            async for delivery in self._catch_up(conn, room, cursor):
                yield delivery
        except BaseException:
            await self.leave(conn, room)  # no half-joined member left behind
            raise

    async def _read_once(self, what: str, room: str, read: Callable[[], Awaitable[T]]) -> T:
        """One read of ``what`` for ``room`` at a time: joiners that arrive while it is in
        flight share it (a burst of joins of a room the hub does not know yet read its head
        and newest page once, not once each). Every reader's subscription is active before
        it asks, so a read in flight is as good for it as its own. A joiner that gives up
        does not cancel the read for the others."""
        key = (what, room)
        pending = self._reading.get(key)
        if pending is None:
            pending = self._reading[key] = asyncio.ensure_future(read())
            pending.add_done_callback(partial(self._read_done, key))
        return cast(T, await asyncio.shield(pending))

    def _read_done(self, key: tuple[str, str], read: asyncio.Future[Any]) -> None:
        self._reading.pop(key, None)
        if not read.cancelled():
            read.exception()  # retrieved here too: every joiner may have gone

    async def _history(
        self, room: str, head: int, since: int | None, size: int
    ) -> AsyncIterator[tuple[Page, int]]:
        """A joiner's history pages, each with the newest seq it covers."""
        if since is None or since > head or head - since > MAX_REPLAY:
            page = self._newest_in_memory(room, size)
            if page is None:
                # One more than the page: the tail it starts can then serve the next joiners.
                stored = await self._read_once(
                    f"latest {size + 1}", room, lambda: self._store.latest(room, size + 1)
                )
                self._hub.remember(room, stored.messages)
                page = _newest(stored, size)
            yield page, page.messages[-1].seq if page.messages else (page.pruned_before or 1) - 1
            return
        cursor = since
        while True:
            missed = await self._store.after(room, cursor, size)
            gone: int | None = None
            if cursor == since:  # seq is gapless: a jump past since means retention deleted some
                if missed and missed[0].seq > since + 1:
                    gone = missed[0].seq
                elif not missed and since < head:
                    gone = head + 1
            cursor = missed[-1].seq if missed else cursor
            yield Page(missed, has_more=False, pruned_before=gone), cursor
            if len(missed) < size or cursor >= head:
                return

    def _newest_in_memory(self, room: str, size: int) -> Page | None:
        """The newest page from the hub's tail of the room, when it holds one more message
        than the page (so older ones exist) or the whole room, and retention cannot have
        deleted the oldest of them."""
        recent = self._hub.recent(room, size + 1)
        if recent is None:
            return None
        if (
            recent
            and self._retention is not None
            and not self._retention.keeps(recent[0].created_at)
        ):
            return None
        return _newest(Page(recent, has_more=False), size)

    async def catch_up(self, conn: Connection) -> AsyncGenerator[Delivery, None]:
        """What the member missed while its backlog was full, room by room, until it is live
        everywhere again."""
        while behind := self._hub.behind(conn):
            for room, cursor in behind.items():
                async for delivery in self._catch_up(conn, room, cursor):
                    yield delivery

    async def _catch_up(self, conn: Connection, room: str, cursor: int) -> AsyncIterator[Delivery]:
        while not self._hub.caught_up(conn, room, cursor):
            missed = await self._store.after(room, cursor, MAX_HISTORY_LIMIT)
            if missed:
                cursor = missed[-1].seq
                yield Delivery(room, [MessageEvent(m, "") for m in missed])
            else:  # the hub delivered more than is stored: retention deleted the rest
                cursor = max(cursor, self._hub.last_seq(room) or cursor)

    async def leave(self, conn: Connection, room: str) -> None:
        self._hub.leave(conn, room)
        if not self._hub.has_room(room):
            await self._broker.unsubscribe(room)

    # --- messages ------------------------------------------------------------

    async def post(self, conn: Connection, room: str, text: str, client_id: str | None) -> Appended:
        """Store a message and broadcast it; returns once it is durable."""
        stored = self.post_soon(conn, room, text, client_id)
        try:
            return await stored
        except ChatError as exc:
            exc.ref = client_id
            raise

    def post_soon(
        self, conn: Connection, room: str, text: str, client_id: str | None
    ) -> asyncio.Future[Appended]:
        """``post`` as a future: refusals raise at once, storing failures come through it."""
        self._require_member(conn, room, client_id)
        self._hub.typing_stopped(conn, room)
        message = NewMessage(
            room=room, user=conn.user, text=text, client_id=client_id, created_at=datetime.now(UTC)
        )
        self._metrics.received.inc()
        return self._writer.enqueue(message, conn.id)

    async def typing(self, conn: Connection, room: str) -> None:
        """Relay a typing notice; more than one a second per room, between messages, are dropped."""
        self._require_member(conn, room)
        if self._hub.typing_allowed(conn, room):
            await self._broker.publish([TypingEvent(room, conn.user, conn.id)])

    async def page(
        self, identity: Identity, room: str, before: int | None, limit: int | None
    ) -> Page:
        """One page of scrollback: the newest messages, or those before ``before``."""
        require_access(identity, room)
        size = protocol.clamp_limit(limit, DEFAULT_HISTORY_LIMIT)
        if before is None:
            return await self._store.latest(room, size)
        return await self._store.before(room, before, size)

    async def search(
        self, identity: Identity, query: str, room: str | None, limit: int | None
    ) -> SearchResult:
        """Messages matching ``query``, best first, and how many match in all (up to
        SEARCH_COUNT_CAP): in ``room``, or in every room ``identity`` may use."""
        size = min(limit or DEFAULT_SEARCH_LIMIT, MAX_SEARCH_LIMIT)
        rooms: list[str] | None = None
        if room is not None:
            require_access(identity, room)
            rooms = [room]
        elif identity.rooms is not None:
            rooms = [name for name in await self._store.room_names() if identity.may_use(name)]
        hits = await self._store.search(query, rooms, size)
        counted = await self._store.count_matches(query, rooms, SEARCH_COUNT_CAP + 1)
        return SearchResult(hits, min(counted, SEARCH_COUNT_CAP), counted > SEARCH_COUNT_CAP)

    async def directory(self, identity: Identity) -> list[tuple[RoomActivity, int]]:
        """The rooms ``identity`` may use, each with its connections present in this process:
        rooms with messages by newest activity, then rooms that only have people in them."""
        present = self._hub.occupancy()
        stored = await self._store.room_activity()
        known = {room.name for room in stored}
        empty = [RoomActivity(name, 0, None) for name in sorted(present) if name not in known]
        return [
            (room, present.get(room.name, 0))
            for room in [*stored, *empty]
            if identity.may_use(room.name)
        ]

    def _require_member(self, conn: Connection, room: str, ref: str | None = None) -> None:
        require_access(conn.identity, room, ref)
        if not self._hub.is_member(conn, room):
            raise RequestError(f"join room {room!r} first", ErrorCode.NOT_JOINED, ref=ref)

    # --- what the broker did not bring -----------------------------------------

    def _gap(self, room: str, after: int) -> None:
        """The hub holds messages after a gap: fetch the missing ones from the store."""
        if room not in self._filling:
            self._filling.add(room)
            self._metrics.gap_fills.inc()
            self._spawn(self._fill(room, after))

    async def _fill(self, room: str, after: int) -> None:
        try:
            missed = await self._store.after(room, after, MAX_HISTORY_LIMIT)
        except ChatError as exc:
            log.warning("cannot fetch missed messages of %r yet: %s", room, exc.reason)
            missed = None
        finally:
            self._filling.discard(room)
        if missed is None:
            await asyncio.sleep(HEAD_CHECK_INTERVAL)
            last = self._hub.last_seq(room)
            if last is not None:
                self._gap(room, last)  # the database is back, or the next check catches it
            return
        self._hub.gap_filled(room, [MessageEvent(m, "") for m in missed])
        last = self._hub.last_seq(room)
        if len(missed) == MAX_HISTORY_LIMIT and last is not None:
            self._gap(room, last)

    async def _watch_heads(self) -> None:
        """Every HEAD_CHECK_INTERVAL: ``_check_heads``."""
        while True:
            await asyncio.sleep(HEAD_CHECK_INTERVAL)
            await self._check_heads()

    def _resync(self) -> None:
        """The broker may have lost events (it reconnected): check every room now."""
        self._metrics.broker_resyncs.inc()
        self._spawn(self._check_heads())

    async def _check_heads(self) -> None:
        """Rooms with members here whose newest stored seq is ahead of what was delivered
        here get the rest from the store."""
        known = {room: seq for room, seq in self._hub.active_rooms().items() if seq is not None}
        if not known:
            return
        try:
            heads = await self._store.heads(list(known))
        except ChatError as exc:
            log.warning("checking rooms for missed messages failed: %s", exc.reason)
            return
        for room, head in heads.items():
            last = self._hub.last_seq(room)
            if last is not None and head > last:
                self._gap(room, last)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _newest(page: Page, size: int) -> Page:
    """The newest ``size`` messages of a page read one longer to learn whether older exist."""
    if len(page.messages) <= size:
        return page
    return Page(page.messages[-size:], has_more=True)
