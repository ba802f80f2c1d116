"""The fan-out seam between the service (which publishes) and the hub (which delivers).

A ``Broker`` carries committed messages and ephemeral typing events to every
server process that has members in the room. ``LocalBroker`` is the
single-process implementation (``broker.memory``): it hands events straight
to this process's hub. A Redis implementation publishes to a channel per
room and feeds the hub from its subscription; nothing above the broker changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from chatapp.model import Event


class Broker(Protocol):
    async def subscribe(self, room: str) -> None:
        """Start receiving the room's events; returns once nothing later can be missed."""
        ...

    async def unsubscribe(self, room: str) -> None: ...

    async def publish(self, events: Sequence[Event]) -> None:
        """Deliver events, in order, to every process subscribed to their rooms."""
        ...

    async def close(self) -> None: ...
