"""One Redis pub/sub connection that this process owns, and keeps alive.

redis-py can reconnect a pub/sub connection by itself, silently; chatapp
must know when that happens, because whatever was published meanwhile is
lost and has to be fetched from the database. So the client is made without
retries and this module owns the reader loop: after a failure it reconnects
with exponential backoff (with jitter), subscribes to every channel again,
and then calls the ``on_restored`` callbacks. A ping every
``health_interval`` seconds that gets no answer within another interval
counts as a failure too: a connection that silently stopped (a network
partition, ``CLIENT KILL``) is replaced within about two intervals.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.exceptions import RedisError

from chatapp.tasks import cancel_and_wait

log = logging.getLogger(__name__)

#: Backoff between reconnection attempts: from MIN to MAX seconds, doubling, with jitter.
BACKOFF_MIN = 0.05
BACKOFF_MAX = 2.0
#: Seconds a subscriber waits for Redis to confirm a subscription before going on without
#: it (the database fills in whatever the missing subscription misses).
CONFIRM_TIMEOUT = 2.0
#: How long one read waits for a message, so that pings and shutdown are timely.
READ_TIMEOUT = 0.5
_PING = b"chatapp-alive"

Handler = Callable[[bytes], None]


class Subscription:
    """Channels and their handlers on one pub/sub connection, kept across reconnections."""

    def __init__(self, client: Redis, *, health_interval: float) -> None:
        self._client = client
        self._health_interval = health_interval
        self._handlers: dict[bytes, Handler] = {}
        self._confirmed: dict[bytes, asyncio.Future[None]] = {}
        self._pubsub: PubSub | None = None  # set while connected
        self._task: asyncio.Task[None] | None = None
        self._up = asyncio.Event()
        #: Called after a reconnection: publishes may have been missed meanwhile.
        self.on_restored: list[Callable[[], None]] = []

    @property
    def connected(self) -> bool:
        return self._pubsub is not None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def wait_connected(self, timeout: float) -> bool:
        """Whether the connection is up within ``timeout`` seconds."""
        try:
            await asyncio.wait_for(self._up.wait(), timeout)
        except TimeoutError:
            return False
        return True

    async def add(self, channel: str, handler: Handler) -> None:
        """Hand the channel's messages to ``handler``; returns once Redis confirmed the
        subscription, or at once while Redis is unreachable (it is made on reconnection)."""
        key = channel.encode()
        subscribed = key in self._handlers
        self._handlers[key] = handler
        pubsub = self._pubsub
        if pubsub is None:
            return
        confirmed = self._confirmed.get(key)
        if subscribed and confirmed is None:
            return  # confirmed already
        try:
            if confirmed is None:  # the first to ask subscribes; later ones wait with it
                confirmed = self._confirmed[key] = asyncio.get_running_loop().create_future()
                await pubsub.subscribe(key)
            await asyncio.wait_for(asyncio.shield(confirmed), CONFIRM_TIMEOUT)
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("subscribing to %s not confirmed: %s", channel, exc)

    async def remove(self, channel: str) -> None:
        key = channel.encode()
        if self._handlers.pop(key, None) is None:
            return
        confirmed = self._confirmed.pop(key, None)
        if confirmed is not None and not confirmed.done():
            confirmed.set_result(None)  # nobody needs to wait for it any more
        pubsub = self._pubsub
        if pubsub is not None:
            try:
                await pubsub.unsubscribe(key)
            except (RedisError, OSError) as exc:
                log.debug("unsubscribing from %s failed: %s", channel, exc)

    async def close(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _run(self) -> None:
        delay = BACKOFF_MIN
        lost = False
        while True:
            pubsub = self._client.pubsub()
            try:
                await self._listen(pubsub, restored=lost)
            except (RedisError, OSError, TimeoutError) as exc:
                if self._up.is_set():  # a new outage: say so, back off afresh
                    log.warning("Redis subscription lost (%s); reconnecting", exc or type(exc))
                    delay = BACKOFF_MIN
                else:  # not up yet (start-up says so if it never comes), or still down
                    log.debug("Redis not reachable: %s", exc)
                lost = True
            finally:
                self._pubsub = None
                self._up.clear()
                await _close_quietly(pubsub)
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, BACKOFF_MAX)

    async def _listen(self, pubsub: PubSub, *, restored: bool) -> None:
        """Subscribe to every channel, then hand messages over until the connection fails."""
        await pubsub.ping(_PING)  # connects; raises while Redis is down
        channels = list(self._handlers)
        if channels:
            await pubsub.subscribe(*channels)
        self._pubsub = pubsub
        self._up.set()
        if restored:
            log.info("Redis subscription restored (%d channels)", len(channels))
            for callback in self.on_restored:
                callback()
        loop = asyncio.get_running_loop()
        last_heard = loop.time()
        pinged = False
        while True:
            message = await pubsub.get_message(timeout=READ_TIMEOUT)
            now = loop.time()
            if message is not None:
                last_heard = now
                pinged = False
                self._dispatch(message)
            elif now - last_heard > self._health_interval:
                if pinged:
                    raise TimeoutError(f"no answer to a ping for {self._health_interval} s")
                await pubsub.ping(_PING)
                pinged = True
                last_heard = now

    def _dispatch(self, message: dict[str, object]) -> None:
        kind, channel = message["type"], message.get("channel")
        if not isinstance(channel, bytes):
            return
        if kind == "message":
            handler = self._handlers.get(channel)
            data = message["data"]
            if handler is not None and isinstance(data, bytes):
                try:
                    handler(data)
                except Exception:  # one bad message must not end the subscription
                    log.exception("handling a message on %r failed", channel)
        elif kind == "subscribe":
            confirmed = self._confirmed.pop(channel, None)
            if confirmed is not None and not confirmed.done():
                confirmed.set_result(None)


async def _close_quietly(pubsub: PubSub) -> None:
    with contextlib.suppress(RedisError, OSError):
        await pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]  # typed in redis 8
