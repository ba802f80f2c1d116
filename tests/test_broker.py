"""One behavioural suite for every broker: the in-process one and the Redis one.

A broker joins "peers" (processes): what one publishes reaches every peer
subscribed to the room, once, in order, and the publisher's own members at
once. The in-process broker has a single peer; the Redis broker is tested
with two peers on one Redis, as two processes would be. Faults (a Redis
restart, a killed subscription, a payload of an unknown version) are tested
against a private ``redis-server``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from conftest import REDIS_HOST, REDIS_PORT
from factories import TICK, eventually
from redisproc import RedisServer
from tornado.ioloop import IOLoop

from chatapp.broker import Broker, codec
from chatapp.broker.memory import LocalBroker
from chatapp.broker.redis import RedisBroker, RedisConnection
from chatapp.model import Event, MessageEvent, StoredMessage, TypingEvent, User

ANN = User("u-ann", "Ann")


@dataclass
class Peer:
    """One process's broker and what it handed to its hub."""

    broker: Broker
    received: list[Event] = field(default_factory=list)
    resyncs: int = 0

    async def start(self) -> None:
        await self.broker.start(self.received.extend, self._resync)

    def _resync(self) -> None:
        self.resyncs += 1


def message(seq: int, room: str = "general", text: str | None = None) -> MessageEvent:
    stored = StoredMessage(
        id=seq,
        room=room,
        seq=seq,
        user=ANN,
        text=text or f"m{seq} café ✓",
        created_at=datetime(2026, 12, 3, 7, 0, seq % 60, 123456, tzinfo=UTC),
        client_id=f"c{seq}",
    )
    return MessageEvent(stored, origin="abcd1234.1")


async def redis_peers(url: str, count: int) -> list[Peer]:
    prefix = f"test-{uuid.uuid4().hex[:8]}:"
    peers = []
    for number in range(count):
        connection = RedisConnection(url, prefix=prefix)
        await connection.start()
        peers.append(Peer(RedisBroker(connection, sender=f"peer{number}")))
    for peer in peers:
        await peer.start()
    return peers


@pytest.fixture(
    params=[
        pytest.param("local", id="local"),
        pytest.param("redis", id="redis", marks=pytest.mark.redis),
    ]
)
def peers(request: pytest.FixtureRequest, io_loop: IOLoop) -> Iterator[list[Peer]]:
    """The processes one broker joins: one for the in-process broker, two on Redis."""

    async def start() -> list[Peer]:
        if request.param == "local":
            local = Peer(LocalBroker())
            await local.start()
            return [local]
        return await redis_peers(f"redis://{REDIS_HOST}:{REDIS_PORT}/0", 2)

    started = io_loop.run_sync(start)
    yield started
    for peer in started:
        io_loop.run_sync(peer.broker.close)


async def subscribe_all(peers: Sequence[Peer], room: str = "general") -> None:
    for peer in peers:
        await peer.broker.subscribe(room)


async def test_every_subscribed_peer_gets_each_event_once_in_order(peers):
    """Messages and typing notices published by one peer reach every peer in the room once,
    in publish order, the publisher included."""
    await subscribe_all(peers)
    events: list[Event] = [message(1), TypingEvent("general", ANN, "abcd1234.2"), message(2)]
    await peers[0].broker.publish(events[:2])
    await peers[0].broker.publish(events[2:])
    for peer in peers:
        await eventually(lambda peer=peer: len(peer.received) >= 3, "arrival")
    await asyncio.sleep(TICK)  # nothing more comes (no echo of the publisher's own)
    assert [peer.received for peer in peers] == [events] * len(peers)


async def test_the_publisher_gets_its_own_events_at_once(peers):
    """The publishing process's members get the events before publish returns."""
    await subscribe_all(peers)
    await peers[-1].broker.publish([message(1)])
    assert peers[-1].received == [message(1)]


async def test_events_cross_with_every_field_intact(peers):
    """What arrives is equal to what was published: text, time, ids, client_id."""
    await subscribe_all(peers)
    sent = [message(7, text='line\nwith "quotes" and emoji 🎉'), message(8)]
    await peers[0].broker.publish(sent)
    await eventually(lambda: all(len(p.received) == 2 for p in peers), "arrival")
    assert all(p.received == sent for p in peers)


async def test_rooms_are_kept_apart(peers):
    """A peer subscribed to one room receives nothing of another, except its own."""
    await subscribe_all(peers, "a")
    await peers[0].broker.publish([message(1, room="b"), message(1, room="a")])
    await eventually(lambda: all(message(1, room="a") in p.received for p in peers), "arrival")
    for peer in peers[1:]:
        assert peer.received == [message(1, room="a")]


async def test_an_unsubscribed_peer_receives_no_more(peers):
    """After unsubscribe, another process's events for the room no longer arrive."""
    await subscribe_all(peers)
    for peer in peers[1:]:
        await peer.broker.unsubscribe("general")
    await peers[0].broker.publish([message(1)])
    await eventually(lambda: peers[0].received == [message(1)], "arrival")
    await asyncio.sleep(2 * TICK)
    assert all(peer.received == [] for peer in peers[1:])


@pytest.mark.redis
async def test_a_payload_of_an_unknown_version_is_skipped(private_redis: RedisServer):
    """A newer process's format is logged and skipped; later events still arrive."""
    receiver, sender = await redis_peers(private_redis.url, 2)
    try:
        await receiver.broker.subscribe("general")
        newer = codec.encode([message(1)], "peer9").replace(b'"v":1', b'"v":2')
        assert isinstance(sender.broker, RedisBroker)
        reply = private_redis.command("PUBLISH", f"{_prefix(receiver)}room:general", "garbage")
        assert reply.startswith(b":1")
        await sender.broker.publish([message(2)])
        client = sender.broker._redis.client
        await client.publish(f"{_prefix(receiver)}room:general", newer)
        await sender.broker.publish([message(3)])
        await eventually(lambda: len(receiver.received) == 2, "arrival")
        assert receiver.received == [message(2), message(3)]
    finally:
        for peer in (receiver, sender):
            await peer.broker.close()


@pytest.mark.redis
@pytest.mark.parametrize("fault", ["restart", "client-kill"])
async def test_after_losing_redis_the_subscription_comes_back_and_asks_for_a_resync(
    private_redis: RedisServer, fault: str
):
    """Redis restarted, or the pub/sub connection killed: publishing meanwhile neither fails
    nor blocks; the receiver reconnects by itself, calls ``resync`` (so the database fills
    in what was lost), and gets what is published afterwards."""
    receiver, sender = await redis_peers(private_redis.url, 2)
    try:
        await receiver.broker.subscribe("general")
        await sender.broker.publish([message(1)])
        await eventually(lambda: receiver.received == [message(1)], "arrival")
        if fault == "restart":
            private_redis.stop()
            await asyncio.wait_for(sender.broker.publish([message(2)]), 0.5)  # lost, no error
            await asyncio.sleep(3 * TICK)  # Redis stays down a moment
            private_redis.start()
        else:
            assert private_redis.command("CLIENT", "KILL", "TYPE", "pubsub").startswith(b":")
        await eventually(lambda: receiver.resyncs == 1, "arrival")
        await eventually(lambda: _subscribed(private_redis, receiver), "arrival")
        await sender.broker.publish([message(3)])
        await eventually(lambda: message(3) in receiver.received, "arrival")
        assert receiver.received[0] == message(1)
    finally:
        for peer in (receiver, sender):
            await peer.broker.close()


def _prefix(peer: Peer) -> str:
    assert isinstance(peer.broker, RedisBroker)
    return peer.broker._redis.prefix


def _subscribed(server: RedisServer, peer: Peer) -> bool:
    reply = server.command("PUBSUB", "NUMSUB", f"{_prefix(peer)}room:general")
    return reply.rstrip().endswith(b":1")
