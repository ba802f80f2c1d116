"""The fan-out seam between the service (which publishes) and the hub (which delivers).

A ``Broker`` carries committed messages and ephemeral typing events to every
server process that has members in the room. ``LocalBroker`` (``memory.py``)
is the single-process implementation: it hands events straight to this
process's hub. ``RedisBroker`` (``redis.py``) publishes to a channel per room
and feeds the hub from its subscription. Nothing above the broker changes.

Brokers may deliver a room's messages late, twice, out of order, or not at
all (a process dies between commit and publish, Redis restarts): the hub
puts them in order and the database fills the gaps. ``resync`` tells the
caller that events may have been lost, so it checks every room at once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from chatapp.model import Event

#: Where a broker hands the events it receives (the hub's ``deliver``).
Deliver = Callable[[Sequence[Event]], None]


class Broker(Protocol):
    async def start(self, deliver: Deliver, resync: Callable[[], None]) -> None:
        """Hand received events to ``deliver`` from now on; call ``resync`` whenever some may
        have been lost (after the broker reconnected)."""
        ...

    async def subscribe(self, room: str) -> None:
        """Start receiving the room's events; returns once nothing later can be missed (or,
        while the broker is unreachable, at once: ``resync`` follows its return)."""
        ...

    async def unsubscribe(self, room: str) -> None: ...

    async def publish(self, events: Sequence[Event]) -> None:
        """Deliver events, in order, to every process subscribed to their rooms (this one
        first); never waits for other processes."""
        ...

    async def close(self) -> None: ...
