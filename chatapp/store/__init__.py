"""Message storage: the ``Store`` seam and how to open one from a URL.

Only this package knows SQLAlchemy. Everything above it sees ``Store``, the
plain dataclasses of ``chatapp.model`` and the ``StoreError`` family of
``chatapp.errors``.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Protocol

from chatapp.model import Appended, NewMessage, Page, RoomActivity, SearchHit, StoredMessage


class Store(Protocol):
    @property
    def description(self) -> str:
        """Where the data lives, safe to log (no password)."""
        ...

    async def append(self, batch: Sequence[NewMessage], retry: bool = False) -> list[Appended]:
        """Store a batch in one transaction, in order; results match the input order.

        Each room's ``seq`` continues gaplessly. A message whose user already
        stored its ``client_id`` is not stored again: its result is the
        original, marked duplicate. ``retry`` says an earlier attempt may have
        committed though its answer was lost: then messages without a
        ``client_id`` already stored (same user, room and ``created_at``) are
        found too. Either the whole batch commits or none.
        """
        ...

    async def latest(self, room: str, limit: int) -> Page:
        """The newest ``limit`` messages of a room (``pruned_before`` as ``Page`` says)."""
        ...

    async def before(self, room: str, before: int, limit: int) -> Page:
        """Up to ``limit`` messages with ``seq < before``, the newest of them.

        ``pruned_before`` is set when messages below ``before`` were deleted
        and none below it remains stored.
        """
        ...

    async def after(self, room: str, since: int, limit: int) -> list[StoredMessage]:
        """Up to ``limit`` messages with ``seq > since``, the oldest of them."""
        ...

    async def search(self, query: str, rooms: Sequence[str] | None, limit: int) -> list[SearchHit]:
        """Up to ``limit`` messages matching every word of ``query``, best first.

        ``rooms`` None searches every room. A word ending in ``*`` matches as
        a prefix; any other syntax is taken literally, so no input is an error.
        """
        ...

    async def head(self, room: str) -> int:
        """The room's newest seq ever stored (0 for a room that never held a message)."""
        ...

    async def heads(self, rooms: Sequence[str]) -> dict[str, int]:
        """``head`` of many rooms in one round trip; rooms that never held a message are left
        out."""
        ...

    async def count_matches(self, query: str, rooms: Sequence[str] | None, up_to: int) -> int:
        """How many messages ``search`` would find without a limit, counting at most ``up_to``."""
        ...

    async def room_names(self) -> list[str]:
        """Every room that has held a message."""
        ...

    async def room_activity(self) -> list[RoomActivity]:
        """Every room that has held a message, with its newest seq and that message's time,
        the most recently active first (rooms whose messages were all deleted last)."""
        ...

    async def prune(self, room: str, older_than: datetime, limit: int) -> int:
        """Delete up to ``limit`` of the room's oldest messages created before ``older_than``.

        Only a prefix of the room goes (never a message with an earlier one
        kept), so what remains is still gapless; ``last_seq`` stays, so seq
        never restarts. Returns how many were deleted.
        """
        ...

    async def shared_secret(self, name: str, proposed: str) -> str:
        """The secret stored as ``name``, storing ``proposed`` first if there is none.

        Atomic: when several processes propose at once, the first insert wins
        and every one of them gets that value.
        """
        ...

    def exclusive(self, name: str, ttl: float) -> AbstractAsyncContextManager[bool]:
        """Hold lock ``name``, seen by every process on this database, if it is free.

        ``async with store.exclusive("retention", ttl) as taken``: ``taken`` says
        whether this process holds it for the body; one that did not should
        skip the work. A holder that dies loses it at once on PostgreSQL, and
        ``ttl`` seconds after its last renewal on SQLite (renewed while held).
        """
        ...

    async def ping(self) -> None:
        """Raise ``StoreError`` unless the database answers."""
        ...

    async def ready(self) -> None:
        """Raise ``StoreError`` unless the database answers, its schema is current, and it
        would take a write."""
        ...

    async def close(self) -> None: ...
