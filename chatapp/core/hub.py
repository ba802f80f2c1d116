"""This process's rooms and the connections in them; fan-out of events to sockets.

The hub never awaits a client. Each event is encoded once per broadcast into
a complete WebSocket frame, and the frames of one delivered batch go to each
member in a single write. A member's ``send`` queues bytes without blocking;
the member itself decides when it is too far behind and disconnects.

Joining is race-free: a member is registered (and buffers live events)
*before* its history is read, then ``finish_join`` replays the buffered
events newer than the history and drops the rest, so the member sees history
then live traffic with no gap and no duplicate.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from chatapp.core import protocol
from chatapp.model import Event, MessageEvent, TypingEvent, User
from chatapp.ops.metrics import Metrics
from chatapp.web.wsframe import text_frame

#: Presence changes are coalesced: one ``presence`` frame at most per this delay,
#: plus a little per member, so a thousand joins cost a few frames, not a million.
PRESENCE_DELAY = 0.05
PRESENCE_DELAY_PER_MEMBER = 0.002
#: A ``presence`` frame lists at most this many users; ``count`` always gives the total.
PRESENCE_MAX_USERS = 100


class Member(Protocol):
    """A connection as the hub sees it."""

    @property
    def id(self) -> str: ...

    @property
    def user(self) -> User: ...

    @property
    def text_mode(self) -> bool:
        """Plain-text client: gets ``"name: text"`` lines, not its own messages, no other events."""
        ...

    def send(self, frames: bytes) -> None:
        """Queue complete WebSocket frames; never blocks and never calls back into the hub."""
        ...


@dataclass(slots=True)
class _Joining:
    buffer: list[Event] | None = field(default_factory=list)  # while history is read
    floor: int = 0  # after history: messages up to here were in it


@dataclass(slots=True)
class _Room:
    name: str
    members: dict[Member, None] = field(default_factory=dict)  # JSON, fully joined
    text_members: dict[Member, None] = field(default_factory=dict)
    joining: dict[Member, _Joining] = field(default_factory=dict)
    last_seq: int = 0  # newest seq this hub has delivered
    presence_timer: asyncio.TimerHandle | None = None

    def present(self) -> list[Member]:
        waiting = [m for m, j in self.joining.items() if j.buffer is None]
        return [*self.members, *self.text_members, *waiting]


class Hub:
    def __init__(self, metrics: Metrics | None = None) -> None:
        self._metrics = metrics
        self._rooms: dict[str, _Room] = {}
        self._memberships: dict[Member, set[str]] = {}

    # --- membership --------------------------------------------------------

    def is_member(self, member: Member, room: str) -> bool:
        return room in self._memberships.get(member, ())

    def rooms_of(self, member: Member) -> set[str]:
        return set(self._memberships.get(member, ()))

    def begin_join(self, member: Member, room: str) -> None:
        """Register the member; live events are held for it until ``finish_join``."""
        state = self._rooms.get(room)
        if state is None:
            state = self._rooms[room] = _Room(room)
        self._detach(state, member)
        state.joining[member] = _Joining()
        self._memberships.setdefault(member, set()).add(room)

    def finish_join(self, member: Member, room: str, history_seq: int) -> None:
        """The member has been sent history up to ``history_seq``; switch it to live."""
        state = self._rooms.get(room)
        joining = state.joining.get(member) if state else None
        if state is None or joining is None or joining.buffer is None:
            return  # left (or disconnected) while the history was read
        held, joining.buffer, joining.floor = joining.buffer, None, history_seq
        if held:
            self._send_filtered(member, state, held, history_seq)
        self._promote_if_caught_up(state, member, joining)
        self._presence_changed(state)

    def leave(self, member: Member, room: str) -> bool:
        """Remove the member from a room; true if no local member is left in it."""
        rooms = self._memberships.get(member)
        if rooms is not None:
            rooms.discard(room)
            if not rooms:
                del self._memberships[member]
        state = self._rooms.get(room)
        if state is None:
            return True
        self._detach(state, member)
        if state.members or state.text_members or state.joining:
            self._presence_changed(state)
            return False
        if state.presence_timer is not None:
            state.presence_timer.cancel()
        del self._rooms[room]
        return True

    def occupancy(self) -> dict[str, int]:
        """How many connections are present in each room of this process that has any."""
        counts = {name: len(state.present()) for name, state in self._rooms.items()}
        return {name: count for name, count in counts.items() if count}

    def presence(self, room: str) -> list[User]:
        """Distinct users present in the room, sorted by name."""
        state = self._rooms.get(room)
        if state is None:
            return []
        users = {m.user.id: m.user for m in state.present()}
        return sorted(users.values(), key=lambda u: (u.name.casefold(), u.id))

    def _detach(self, state: _Room, member: Member) -> None:
        state.members.pop(member, None)
        state.text_members.pop(member, None)
        state.joining.pop(member, None)

    def _promote_if_caught_up(self, state: _Room, member: Member, joining: _Joining) -> None:
        if state.last_seq >= joining.floor:
            del state.joining[member]
            if member.text_mode:
                state.text_members[member] = None
            else:
                state.members[member] = None

    # --- delivery ------------------------------------------------------------

    def deliver(self, events: Sequence[Event]) -> None:
        """Send events (in order) to this process's members of their rooms."""
        started = time.perf_counter()
        by_room: dict[str, list[Event]] = {}
        for event in events:
            by_room.setdefault(event.room, []).append(event)
        delivered = 0
        for room, room_events in by_room.items():
            state = self._rooms.get(room)
            if state is not None:
                delivered += self._deliver_room(state, room_events)
        if self._metrics is not None:
            self._metrics.delivered.inc(delivered)
            self._metrics.fanout_seconds.observe(time.perf_counter() - started)

    def _deliver_room(self, state: _Room, events: list[Event]) -> int:
        """Deliver one room's events; returns how many messages went to members."""
        for event in events:
            if isinstance(event, MessageEvent) and event.message.seq > state.last_seq:
                state.last_seq = event.message.seq
        if state.members:
            frames = [_json_frame(e) for e in events]
            everything = b"".join(frames)
            typists = {e.origin for e in events if isinstance(e, TypingEvent)}
            for member in tuple(state.members):
                if member.id in typists:  # typing goes to the others only
                    member.send(b"".join(_not_own_typing(member, events, frames)))
                else:
                    member.send(everything)
        if state.text_members:
            messages = [e for e in events if isinstance(e, MessageEvent)]
            lines = [text_frame(protocol.text_line(e.message)) for e in messages]
            for member in tuple(state.text_members):
                own = (f for e, f in zip(messages, lines, strict=True) if e.origin != member.id)
                member.send(b"".join(own))
        for member, joining in tuple(state.joining.items()):
            if joining.buffer is not None:
                joining.buffer.extend(events)
            else:
                self._send_filtered(member, state, events, joining.floor)
                self._promote_if_caught_up(state, member, joining)
        message_count = sum(isinstance(e, MessageEvent) for e in events)
        return message_count * (len(state.members) + len(state.text_members))

    def _send_filtered(
        self, member: Member, state: _Room, events: Sequence[Event], floor: int
    ) -> None:
        """Send the events the member has not had: messages above ``floor``, others' typing."""
        fresh = [
            e
            for e in events
            if (e.message.seq > floor if isinstance(e, MessageEvent) else e.origin != member.id)
        ]
        if member.text_mode:
            payload = b"".join(
                text_frame(protocol.text_line(e.message))
                for e in fresh
                if isinstance(e, MessageEvent) and e.origin != member.id
            )
        else:
            payload = b"".join(_json_frame(e) for e in fresh)
        if payload:
            member.send(payload)

    # --- presence ------------------------------------------------------------

    def _presence_changed(self, state: _Room) -> None:
        if state.presence_timer is not None:
            return
        delay = PRESENCE_DELAY + PRESENCE_DELAY_PER_MEMBER * len(state.members)
        state.presence_timer = asyncio.get_running_loop().call_later(
            delay, self._send_presence, state
        )

    def _send_presence(self, state: _Room) -> None:
        state.presence_timer = None
        users = self.presence(state.name)
        frame = text_frame(
            protocol.encode_presence(state.name, users[:PRESENCE_MAX_USERS], len(users))
        )
        for member in state.present():
            if not member.text_mode:
                member.send(frame)


def _json_frame(event: Event) -> bytes:
    if isinstance(event, MessageEvent):
        return text_frame(protocol.encode_message(event.message))
    return text_frame(protocol.encode_typing(event.room, event.user))


def _not_own_typing(member: Member, events: list[Event], frames: list[bytes]) -> list[bytes]:
    return [
        frame
        for event, frame in zip(events, frames, strict=True)
        if not (isinstance(event, TypingEvent) and event.origin == member.id)
    ]
