"""The Redis broker: processes that share one Redis (and one database) act as one server.

Each room has a channel; a process subscribes to the rooms it has members
in. Redis is only a doorbell: the database is the truth, so the broker never
holds up a sender. ``publish`` delivers to this process's members at once,
then queues the payload for a background publisher; while Redis is
unreachable payloads are dropped (with one warning per outage) and messages
are still stored and acknowledged. Receivers put what arrives in seq order
and fetch from the database whatever a lost or late publish did not bring
(the hub's gap filling and the service's head watch); after a reconnection
``resync`` makes them check every room at once.

Typing notices travel the same way but are not stored: those published
during an outage are lost, which is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from chatapp.broker import Deliver, codec
from chatapp.broker.subscription import Subscription
from chatapp.errors import BrokerError, ConfigError
from chatapp.model import Event
from chatapp.ops import instance
from chatapp.tasks import cancel_and_wait

log = logging.getLogger(__name__)

#: Keys and channels of one chat start with this, so that one Redis can serve others too.
PREFIX = "chatapp:"
#: Seconds a Redis command (a publish, a presence update) may take before it counts as failed.
COMMAND_TIMEOUT = 2.0
#: Seconds between liveness checks of idle Redis connections.
HEALTH_INTERVAL = 5.0
#: Connections to Redis per process, the subscription's included: a burst of connects (each
#: asks for the user's connection count) waits for one instead of opening hundreds.
POOL_SIZE = 8
#: Payloads waiting for the publisher; past it the oldest go (their messages are stored).
MAX_QUEUED = 10_000


class RedisConnection:
    """The client and the one pub/sub connection that this process shares between the
    broker and presence."""

    def __init__(self, url: str, *, prefix: str = PREFIX) -> None:
        try:
            pool = BlockingConnectionPool.from_url(
                url,
                max_connections=POOL_SIZE,
                timeout=COMMAND_TIMEOUT,
                retry=Retry(NoBackoff(), 0),  # reconnecting is ours to do (and notice)
                socket_timeout=COMMAND_TIMEOUT,
                socket_connect_timeout=COMMAND_TIMEOUT,
                health_check_interval=int(HEALTH_INTERVAL),
            )
            self.client: Redis = Redis.from_pool(pool)
        except ValueError as exc:
            raise ConfigError(f"bad Redis URL {url!r}: {exc}") from None
        self.url = url
        self.prefix = prefix
        self.subscription = Subscription(self.client, health_interval=HEALTH_INTERVAL)

    async def start(self, timeout: float = COMMAND_TIMEOUT) -> None:
        """Connect, or raise ``ConfigError``: a server should not start without its Redis."""
        self.subscription.start()
        if not await self.subscription.wait_connected(timeout):
            await self.close()
            raise ConfigError(f"cannot reach Redis at {self.url!r}")

    async def close(self) -> None:
        await self.subscription.close()
        await self.client.aclose()


class RedisBroker:
    """Fan-out through Redis pub/sub; see the module docstring."""

    def __init__(self, redis: RedisConnection, *, sender: str | None = None) -> None:
        self._redis = redis
        #: This process's name in payloads (tests give two brokers of one process two names).
        self._sender = sender or instance.tag()
        self._deliver: Deliver = lambda events: None
        self._queue: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        self._publisher: asyncio.Task[None] | None = None
        self._failing = False

    async def start(self, deliver: Deliver, resync: Callable[[], None]) -> None:
        self._deliver = deliver
        self._redis.subscription.on_restored.append(resync)
        self._publisher = asyncio.create_task(self._publish_queued())

    async def subscribe(self, room: str) -> None:
        await self._redis.subscription.add(self._channel(room), self._received)

    async def unsubscribe(self, room: str) -> None:
        await self._redis.subscription.remove(self._channel(room))

    async def publish(self, events: Sequence[Event]) -> None:
        self._deliver(events)
        by_room: dict[str, list[Event]] = {}
        for event in events:
            by_room.setdefault(event.room, []).append(event)
        for room, room_events in by_room.items():
            if self._queue.qsize() >= MAX_QUEUED:
                self._queue.get_nowait()  # Redis is not keeping up: the database has them
            self._queue.put_nowait((self._channel(room), codec.encode(room_events, self._sender)))

    async def close(self) -> None:
        if self._publisher is not None:
            # what was committed before shutdown should still ring the bell
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._queue.join(), COMMAND_TIMEOUT)
            await cancel_and_wait(self._publisher)
        await self._redis.close()

    def _channel(self, room: str) -> str:
        return f"{self._redis.prefix}room:{room}"

    def _received(self, data: bytes) -> None:
        try:
            payload = codec.decode(data)
        except BrokerError as exc:
            log.warning("skipped an event from Redis: %s", exc.reason)
            return
        if payload.sender != self._sender:  # our own were delivered when published
            self._deliver(payload.events)

    async def _publish_queued(self) -> None:
        """Publish queued payloads in order, a pipeline at a time; drop them while Redis
        fails (receivers read those messages from the database)."""
        while True:
            batch = [await self._queue.get()]
            while not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._send(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _send(self, batch: list[tuple[str, bytes]]) -> None:
        for attempt in range(2):  # a pooled connection may have died since: one fresh try
            try:
                async with self._redis.client.pipeline(transaction=False) as pipe:
                    for channel, payload in batch:
                        pipe.publish(channel, payload)
                    await pipe.execute()
            except (RedisError, OSError) as exc:
                if attempt == 1:
                    if not self._failing:
                        log.warning(
                            "publishing to Redis failed (%s); receivers will read "
                            "the messages from the database",
                            exc,
                        )
                    self._failing = True
                    await asyncio.sleep(0.2)  # don't spin while Redis is down
                continue
            if self._failing:
                log.info("publishing to Redis works again")
            self._failing = False
            return
