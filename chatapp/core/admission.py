"""Who may open another connection: caps per user, per address, and for the whole server.

Guests without a token get a new id per connection, so only the per-address
cap bounds them. The per-user cap counts the user's connections on every
process of the chat (``Presence.connections_elsewhere``): with Redis it holds
across processes, give or take connections opened at the same moment.
Counters drop an entry when it reaches zero, so a server that has seen a
million guests keeps no trace of them.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Protocol

from chatapp.errors import ErrorCode, LimitReached
from chatapp.model import User
from chatapp.presence import Presence
from chatapp.presence.memory import LocalPresence


class Connected(Protocol):
    @property
    def user(self) -> User: ...

    @property
    def address(self) -> str:
        """The client's IP address ("" when unknown)."""
        ...

    def close(self, code: int | None = None, reason: str | None = None) -> None: ...

    async def finish_requests(self, timeout: float) -> None:
        """Return once the requests received so far are answered, or after ``timeout``."""
        ...


class Admission:
    """Open connections and the caps on them; 0 means no cap. Loopback addresses are exempt
    from the per-address cap (benchmarks and local tools open many)."""

    def __init__(
        self,
        *,
        per_user: int = 0,
        per_address: int = 0,
        total: int = 0,
        presence: Presence | None = None,
    ) -> None:
        self._presence: Presence = presence or LocalPresence()
        self._per_user_cap = per_user
        self._per_address_cap = per_address
        self._total_cap = total
        self._per_user: Counter[str] = Counter()
        self._per_address: Counter[str] = Counter()
        self.open: set[Connected] = set()
        self._none_open = asyncio.Event()
        self._none_open.set()

    def check(self, user_id: str, address: str | None) -> None:
        """Raise ``LimitReached`` if one more connection would pass a cap.

        ``address`` None exempts the connection from the per-address cap.
        """
        if self._total_cap and len(self.open) >= self._total_cap:
            raise LimitReached(
                f"the server is full ({self._total_cap} connections)", ErrorCode.SERVER_FULL
            )
        if self._per_user_cap and self._per_user[user_id] >= self._per_user_cap:
            raise self._user_full()
        if (
            address
            and self._per_address_cap
            and self._per_address[address] >= self._per_address_cap
        ):
            raise LimitReached(
                f"this address already has {self._per_address_cap} connections",
                ErrorCode.TOO_MANY_CONNECTIONS,
            )

    async def check_elsewhere(self, user_id: str) -> None:
        """``check``'s per-user cap counting the user's connections on other processes too."""
        if not self._per_user_cap:
            return
        elsewhere = await self._presence.connections_elsewhere(user_id)
        if elsewhere and self._per_user[user_id] + elsewhere >= self._per_user_cap:
            raise self._user_full()

    def _user_full(self) -> LimitReached:
        return LimitReached(
            f"this user already has {self._per_user_cap} connections",
            ErrorCode.TOO_MANY_CONNECTIONS,
        )

    def add(self, conn: Connected) -> None:
        self.open.add(conn)
        self._none_open.clear()
        self._presence.opened(conn.user.id)
        self._per_user[conn.user.id] += 1
        self._per_address[conn.address] += 1

    def remove(self, conn: Connected) -> bool:
        """Forget a connection; false if it was not open."""
        if conn not in self.open:
            return False
        self.open.discard(conn)
        self._presence.closed(conn.user.id)
        _decrement(self._per_user, conn.user.id)
        _decrement(self._per_address, conn.address)
        if not self.open:
            self._none_open.set()
        return True

    def tracked(self) -> int:
        """How many users and addresses have counters (for tests: none are kept at zero)."""
        return len(self._per_user) + len(self._per_address)

    async def all_closed(self) -> None:
        await self._none_open.wait()


def _decrement(counter: Counter[str], key: str) -> None:
    counter[key] -= 1
    if counter[key] <= 0:
        del counter[key]
