"""The single choke point between the sockets and the rest: validate, store, publish.

Handlers decode frames and call in here; the service checks membership,
hands messages to the group-commit writer, publishes what was committed
through the broker, and answers joins and history requests from the store.
Frames go out through ``Connection.send`` as complete WebSocket frames.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Protocol

from chatapp.auth.tokens import Identity
from chatapp.broker import Broker
from chatapp.core import protocol
from chatapp.core.hub import Hub, Member
from chatapp.core.writer import BatchWriter
from chatapp.errors import AccessDenied, ErrorCode, RequestError, Unavailable
from chatapp.limits import (
    DEFAULT_HISTORY_LIMIT,
    DEFAULT_SEARCH_LIMIT,
    MAX_REPLAY,
    MAX_SEARCH_LIMIT,
    SEARCH_COUNT_CAP,
)
from chatapp.model import (
    Appended,
    MessageEvent,
    NewMessage,
    Page,
    RoomActivity,
    SearchResult,
    TypingEvent,
)
from chatapp.ops.metrics import Metrics
from chatapp.ops.retention import Retention
from chatapp.store import Store
from chatapp.web.wsframe import text_frame


def require_access(identity: Identity, room: str, ref: str | None = None) -> None:
    """The one room-access rule: the token's ``rooms`` claim must cover ``room``."""
    if not identity.may_use(room):
        raise AccessDenied(f"no access to room {room!r}", ref=ref)


class Connection(Member, Protocol):
    @property
    def identity(self) -> Identity: ...

    @property
    def address(self) -> str:
        """The client's IP address ("" when unknown)."""
        ...

    def close(self, code: int | None = None, reason: str | None = None) -> None: ...


class ChatService:
    def __init__(
        self,
        store: Store,
        hub: Hub,
        broker: Broker,
        metrics: Metrics,
        *,
        max_per_user: int = 0,
        max_per_address: int = 0,
        retention_days: float = 0,
    ) -> None:
        self._store = store
        self._retention = Retention(store, retention_days) if retention_days > 0 else None
        self._hub = hub
        self._broker = broker
        self._metrics = metrics
        self._writer = BatchWriter(store, self._publish, on_batch=metrics.observe_commit)
        self.connections: set[Connection] = set()
        self._max_per_user = max_per_user
        self._max_per_address = max_per_address
        self._per_user: Counter[str] = Counter()
        self._per_address: Counter[str] = Counter()
        self._none_open = asyncio.Event()
        self._none_open.set()
        metrics.count_connections(lambda: len(self.connections))

    def start(self) -> None:
        self._writer.start()
        if self._retention is not None:
            self._retention.start()

    async def drain(self) -> None:
        """Refuse new messages; commit, deliver and acknowledge everything queued."""
        await self._writer.close()

    async def close(self) -> None:
        """Release the broker and the store (after ``drain``)."""
        if self._retention is not None:
            await self._retention.close()
        await self._writer.close()
        await self._broker.close()
        await self._store.close()

    async def check(self) -> None:
        """Raise ``StoreError`` unless the database answers and its schema is current."""
        await self._store.ready()

    async def all_closed(self) -> None:
        """Return once no connection is open."""
        await self._none_open.wait()

    # --- connections and rooms -------------------------------------------

    def admission(self, user_id: str, address: str | None) -> str | None:
        """Why a new connection must be refused (a cap is reached), or None.

        ``address`` None exempts the connection from the per-address cap.
        """
        if self._max_per_user and self._per_user[user_id] >= self._max_per_user:
            return f"this user already has {self._max_per_user} connections"
        if (
            address
            and self._max_per_address
            and (self._per_address[address] >= self._max_per_address)
        ):
            return f"this address already has {self._max_per_address} connections"
        return None

    def connect(self, conn: Connection) -> None:
        self.connections.add(conn)
        self._none_open.clear()
        self._per_user[conn.user.id] += 1
        self._per_address[conn.address] += 1

    async def disconnect(self, conn: Connection) -> None:
        if conn not in self.connections:
            return
        self.connections.discard(conn)
        self._per_user[conn.user.id] -= 1
        self._per_address[conn.address] -= 1
        if not self.connections:
            self._none_open.set()
        for room in self._hub.rooms_of(conn):
            await self.leave(conn, room)

    async def join(
        self, conn: Connection, room: str, since: int | None = None, limit: int | None = None
    ) -> None:
        """Send the room's history to ``conn``, then live traffic, with no gap or duplicate.

        Without ``since``: the newest page. With it: every message after
        ``since`` (up to MAX_REPLAY, in pages), or the newest page with
        ``has_more`` when more were missed than that.
        """
        require_access(conn.identity, room)
        page_size = protocol.clamp_limit(limit, DEFAULT_HISTORY_LIMIT)
        self._hub.begin_join(conn, room)
        try:
            await self._broker.subscribe(room)
            replay = await self._replay(room, since, page_size) if since is not None else None
            if replay is None:
                newest = await self._store.latest(room, page_size)
                replay = [newest], newest.messages[-1].seq if newest.messages else 0
        except BaseException:
            await self.leave(conn, room)  # no half-joined member buffering events forever
            raise
        pages, floor = replay
        if not self._hub.is_member(conn, room):
            return  # left or disconnected while the history was read
        conn.send(self._history_frames(conn, room, pages))
        self._hub.finish_join(conn, room, floor)

    async def _replay(self, room: str, since: int, page_size: int) -> tuple[list[Page], int] | None:
        """The pages after ``since`` and the last seq they cover.

        None when the newest page should be sent instead: more than MAX_REPLAY
        were missed, or ``since`` lies beyond the room's newest message.
        """
        missed = await self._store.after(room, since, MAX_REPLAY + 1)
        if len(missed) > MAX_REPLAY:
            return None
        if missed:
            # seq is gapless: a first seq above since + 1 means the ones between were pruned
            gone = missed[0].seq if missed[0].seq > since + 1 else None
            pages = [
                Page(missed[i : i + page_size], has_more=False, pruned_before=None if i else gone)
                for i in range(0, len(missed), page_size)
            ]
            return pages, missed[-1].seq
        newest = await self._store.latest(room, 1)
        # with every message pruned, the newest seq is the one before pruned_before
        last = newest.messages[-1].seq if newest.messages else (newest.pruned_before or 1) - 1
        if last < since:
            return None
        gone = newest.pruned_before if not newest.messages and since < last else None
        return [Page([], has_more=False, pruned_before=gone)], since

    def _history_frames(self, conn: Connection, room: str, pages: Sequence[Page]) -> bytes:
        if conn.text_mode:
            return b"".join(
                text_frame(protocol.text_line(m)) for page in pages for m in page.messages
            )
        return b"".join(
            text_frame(
                protocol.encode_history(room, page.messages, page.has_more, page.pruned_before)
            )
            for page in pages
        )

    async def leave(self, conn: Connection, room: str) -> None:
        if self._hub.leave(conn, room):
            await self._broker.unsubscribe(room)

    # --- messages ------------------------------------------------------------

    async def post(self, conn: Connection, room: str, text: str, client_id: str | None) -> Appended:
        """Store a message and broadcast it; returns once it is durable."""
        self._require_member(conn, room, client_id)
        message = NewMessage(
            room=room, user=conn.user, text=text, client_id=client_id, created_at=datetime.now(UTC)
        )
        self._metrics.received.inc()
        try:
            result = await self._writer.submit(message, conn.id)
        except Unavailable as exc:
            exc.ref = client_id
            raise
        if result.duplicate:
            self._metrics.duplicates.inc()
        return result

    async def typing(self, conn: Connection, room: str) -> None:
        self._require_member(conn, room)
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

    async def history(self, conn: Connection, room: str, before: int, limit: int | None) -> None:
        page = await self.page(conn.identity, room, before, limit)
        conn.send(self._history_frames(conn, room, [page]))

    def _require_member(self, conn: Connection, room: str, ref: str | None = None) -> None:
        require_access(conn.identity, room, ref)
        if not self._hub.is_member(conn, room):
            raise RequestError(f"join room {room!r} first", ErrorCode.NOT_JOINED, ref=ref)

    async def _publish(self, events: Sequence[MessageEvent]) -> None:
        self._metrics.stored.inc(len(events))
        await self._broker.publish(events)
