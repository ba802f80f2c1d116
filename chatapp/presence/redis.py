"""Presence across processes, kept in Redis and renewed by heartbeats.

Keys, under the chat's prefix:

- ``procs``: sorted set, process -> until when (Unix time) it counts as alive.
  Each process renews its entry every ``ttl / 3`` seconds; the entries of a
  process that stopped renewing (it died) are ignored by everyone once
  ``ttl`` has passed, and deleted by whoever meets them.
- ``presence:ROOM``: hash, process -> JSON list of ``[id, name]`` of its users in the room.
- ``conns:PROCESS``: hash, user id -> connections open on that process.
- channel ``presence``: a doorbell, ``"PROCESS ROOM"``: that process's users in ROOM
  changed; processes with members in ROOM read its hash again.

A process writes its own entries only, and re-asserts all of them at every
heartbeat and at once after reconnecting, so a Redis restart (which loses
them) heals within moments. While Redis is unreachable, presence shows what
was last heard and the per-user cap counts this process only.

Expiry compares the processes' clocks: keep them in sync (NTP); skew adds to or
takes from ``ttl``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence

from redis.exceptions import RedisError

from chatapp.broker.redis import RedisConnection
from chatapp.model import User
from chatapp.ops import instance
from chatapp.tasks import cancel_and_wait

log = logging.getLogger(__name__)

#: Seconds changes are collected before they are written (a burst of joins is one write).
FLUSH_DELAY = 0.02
#: Keys outlive the last heartbeat that renewed them by this many ``ttl``s.
KEY_LIFETIMES = 3
#: Seconds a closing process may spend removing its entries.
CLOSE_TIMEOUT = 1.0


class RedisPresence:
    """This process's members and connections, published to the others; theirs, read back."""

    def __init__(self, redis: RedisConnection, *, ttl: float, name: str | None = None) -> None:
        self._redis = redis
        self._ttl = ttl
        self._name = name or instance.tag()
        self._changed: Callable[[str], None] = lambda room: None
        self._mine: dict[str, tuple[User, ...]] = {}
        self._others: dict[str, tuple[User, ...]] = {}
        self._counts: Counter[str] = Counter()
        self._changed_rooms: set[str] = set()  # write, and ring the doorbell
        self._stale_rooms: set[str] = set()  # read again
        self._changed_users: set[str] = set()
        self._reassert = False
        self._failing = False
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self, changed: Callable[[str], None]) -> None:
        self._changed = changed
        self._redis.subscription.on_restored.append(self._restored)
        await self._redis.subscription.add(self._key("presence"), self._rung)
        self._tasks = [
            asyncio.create_task(self._flush_forever()),
            asyncio.create_task(self._beat_forever()),
        ]

    def update(self, room: str, users: Sequence[User]) -> None:
        present = tuple(sorted(users, key=lambda u: u.id))
        if present == self._mine.get(room, ()):
            return
        if present:
            if room not in self._mine:
                self._stale_rooms.add(room)  # learn who else is there
            self._mine[room] = present
        else:
            self._mine.pop(room, None)
            self._others.pop(room, None)
        self._changed_rooms.add(room)
        self._wake.set()

    def others(self, room: str) -> Sequence[User]:
        return self._others.get(room, ())

    def opened(self, user_id: str) -> None:
        self._counts[user_id] += 1
        self._changed_users.add(user_id)
        self._wake.set()

    def closed(self, user_id: str) -> None:
        self._counts[user_id] -= 1
        if self._counts[user_id] <= 0:
            del self._counts[user_id]
        self._changed_users.add(user_id)
        self._wake.set()

    async def connections_elsewhere(self, user_id: str) -> int:
        """From Redis; 0 while it is unreachable (the cap then counts this process only)."""
        try:
            others = [p for p in await self._live() if p != self._name]
            if not others:
                return 0
            async with self._redis.client.pipeline(transaction=False) as pipe:
                for process in others:
                    pipe.hget(self._key(f"conns:{process}"), user_id)
                counts = await pipe.execute()
        except (RedisError, OSError) as exc:
            log.debug("cannot count connections elsewhere: %s", exc)
            return 0
        return sum(int(count) for count in counts if count is not None)

    async def close(self) -> None:
        """Stop, and take this process's entries out of Redis (others see it leave now)."""
        await cancel_and_wait(*self._tasks)
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            await asyncio.wait_for(self._withdraw(), CLOSE_TIMEOUT)

    # --- the writer and the heartbeat -------------------------------------------

    def _key(self, name: str) -> str:
        return f"{self._redis.prefix}{name}"

    def _rung(self, data: bytes) -> None:
        sender, _, room = data.decode(errors="replace").partition(" ")
        if sender != self._name and room in self._mine:
            self._stale_rooms.add(room)
            self._wake.set()

    def _restored(self) -> None:
        """Redis came back (maybe empty): write everything again, tell the others, re-read."""
        self._reassert = True
        self._changed_rooms |= set(self._mine)
        self._stale_rooms |= set(self._mine)
        self._wake.set()

    async def _beat_forever(self) -> None:
        while True:
            self._reassert = True
            self._stale_rooms |= set(self._mine)  # a process that died drops out here
            self._wake.set()
            await asyncio.sleep(self._ttl / 3)

    async def _flush_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await asyncio.sleep(FLUSH_DELAY)
            await self._flush()

    async def _flush(self) -> None:
        rooms, self._changed_rooms = self._changed_rooms, set()
        stale, self._stale_rooms = self._stale_rooms, set()
        users, self._changed_users = self._changed_users, set()
        reassert, self._reassert = self._reassert, False
        try:
            await self._write(rooms, users, reassert)
            await self._read(stale)
        except (RedisError, OSError) as exc:
            if not self._failing:
                log.warning("presence: Redis failed (%s); retrying at the next heartbeat", exc)
            self._failing = True
            self._changed_rooms |= rooms  # the next heartbeat (or reconnection) retries
            self._stale_rooms |= stale
            self._changed_users |= users
            return
        self._failing = False

    async def _write(self, rooms: set[str], users: set[str], reassert: bool) -> None:
        lifetime = int(self._ttl * KEY_LIFETIMES) + 1
        conns = self._key(f"conns:{self._name}")
        async with self._redis.client.pipeline(transaction=False) as pipe:
            if reassert:
                pipe.zadd(self._key("procs"), {self._name: time.time() + self._ttl})
                users = users | set(self._counts)
            for room in rooms | (set(self._mine) if reassert else set()):
                key = self._key(f"presence:{room}")
                if room in self._mine:
                    pipe.hset(key, self._name, _encode(self._mine[room]))
                    pipe.expire(key, lifetime)
                else:
                    pipe.hdel(key, self._name)
            for room in rooms:
                pipe.publish(self._key("presence"), f"{self._name} {room}")
            for user in users:
                if self._counts.get(user):
                    pipe.hset(conns, user, self._counts[user])
                else:
                    pipe.hdel(conns, user)
            if reassert or users:
                pipe.expire(conns, lifetime)
            await pipe.execute()

    async def _read(self, stale: set[str]) -> None:
        """Read the rooms' hashes again; tell the hub about those whose others changed."""
        rooms = sorted(room for room in stale if room in self._mine)
        if not rooms:
            return
        now = time.time()
        async with self._redis.client.pipeline(transaction=False) as pipe:
            pipe.zrangebyscore(self._key("procs"), now, "+inf")
            for room in rooms:
                pipe.hgetall(self._key(f"presence:{room}"))
            live_names, *entries = await pipe.execute()
        live = {name.decode() for name in live_names}
        dead: list[tuple[str, str]] = []
        for room, fields in zip(rooms, entries, strict=True):
            users: dict[str, User] = {}
            for raw_process, value in fields.items():
                process = raw_process.decode()
                if process == self._name:
                    continue
                if process not in live:
                    dead.append((room, process))
                    continue
                for user_id, name in json.loads(value):
                    users[user_id] = User(user_id, name)
            found = tuple(sorted(users.values(), key=lambda u: u.id))
            if room not in self._mine:
                continue  # everyone here left meanwhile
            before = self._others.get(room, ())
            self._others[room] = found
            if found != before:
                self._changed(room)
        if dead:
            async with self._redis.client.pipeline(transaction=False) as pipe:
                for room, process in dead:
                    pipe.hdel(self._key(f"presence:{room}"), process)
                pipe.zremrangebyscore(self._key("procs"), "-inf", now - self._ttl)
                await pipe.execute()

    async def _live(self) -> list[str]:
        names = await self._redis.client.zrangebyscore(self._key("procs"), time.time(), "+inf")
        return [name.decode() for name in names if isinstance(name, bytes)]

    async def _withdraw(self) -> None:
        async with self._redis.client.pipeline(transaction=False) as pipe:
            pipe.zrem(self._key("procs"), self._name)
            pipe.delete(self._key(f"conns:{self._name}"))
            for room in self._mine:
                pipe.hdel(self._key(f"presence:{room}"), self._name)
                pipe.publish(self._key("presence"), f"{self._name} {room}")
            await pipe.execute()


def _encode(users: Sequence[User]) -> str:
    return json.dumps([[u.id, u.name] for u in users], ensure_ascii=False)
