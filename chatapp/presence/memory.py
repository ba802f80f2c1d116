"""Presence of a single process: there are no other processes to hear from."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from chatapp.model import User


class LocalPresence:
    """One process: nobody is present elsewhere, and no connection is open elsewhere."""

    async def start(self, changed: Callable[[str], None]) -> None:
        return None

    def update(self, room: str, users: Sequence[User]) -> None:
        return None

    def others(self, room: str) -> Sequence[User]:
        return ()

    def opened(self, user_id: str) -> None:
        return None

    def closed(self, user_id: str) -> None:
        return None

    async def connections_elsewhere(self, user_id: str) -> int:
        return 0

    async def close(self) -> None:
        return None
