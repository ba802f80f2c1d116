"""Who is connected on the other processes of one chat: the presence seam.

A process knows its own members (the hub) and its own connections
(admission). ``Presence`` adds what the other processes report: the users
present in a room there, and how many connections a user has there (so
``--max-connections-per-user`` holds for the whole chat). ``LocalPresence``
(``memory.py``) is the single process, where there are no others;
``RedisPresence`` (``redis.py``) shares both through Redis, with heartbeats,
so the members of a process that died drop out within ``--presence-ttl``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from chatapp.model import User


class Presence(Protocol):
    async def start(self, changed: Callable[[str], None]) -> None:
        """Call ``changed(room)`` from now on whenever ``others(room)`` changed."""
        ...

    def update(self, room: str, users: Sequence[User]) -> None:
        """This process's users present in ``room`` now (none: no member left here). Never
        blocks; repeating the same list costs nothing."""
        ...

    def others(self, room: str) -> Sequence[User]:
        """The users present in ``room`` on the other processes, as last heard (only known
        for rooms with members here)."""
        ...

    def opened(self, user_id: str) -> None:
        """A connection of the user opened here."""
        ...

    def closed(self, user_id: str) -> None:
        """A connection of the user closed here."""
        ...

    async def connections_elsewhere(self, user_id: str) -> int:
        """How many connections the user has open on the other processes (0 when unknown)."""
        ...

    async def close(self) -> None: ...
