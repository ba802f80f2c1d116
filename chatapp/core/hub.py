"""This process's rooms and their members; events in seq order, fanned out to members.

(Longer than most modules: a room's order, members' states, tail and presence
change together in one synchronous step, and one class keeps them consistent.)

The hub never awaits a client and knows no wire format. It hands each
member a ``Delivery`` (one room's events of one broadcast); members of one
kind encode it once between them through the delivery's cache.

Order. Brokers may hand over a room's messages late, twice, or out of
order (several processes publish; a publish can be lost). The hub delivers
each room's messages strictly in seq order without gaps: a duplicate is
dropped, a message ahead of a gap is held, and ``on_gap`` asks for the
missing ones from the database (the truth) after ``GAP_HOLD`` seconds.

A member is, per room, in one of four states:
- *joining*: skipped by live delivery while the service sends it the room's
  history from the store, up to its ``cursor``, and calls ``caught_up``;
- *live*: every event is pushed to it;
- *filtering*: live, but the history it was sent reaches past what the hub
  has delivered, so messages up to its ``floor`` are skipped;
- *behind*: its backlog was full (``push`` returned False), so it is
  skipped like a joiner, from its ``cursor`` on, until the service has
  brought it up to date from the store. A client that reads slowly is
  never buffered without end and never loses a message: it gets them from
  the database once it has room for them.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from chatapp.core.roster import Roster
from chatapp.limits import DEFAULT_HISTORY_LIMIT
from chatapp.model import (
    Event,
    MessageEvent,
    PresenceEvent,
    RoomEvent,
    StoredMessage,
    TypingEvent,
    User,
)
from chatapp.ops.metrics import Metrics
from chatapp.presence import Presence
from chatapp.presence.memory import LocalPresence

#: Presence changes are coalesced: one ``presence`` frame at most per this delay,
#: plus a little per member, so a thousand joins cost a few frames, not a million.
PRESENCE_DELAY = 0.05
PRESENCE_DELAY_PER_MEMBER = 0.002
#: A ``presence`` frame lists at most this many users; ``count`` always gives the total.
PRESENCE_MAX_USERS = 100
#: Seconds a message ahead of a gap waits for the missing ones before they are fetched.
GAP_HOLD = 0.2
#: Messages of each active room kept in memory for joiners: the default page and one more
#: (which tells whether older messages exist).
TAIL = DEFAULT_HISTORY_LIMIT + 1
#: Least seconds between two typing notices of one member in one room.
TYPING_INTERVAL = 1.0


@dataclass(slots=True, eq=False)
class Delivery:
    """One room's events of one broadcast, as its members receive them.

    ``encoded`` is for the members' encoders: what one of them made of these
    events, the next member of the same kind reuses.
    """

    room: str
    events: Sequence[RoomEvent]
    encoded: dict[object, Any] = field(default_factory=dict)


class Member(Protocol):
    """A connection as the hub sees it."""

    @property
    def id(self) -> str: ...

    @property
    def user(self) -> User: ...

    def push(self, delivery: Delivery) -> bool:
        """Queue the delivery without blocking; False, queuing nothing, when the member's
        backlog is over its bound. Never calls back into the hub."""
        ...


@dataclass(slots=True, eq=False)
class _Room:
    name: str
    live: dict[Member, None] = field(default_factory=dict)
    filtering: dict[Member, int] = field(default_factory=dict)  # member -> floor
    joining: dict[Member, int | None] = field(default_factory=dict)  # member -> cursor
    behind: dict[Member, int] = field(default_factory=dict)  # member -> cursor
    #: Newest seq delivered in order; None until the room's head is known (``set_head``).
    last_seq: int | None = None
    held: dict[int, MessageEvent] = field(default_factory=dict)
    gap_timer: asyncio.TimerHandle | None = None
    presence_timer: asyncio.TimerHandle | None = None
    typed_at: dict[Member, float] = field(default_factory=dict)
    #: The newest messages delivered, contiguous up to ``last_seq`` (empty until known).
    tail: deque[StoredMessage] = field(default_factory=lambda: deque(maxlen=TAIL))
    #: The users of the present members (see ``is_present``), in name order.
    roster: Roster = field(default_factory=Roster)
    #: The presence event for the roster as it stands, encoded once; None once it changed.
    presence: Delivery | None = None

    def is_present(self, member: Member) -> bool:
        """Whether the member has been sent some history: a joiner is listed once it has
        the room."""
        return (
            member in self.live
            or member in self.filtering
            or member in self.behind
            or self.joining.get(member) is not None
        )

    def present_count(self) -> int:
        joined = sum(1 for cursor in self.joining.values() if cursor is not None)
        return len(self.live) + len(self.filtering) + len(self.behind) + joined

    def history_sent(self, member: Member, cursor: int) -> None:
        """The joining member has been sent the room up to ``cursor``: it is present now."""
        if self.joining[member] is None:
            self.roster.add(member.user)
            self.presence = None
        self.joining[member] = cursor

    def has_members(self) -> bool:
        return bool(self.live or self.filtering or self.joining or self.behind)

    def drop(self, member: Member) -> None:
        if self.is_present(member):
            self.roster.remove(member.user)
            self.presence = None
        self.live.pop(member, None)
        self.filtering.pop(member, None)
        self.joining.pop(member, None)
        self.behind.pop(member, None)
        self.typed_at.pop(member, None)


class Hub:
    def __init__(self, metrics: Metrics | None = None, presence: Presence | None = None) -> None:
        self._metrics = metrics
        #: Who is present on the other processes; told who is present here.
        self._elsewhere: Presence = presence or LocalPresence()
        #: Called with a room and its last delivered seq when messages after it are missing.
        self.on_gap: Callable[[str, int], None] = lambda room, after: None
        self._rooms: dict[str, _Room] = {}
        self._memberships: dict[Member, set[str]] = {}

    # --- membership --------------------------------------------------------

    def is_member(self, member: Member, room: str) -> bool:
        return room in self._memberships.get(member, ())

    def rooms_of(self, member: Member) -> set[str]:
        return set(self._memberships.get(member, ()))

    def active_rooms(self) -> dict[str, int | None]:
        """Every room with a member here, and the newest seq delivered in it."""
        return {name: state.last_seq for name, state in self._rooms.items()}

    def begin_join(self, member: Member, room: str) -> None:
        """Register the member as joining, nothing sent yet. Until the room's head is known
        here (``set_head``), its messages are held."""
        state = self._rooms.get(room)
        if state is None:
            state = self._rooms[room] = _Room(room)
        state.drop(member)
        state.joining[member] = None
        self._memberships.setdefault(member, set()).add(room)

    def set_head(self, room: str, head: int) -> None:
        """The room's newest stored seq, read once this process's subscription to the room was
        active: delivery continues after it. Held messages above it are released; once the
        head is known, later calls are ignored."""
        state = self._rooms.get(room)
        if state is None or state.last_seq is not None:
            return
        state.last_seq = head
        held = sorted(state.held.values(), key=lambda e: e.message.seq)
        state.held.clear()
        self._offer(state, held)

    def head_known(self, room: str) -> bool:
        state = self._rooms.get(room)
        return state is not None and state.last_seq is not None

    def recent(self, room: str, count: int) -> list[StoredMessage] | None:
        """The room's ``count`` newest delivered messages from memory, fewer when memory holds
        the room's every message (from seq 1, or none at all), else None (a joiner then reads
        them from the store)."""
        state = self._rooms.get(room)
        if state is None:
            return None
        whole_room = state.last_seq == 0 or (state.tail and state.tail[0].seq == 1)
        if len(state.tail) < count and not whole_room:
            return None
        return list(itertools.islice(state.tail, max(0, len(state.tail) - count), None))

    def remember(self, room: str, messages: Sequence[StoredMessage]) -> None:
        """Messages read from the store that end where delivery stands: they start the room's
        tail, so the next joiners need not read them again."""
        state = self._rooms.get(room)
        if (
            state is None
            or state.tail
            or not messages
            or messages[-1].seq != state.last_seq
            or messages[-1].seq - messages[0].seq != len(messages) - 1
        ):
            return
        state.tail.extend(messages)

    def last_seq(self, room: str) -> int | None:
        """The newest seq delivered in the room here (None: not known yet)."""
        state = self._rooms.get(room)
        return state.last_seq if state is not None else None

    def behind(self, member: Member) -> dict[str, int]:
        """The rooms in which the member fell behind since it was live, and its cursor in each."""
        found = {}
        for name in self._memberships.get(member, ()):
            cursor = self._rooms[name].behind.get(member)
            if cursor is not None:
                found[name] = cursor
        return found

    def caught_up(self, member: Member, room: str, seq: int) -> bool:
        """The joining (or behind) member has been sent everything of ``room`` up to ``seq``.

        True when nothing more is to be sent: the member is live now (filtering
        up to ``seq`` where the hub lags behind what it was sent) and gets the
        room's presence, or it is no longer joining or behind there (it left,
        or joined again). False when the hub has delivered more than ``seq``.
        """
        state = self._rooms.get(room)
        if state is not None and member in state.joining:
            state.history_sent(member, seq)
        elif state is not None and member in state.behind:
            state.behind[member] = seq
        else:
            return True
        if state.last_seq is None or state.last_seq > seq:
            return False
        state.joining.pop(member, None)
        state.behind.pop(member, None)
        if state.last_seq == seq:
            state.live[member] = None
        else:
            state.filtering[member] = seq
        member.push(self._presence(state))
        self._presence_changed(state)
        return True

    def leave(self, member: Member, room: str) -> None:
        """Remove the member from a room; a room left without members here is forgotten."""
        rooms = self._memberships.get(member)
        if rooms is not None:
            rooms.discard(room)
            if not rooms:
                del self._memberships[member]
        state = self._rooms.get(room)
        if state is None:
            return
        state.drop(member)
        if state.has_members():
            self._presence_changed(state)
            return
        for timer in (state.presence_timer, state.gap_timer):
            if timer is not None:
                timer.cancel()
        del self._rooms[room]
        self._elsewhere.update(room, ())

    def has_room(self, room: str) -> bool:
        """Whether the room has members here (else its broker subscription can go)."""
        return room in self._rooms

    def typing_allowed(self, member: Member, room: str) -> bool:
        """At most one typing notice per member and room every TYPING_INTERVAL seconds."""
        state = self._rooms.get(room)
        if state is None:
            return False
        now = time.monotonic()
        if now - state.typed_at.get(member, -TYPING_INTERVAL) < TYPING_INTERVAL:
            return False
        state.typed_at[member] = now
        return True

    def typing_stopped(self, member: Member, room: str) -> None:
        """The member sent a message: clients clear its typing line, so its next notice is news."""
        state = self._rooms.get(room)
        if state is not None:
            state.typed_at.pop(member, None)

    def occupancy(self) -> dict[str, int]:
        """How many connections are present in each room of this process that has any."""
        counts = {name: state.present_count() for name, state in self._rooms.items()}
        return {name: count for name, count in counts.items() if count}

    def presence(self, room: str) -> list[User]:
        """Distinct users present in the room, here and on other processes, sorted by name."""
        state = self._rooms.get(room)
        return list(self._present(state, None)[0]) if state is not None else []

    def others_changed(self, room: str) -> None:
        """Who is present in the room on other processes changed: tell the members here."""
        state = self._rooms.get(room)
        if state is not None:
            state.presence = None
            self._presence_changed(state)

    # --- delivery ------------------------------------------------------------

    def deliver(self, events: Sequence[Event]) -> None:
        """Take events from the broker: each room's messages go out in seq order, once."""
        started = time.perf_counter()
        by_room: dict[str, list[Event]] = {}
        for event in events:
            by_room.setdefault(event.room, []).append(event)
        delivered = 0
        for room, room_events in by_room.items():
            state = self._rooms.get(room)
            if state is not None:
                delivered += self._offer(state, room_events)
        if self._metrics is not None:
            self._metrics.delivered.inc(delivered)
            self._metrics.fanout_seconds.observe(time.perf_counter() - started)

    def _offer(self, state: _Room, events: Iterable[Event]) -> int:
        """Put a room's events in order (holding what follows a gap) and fan out what is ready;
        returns how many messages went to members."""
        ready: list[RoomEvent] = []
        for event in events:
            if isinstance(event, TypingEvent):
                ready.append(event)
                continue
            seq = event.message.seq
            if state.last_seq is None or seq > state.last_seq + 1:
                state.held[seq] = event
                continue
            if seq <= state.last_seq:
                continue  # delivered already: a republished or refetched message
            ready.append(event)
            state.last_seq = seq
            state.tail.append(event.message)
            while (following := state.held.pop(state.last_seq + 1, None)) is not None:
                ready.append(following)
                state.last_seq += 1
                state.tail.append(following.message)
        for seq in [s for s in state.held if state.last_seq is not None and s <= state.last_seq]:
            del state.held[seq]
        if state.held and state.last_seq is not None and state.gap_timer is None:
            state.gap_timer = asyncio.get_running_loop().call_later(
                GAP_HOLD, self._gap_timed_out, state
            )
        return self._fan_out(state, ready) if ready else 0

    def _gap_timed_out(self, state: _Room) -> None:
        state.gap_timer = None
        if state.held and state.last_seq is not None:
            self.on_gap(state.name, state.last_seq)

    def gap_filled(self, room: str, events: Sequence[MessageEvent]) -> None:
        """Messages read back from the database after ``on_gap``: delivered in order. If the
        missing ones are gone from the database (retention), delivery resumes after them."""
        state = self._rooms.get(room)
        if state is None or state.last_seq is None:
            return
        if events and events[0].message.seq > state.last_seq + 1:
            state.last_seq = events[0].message.seq - 1
            state.tail.clear()  # no longer contiguous
        self._offer(state, events)

    def _fan_out(self, state: _Room, events: list[RoomEvent]) -> int:
        first = next((e.message.seq for e in events if isinstance(e, MessageEvent)), None)
        before = first - 1 if first is not None else state.last_seq or 0  # all a refuser has had
        delivery = Delivery(state.name, events)
        for member in tuple(state.live):
            if not member.push(delivery):
                self._fall_behind(state, member, before)
        for member, floor in tuple(state.filtering.items()):
            fresh = [e for e in events if not _at_or_below(e, floor)]
            if fresh and not member.push(Delivery(state.name, fresh)):
                self._fall_behind(state, member, max(floor, before))
            elif state.last_seq is not None and state.last_seq >= floor:
                del state.filtering[member]
                state.live[member] = None
        messages = sum(isinstance(e, MessageEvent) for e in events)
        return messages * (len(state.live) + len(state.filtering))

    def _fall_behind(self, state: _Room, member: Member, cursor: int) -> None:
        """The member's backlog is full: it gets the rest from the store once it has room."""
        state.live.pop(member, None)
        state.filtering.pop(member, None)
        state.behind[member] = cursor

    # --- presence ------------------------------------------------------------

    def _presence_changed(self, state: _Room) -> None:
        if state.presence_timer is not None:
            return
        delay = PRESENCE_DELAY + PRESENCE_DELAY_PER_MEMBER * len(state.live)
        state.presence_timer = asyncio.get_running_loop().call_later(
            delay, self._send_presence, state
        )

    def _send_presence(self, state: _Room) -> None:
        state.presence_timer = None
        self._elsewhere.update(state.name, state.roster.first(len(state.roster)))
        delivery = self._presence(state)
        for member in (*state.live, *state.filtering):
            member.push(delivery)  # a full backlog misses it; it gets presence when live again

    def _presence(self, state: _Room) -> Delivery:
        """The room's presence as it stands: one delivery, encoded once for all who get it."""
        if state.presence is None:
            users, count = self._present(state, PRESENCE_MAX_USERS)
            state.presence = Delivery(state.name, [PresenceEvent(state.name, users, count)])
        return state.presence

    def _present(self, state: _Room, limit: int | None) -> tuple[tuple[User, ...], int]:
        """The first ``limit`` (None: all) distinct users present here and on other
        processes, in name order, and how many there are."""
        roster = state.roster
        others = [u for u in self._elsewhere.others(state.name) if u.id not in roster]
        if not others:
            return roster.first(len(roster) if limit is None else limit), len(roster)
        everyone = sorted([*roster.first(len(roster)), *others], key=_by_name)
        return tuple(everyone[:limit]), len(everyone)


def _by_name(user: User) -> tuple[str, str]:
    return (user.name.casefold(), user.id)


def _at_or_below(event: RoomEvent, floor: int) -> bool:
    return isinstance(event, MessageEvent) and event.message.seq <= floor
