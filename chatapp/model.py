"""Plain data passed between the layers: no I/O, no ORM objects."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class User:
    """Who is speaking: ``id`` is stable and unique, ``name`` is for display."""

    id: str
    name: str


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message accepted from a client, not yet stored.

    Its idempotency key is the client's ``client_id``, or, without one, its
    user and ``created_at`` (which the server sets, to the microsecond): a
    retry after a commit whose answer was lost finds it instead of storing
    it twice.
    """

    room: str
    user: User
    text: str
    client_id: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A message as committed: ``seq`` is its gapless position in the room."""

    id: int
    room: str
    seq: int
    user: User
    text: str
    created_at: datetime
    client_id: str | None


@dataclass(frozen=True, slots=True)
class Appended:
    """The outcome of storing one message.

    ``duplicate`` is true when the same user had already stored a message with
    this ``client_id``; ``message`` is then that original message.
    """

    message: StoredMessage
    duplicate: bool


@dataclass(frozen=True, slots=True)
class Page:
    """Consecutive messages of one room, oldest first.

    ``has_more`` is true when the room holds messages older than the first one.
    ``pruned_before`` is set when nothing older is stored because older
    messages were deleted (retention): it is the oldest seq still stored, or
    the next seq when none is.
    """

    messages: list[StoredMessage]
    has_more: bool
    pruned_before: int | None = None


@dataclass(frozen=True, slots=True)
class SearchHit:
    """A message that matched a search; a larger ``score`` is a better match."""

    message: StoredMessage
    score: float


@dataclass(frozen=True, slots=True)
class SearchResult:
    """The best hits of a search, and how many messages match in all.

    ``total`` counts at most a bound; ``total_capped`` says more than that matched.
    """

    hits: list[SearchHit]
    total: int
    total_capped: bool


@dataclass(frozen=True, slots=True)
class RoomActivity:
    """A room's newest seq and when its newest message was written (None once deleted)."""

    name: str
    last_seq: int
    last_activity: datetime | None


@dataclass(frozen=True, slots=True)
class MessageEvent:
    """A committed message; ``origin`` is the id of the connection that sent it, or "" when
    that is unknown (the message was read back from the database)."""

    message: StoredMessage
    origin: str

    @property
    def room(self) -> str:
        return self.message.room


@dataclass(frozen=True, slots=True)
class TypingEvent:
    """Someone is typing: ephemeral, never stored, relayed to everyone but ``origin``."""

    room: str
    user: User
    origin: str


@dataclass(frozen=True, slots=True)
class PresenceEvent:
    """Who is in a room: ``users`` may be a sample of a large room, ``count`` is the total."""

    room: str
    users: tuple[User, ...]
    count: int


#: What brokers carry between processes.
Event = MessageEvent | TypingEvent
#: What members of a room receive.
RoomEvent = MessageEvent | TypingEvent | PresenceEvent


@dataclass(frozen=True, slots=True)
class History:
    """A page of a room's history for one member (on join, resume, or scrollback)."""

    room: str
    page: Page
