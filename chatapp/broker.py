"""The fan-out seam between the service (which publishes) and the hub (which delivers).

A ``Broker`` carries committed messages and ephemeral typing events to every
server process that has members in the room. ``LocalBroker`` is the
single-process implementation: it hands events straight to this process's
hub. A Redis implementation would publish to a channel per room and feed
the hub from its subscription; nothing above the broker changes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from chatapp.model import StoredMessage, User


@dataclass(frozen=True, slots=True)
class MessageEvent:
    """A committed message; ``origin`` is the id of the connection that sent it."""

    message: StoredMessage
    origin: str

    @property
    def room(self) -> str:
        return self.message.room


@dataclass(frozen=True, slots=True)
class TypingEvent:
    room: str
    user: User
    origin: str


Event = MessageEvent | TypingEvent


class Broker(Protocol):
    async def subscribe(self, room: str) -> None:
        """Start receiving the room's events; returns once nothing later can be missed."""
        ...

    async def unsubscribe(self, room: str) -> None: ...

    async def publish(self, events: Sequence[Event]) -> None:
        """Deliver events, in order, to every process subscribed to their rooms."""
        ...

    async def close(self) -> None: ...


class LocalBroker:
    """One process: publishing is delivering. Subscriptions need no set-up."""

    def __init__(self, deliver: Callable[[Sequence[Event]], None]) -> None:
        self._deliver = deliver

    async def subscribe(self, room: str) -> None:
        return None

    async def unsubscribe(self, room: str) -> None:
        return None

    async def publish(self, events: Sequence[Event]) -> None:
        self._deliver(events)

    async def close(self) -> None:
        return None
