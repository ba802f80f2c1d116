"""One pinger for every WebSocket of the server, instead of a task per connection.

Tornado can ping each connection from a coroutine of its own; with many idle
connections those tasks cost about 2 KB each. Here one loop, every
``interval`` seconds, closes the connections that showed no sign of life
since its previous round (no frame, no pong) and pings the others: a peer
that has gone silent is dropped after one to two intervals.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Collection
from typing import Protocol

from chatapp.tasks import cancel_and_wait


class Pingable(Protocol):
    alive: bool

    def ping(self, data: bytes = b"") -> None: ...

    def close(self, code: int | None = None, reason: str | None = None) -> None: ...


class Keepalive:
    def __init__(self, connections: Callable[[], Collection[Pingable]], interval: float) -> None:
        self._connections = connections
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._interval > 0:
            self._task = asyncio.create_task(self._run(), name="chatapp-keepalive")

    async def close(self) -> None:
        await cancel_and_wait(self._task)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            for conn in list(self._connections()):
                if conn.alive:
                    conn.alive = False
                    with contextlib.suppress(Exception):  # a socket closing under us
                        conn.ping()
                else:
                    conn.close(reason="ping timed out")
