"""One encoder per kind of connection: what the core hands a member, as WebSocket frames.

A broadcast reaches every member of a room with the same ``Delivery``; the
first member of a kind encodes it and leaves the bytes in the delivery's
cache, where the others of that kind find them, so a broadcast is encoded
once per kind however many members it has. Frames are complete and final,
so they can be queued and written as they are.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from chatapp import SERVER_NAME
from chatapp.core.hub import Delivery
from chatapp.errors import ChatError
from chatapp.model import (
    History,
    MessageEvent,
    PresenceEvent,
    RoomEvent,
    StoredMessage,
    TypingEvent,
    User,
)
from chatapp.web import wire
from chatapp.web.wsframe import text_frame

#: Characters of message JSON kept for history frames (about 8 MB).
MESSAGE_JSON_BUDGET = 4 * 1024 * 1024


class Recipient(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def user(self) -> User: ...


class Encoder(Protocol):
    def delivery(self, delivery: Delivery, recipient: Recipient) -> bytes:
        """The frames of a delivery this recipient gets (b"" for none)."""
        ...

    def history(self, history: History) -> bytes: ...

    def error(self, error: ChatError) -> bytes: ...


@dataclass(frozen=True, slots=True)
class _Encoded:
    """One kind's encoding of a delivery: every frame, all of them joined, and the members
    that must not get some of them (their own typing, or their own lines)."""

    frames: list[bytes]
    joined: bytes
    excluded: frozenset[str]


class MessageJson:
    """Each message's JSON, kept for the joiners that will ask for it in their history, up to
    ``budget`` characters in all (the oldest are forgotten first). Messages never change,
    and their ids are never reused, so an entry is never stale."""

    def __init__(self, budget: int = MESSAGE_JSON_BUDGET) -> None:
        self._budget = budget
        self._texts: dict[int, str] = {}
        # Ids oldest first. (Not the dict's own order: next(iter(d)) after many pops from
        # its front walks the deleted slots, which made every eviction O(entries).)
        self._order: deque[int] = deque()
        self._size = 0

    def __call__(self, message: StoredMessage) -> str:
        text = self._texts.get(message.id)
        if text is None:
            text = self._texts[message.id] = wire.encode_message(message)
            self._order.append(message.id)
            self._size += len(text)
            while self._size > self._budget:
                self._size -= len(self._texts.pop(self._order.popleft()))
        return text


class UserJson:
    """Each present user's JSON, for the presence frames that list the same people over and
    over (a burst of joins re-lists the first hundred users of a room once per joiner).
    Keyed by id and checked against the name, which a user may change; forgotten in one go
    past ``most`` users."""

    def __init__(self, most: int = 100_000) -> None:
        self._most = most
        self._texts: dict[str, tuple[str, str]] = {}  # id -> (name, JSON)

    def __call__(self, user: User) -> str:
        known = self._texts.get(user.id)
        if known is not None and known[0] == user.name:
            return known[1]
        if len(self._texts) >= self._most:
            self._texts.clear()
        text = wire.encode_user(user)
        self._texts[user.id] = (user.name, text)
        return text


class ListedJson:
    """The users a room's presence frame lists, as JSON, kept per room until they change.

    A burst of joins re-encodes the room's presence once per joiner; past the first
    hundred names most joiners sort after the listed users, so the list stays the same
    and only the count moves. Forgotten in one go past ``most`` rooms."""

    def __init__(self, most: int = 10_000) -> None:
        self._most = most
        self._listed: dict[str, tuple[tuple[User, ...], str]] = {}

    def __call__(self, room: str, users: tuple[User, ...], user_json: UserJson) -> str:
        known = self._listed.get(room)
        if known is not None and known[0] == users:  # User is frozen: a rename differs
            return known[1]
        if len(self._listed) >= self._most:
            self._listed.clear()
        text = ",".join([user_json(u) for u in users])
        self._listed[room] = (users, text)
        return text


class JsonEncoder:
    """``/ws``: every event as a JSON frame; your own typing notices are not sent back.

    One per server: its cache of message JSON belongs to that server's database.
    """

    def __init__(self) -> None:
        self.message_json = MessageJson()
        self.user_json = UserJson()
        self.listed_json = ListedJson()

    def delivery(self, delivery: Delivery, recipient: Recipient) -> bytes:
        encoded = delivery.encoded.get(self)
        if encoded is None:
            frames = [text_frame(self._event_json(e)) for e in delivery.events]
            typists = frozenset(e.origin for e in delivery.events if isinstance(e, TypingEvent))
            encoded = delivery.encoded[self] = _Encoded(frames, b"".join(frames), typists)
        if recipient.id not in encoded.excluded:
            return encoded.joined
        return b"".join(
            frame
            for event, frame in zip(delivery.events, encoded.frames, strict=True)
            if not (isinstance(event, TypingEvent) and event.origin == recipient.id)
        )

    def history(self, history: History) -> bytes:
        page = history.page
        return text_frame(
            wire.encode_history(
                history.room, page.messages, page.has_more, page.pruned_before, self.message_json
            )
        )

    def error(self, error: ChatError) -> bytes:
        return text_frame(wire.encode_error(error.code, error.reason, error.ref, error.room))

    def hello(self, user: User) -> bytes:
        return text_frame(wire.encode_hello(user, SERVER_NAME))

    def ack(self, message: StoredMessage) -> bytes:
        return text_frame(wire.encode_ack(message))

    def _event_json(self, event: RoomEvent) -> str:
        if isinstance(event, MessageEvent):
            return self.message_json(event.message)
        if isinstance(event, TypingEvent):
            return wire.encode_typing(event.room, event.user)
        assert isinstance(event, PresenceEvent)
        listed = self.listed_json(event.room, event.users, self.user_json)
        return wire.presence_with(event.room, listed, event.count)


class TextEncoder:
    """The tutorial's clients: ``"name: text"`` lines, never their own; no other events.

    A message read back from the database has no origin connection; it is then
    "your own" when it has your user id.
    """

    def delivery(self, delivery: Delivery, recipient: Recipient) -> bytes:
        encoded = delivery.encoded.get(self)
        if encoded is None:
            messages = [e for e in delivery.events if isinstance(e, MessageEvent)]
            frames = [text_frame(wire.text_line(e.message)) for e in messages]
            senders = frozenset(e.origin or e.message.user.id for e in messages)
            encoded = delivery.encoded[self] = _Encoded(frames, b"".join(frames), senders)
        if recipient.id not in encoded.excluded and recipient.user.id not in encoded.excluded:
            return encoded.joined
        sent = (e for e in delivery.events if isinstance(e, MessageEvent))
        return b"".join(
            frame
            for event, frame in zip(sent, encoded.frames, strict=True)
            if not _own(event, recipient)
        )

    def history(self, history: History) -> bytes:
        return _lines(history.page.messages)

    def error(self, error: ChatError) -> bytes:
        return text_frame(f"[chatapp] {error.reason}")


def _own(event: MessageEvent, recipient: Recipient) -> bool:
    if event.origin:
        return event.origin == recipient.id
    return event.message.user.id == recipient.user.id


def _lines(messages: Iterable[StoredMessage]) -> bytes:
    return b"".join(text_frame(wire.text_line(m)) for m in messages)


@dataclass(frozen=True, slots=True)
class Encoders:
    """One server's encoders, one per kind of connection."""

    json: JsonEncoder
    text: TextEncoder

    @classmethod
    def new(cls) -> Encoders:
        return cls(JsonEncoder(), TextEncoder())
