"""The in-process broker: one server process, where publishing is delivering."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from chatapp.broker import Deliver
from chatapp.model import Event


class LocalBroker:
    """One process: publishing is delivering. Subscriptions need no set-up, nothing is lost."""

    def __init__(self) -> None:
        self._deliver: Deliver = lambda events: None

    async def start(self, deliver: Deliver, resync: Callable[[], None]) -> None:
        self._deliver = deliver

    async def subscribe(self, room: str) -> None:
        return None

    async def unsubscribe(self, room: str) -> None:
        return None

    async def publish(self, events: Sequence[Event]) -> None:
        self._deliver(events)

    async def close(self) -> None:
        return None
