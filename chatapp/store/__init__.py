"""Message storage: the ``Store`` seam and how to open one from a URL.

Only this package knows SQLAlchemy. Everything above it sees ``Store`` and the
plain dataclasses of ``chatapp.model``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from chatapp.model import Appended, NewMessage, Page, StoredMessage


class StoreError(Exception):
    """The database could not be opened or did not answer; the message says why."""


class Store(Protocol):
    @property
    def description(self) -> str:
        """Where the data lives, safe to log (no password)."""
        ...

    async def append(self, batch: Sequence[NewMessage]) -> list[Appended]:
        """Store a batch in one transaction, in order; results match the input order.

        Each room's ``seq`` continues gaplessly. A message whose user already
        stored its ``client_id`` is not stored again: its result is the
        original, marked duplicate. Either the whole batch commits or none.
        """
        ...

    async def latest(self, room: str, limit: int) -> Page:
        """The newest ``limit`` messages of a room."""
        ...

    async def before(self, room: str, before: int, limit: int) -> Page:
        """Up to ``limit`` messages with ``seq < before``, the newest of them."""
        ...

    async def after(self, room: str, since: int, limit: int) -> list[StoredMessage]:
        """Up to ``limit`` messages with ``seq > since``, the oldest of them."""
        ...

    async def ping(self) -> None:
        """Raise ``StoreError`` unless the database answers."""
        ...

    async def ready(self) -> None:
        """Raise ``StoreError`` unless the database answers and its schema is current."""
        ...

    async def close(self) -> None: ...
