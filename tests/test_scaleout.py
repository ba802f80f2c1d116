"""Several server processes, one chat: real subprocesses on one database (SQLite and
PostgreSQL) and a private Redis. Every member sees every message once, in seq order,
whichever process it is on and whatever fails: a process killed with -9, Redis
restarted, its subscriptions killed, a publish lost or late."""

from __future__ import annotations

import asyncio
import itertools
import signal
from collections.abc import Sequence
from pathlib import Path

import pytest
from cluster import SETTLE, Member, guest_token, stored_seqs
from conftest import metric
from factories import BOB, TICK, eventually, new
from procs import Launch, Server
from redisproc import RedisServer
from tornado.httpclient import HTTPClientError

from chatapp.broker.redis import RedisBroker, RedisConnection
from chatapp.model import MessageEvent
from chatapp.store.engine import open_store

pytestmark = pytest.mark.redis

ROOMS = ("r0", "r1", "r2")


async def start_cluster(
    launch: Launch, tmp_path: Path, db_url: str, redis: RedisServer, count: int, *args: str
) -> list[Server]:
    """``count`` servers on one database and one Redis, started at once."""
    return list(
        await asyncio.gather(
            *(
                launch(
                    tmp_path / f"data{n}",
                    "--db",
                    db_url,
                    "--redis",
                    redis.url,
                    "--rate-limit",
                    "0",
                    *args,
                )
                for n in range(count)
            )
        )
    )


async def seat(servers: Sequence[Server], count: int) -> list[Member]:
    """``count`` members spread round-robin over the servers, each in every room."""
    members = []
    for n in range(count):
        server = servers[n % len(servers)]
        member = Member(f"m{n}", await guest_token(server.http_url, f"m{n}"))
        await member.connect(server.ws_url, ROOMS)
        members.append(member)
    return members


async def chatter(member: Member, per_room: int, live: list[Server]) -> None:
    """Post ``per_room`` messages to every room, interleaved; after a lost connection,
    resume on a live server and send the unacknowledged ones again."""
    for number in range(per_room):
        for room in ROOMS:
            await member.post_or_queue(
                room, f"{member.name} #{number}", f"{member.name}-{room}-{number}"
            )
            await reconnect_if_lost(member, live)
            await asyncio.sleep(TICK / 30)  # pacing: senders interleave
    while member.pending:
        await reconnect_if_lost(member, live)
        await asyncio.sleep(TICK / 5)


async def reconnect_if_lost(member: Member, live: list[Server]) -> None:
    """A member whose connection ended resumes on the first server that accepts it."""
    for server in itertools.cycle(live):
        if member.connected:
            return
        try:
            await member.connect(server.ws_url, ROOMS)
        except OSError:  # this one is dead (not reaped yet): the next one
            continue
        await member.resend_pending()


async def assert_complete(members: Sequence[Member], db_url: str) -> None:
    """Every message stored once, seq gapless per room; every member saw each once, in
    order; everything acknowledged is stored with the seq its ack named."""
    sent = {cid for m in members for cid in m.acks}
    stored = await stored_seqs(db_url)
    for room in ROOMS:
        seqs = [seq for seq, _ in stored[room]]
        assert seqs == list(range(1, len(seqs) + 1)), f"{room}: seq not gapless"
    by_id = {cid: (room, seq) for room, rows in stored.items() for seq, cid in rows}
    assert len(by_id) == sum(len(rows) for rows in stored.values()), "a message stored twice"
    assert set(by_id) == sent
    for member in members:
        assert {cid: by_id[cid] for cid in member.acks} == member.acks
        for room in ROOMS:
            total = len(stored[room])
            await eventually(
                lambda m=member, r=room, t=total: len(m.seqs[r]) >= t, "delivery", SETTLE
            )
            assert member.seqs[room] == list(range(1, total + 1)), f"{member.name} in {room}"


async def test_three_processes_start_together_on_an_empty_database(
    launch, tmp_path, db_url, private_redis
):
    """Three servers started at the same moment on a new database all come up: one
    migrates, the others wait for it; a guest token from one is valid on the others."""
    servers = await start_cluster(launch, tmp_path, db_url, private_redis, 3)
    token = await guest_token(servers[0].http_url, "Ann")
    for server in servers:
        member = Member("Ann", token)
        await member.connect(server.ws_url, ["general"])
        member.close()


async def test_every_member_sees_every_message_once_in_seq_order(
    launch, tmp_path, db_url, private_redis
):
    """Three processes, members spread over them, everyone sending in three rooms at once:
    each member gets every message once, in seq order; the database's seq is gapless."""
    servers = await start_cluster(launch, tmp_path, db_url, private_redis, 3)
    members = await seat(servers, 6)
    await asyncio.gather(*(chatter(m, 8, servers) for m in members))
    await assert_complete(members, db_url)


async def test_members_of_a_killed_process_resume_elsewhere_and_lose_nothing(
    launch, tmp_path, db_url, private_redis
):
    """kill -9 of one process mid-traffic: its members resume on another with ``since``,
    resend what was not acknowledged (stored once), and nothing acknowledged is missing;
    the members of the other processes notice nothing."""
    servers = await start_cluster(launch, tmp_path, db_url, private_redis, 3)
    members = await seat(servers, 6)
    traffic = asyncio.gather(*(chatter(m, 12, servers) for m in members))
    await eventually(lambda: sum(len(m.acks) for m in members) > 40, "traffic", SETTLE)
    await servers[0].stop(signal.SIGKILL)
    await traffic
    survivors = members[1::3] + members[2::3]
    assert all(m.connected for m in survivors)
    await assert_complete(members, db_url)


@pytest.mark.parametrize("fault", ["restart", "client-kill"])
async def test_redis_faults_mid_traffic_cost_members_only_a_delay(
    launch, tmp_path, db_url, private_redis, fault
):
    """Redis restarted (empty), or every pub/sub connection killed, while members send:
    messages are still stored and acknowledged, no member reconnects, and every member
    gets every message, in order."""
    servers = await start_cluster(launch, tmp_path, db_url, private_redis, 2)
    members = await seat(servers, 4)
    traffic = asyncio.gather(*(chatter(m, 12, []) for m in members))
    await eventually(lambda: sum(len(m.acks) for m in members) > 20, "traffic", SETTLE)
    if fault == "restart":
        private_redis.stop()
        acked = sum(len(m.acks) for m in members)
        await eventually(lambda: sum(len(m.acks) for m in members) > acked + 10, "acks", SETTLE)
        private_redis.start()
    else:
        assert private_redis.command("CLIENT", "KILL", "TYPE", "pubsub").startswith(b":")
    await traffic
    assert all(m.connected for m in members)
    await assert_complete(members, db_url)
    for server in servers:  # each process noticed, and checked its rooms against the database
        assert await metric(server.http_url, "chatapp_broker_resyncs_total") >= 1


async def test_a_lost_or_late_publish_is_filled_in_from_the_database(
    launch, tmp_path, db_url, private_redis
):
    """Messages committed without a publish (a process died in between) reach members
    through the head watch; one published ahead of a missing one is held and the missing
    one fetched: members get both, in order."""
    servers = await start_cluster(launch, tmp_path, db_url, private_redis, 2)
    members = await seat(servers, 2)
    await members[0].post_or_queue("r0", "published", "first")
    await eventually(lambda: all(m.seqs["r0"] == [1] for m in members), "first message", SETTLE)
    store = await open_store(db_url)
    redis = RedisConnection(private_redis.url)
    await redis.start()
    late = RedisBroker(redis, sender="late")
    await late.start(lambda events: None, lambda: None)
    try:
        [lost] = await store.append([new("never published", room="r0", user=BOB)])
        await eventually(
            lambda: all(m.seqs["r0"] == [1, 2] for m in members), "lost publish", SETTLE
        )
        skipped, ahead = await store.append(
            [new("skipped", room="r0", user=BOB), new("ahead", room="r0", user=BOB)]
        )
        await late.publish([MessageEvent(ahead.message, "")])
        await eventually(lambda: all(m.seqs["r0"] == [1, 2, 3, 4] for m in members), "gap", SETTLE)
    finally:
        await late.close()
        await store.close()
    assert lost.message.seq == 2 and skipped.message.seq == 3
    assert all(
        [await metric(server.http_url, "chatapp_gap_fills_total") >= 2 for server in servers]
    )


#: A short presence expiry, so that tests see a dead process's members leave quickly.
PRESENCE_TTL = "1.5"


async def test_presence_lists_members_of_every_process_and_drops_a_killed_ones(
    launch, tmp_path, db_url, private_redis
):
    """Members on two processes see each other in presence and typing notices; presence
    is written again after Redis restarts empty; after kill -9 of one process, its members
    leave the others' presence once --presence-ttl has passed."""
    servers = await start_cluster(
        launch, tmp_path, db_url, private_redis, 2, "--presence-ttl", PRESENCE_TTL
    )
    ann, bob = await seat(servers, 2)
    both = ["m0", "m1"]
    await eventually(
        lambda: ann.presence.get("r0") == both and bob.presence.get("r0") == both,
        "presence everywhere",
        SETTLE,
    )
    private_redis.stop()  # restarts empty: both processes write their members again
    private_redis.start()
    await eventually(
        lambda: private_redis.command("HLEN", "chatapp:presence:r0") == b":2\r\n",
        "presence re-asserted after a Redis restart",
        SETTLE,
    )
    await eventually(  # each process hears the other's re-assertion through its doorbell
        lambda: ann.presence.get("r0") == both and bob.presence.get("r0") == both,
        "presence everywhere again after the restart",
        SETTLE,
    )
    for server in servers:  # subscriptions are back too (typing goes through them)
        await eventually(
            lambda server=server: _at_least(server, "chatapp_broker_resyncs_total", 1),
            "resubscribed",
            SETTLE,
        )
    await ann.send({"type": "typing", "room": "r1"})
    await eventually(lambda: bob.typists == [("r1", "m0")], "typing across processes", SETTLE)
    assert ann.typists == []
    await servers[1].stop(signal.SIGKILL)
    await eventually(
        lambda: ann.presence.get("r0") == ["m0"], "the dead process's members gone", SETTLE
    )


async def test_the_per_user_cap_counts_connections_on_every_process(
    launch, tmp_path, db_url, private_redis
):
    """--max-connections-per-user 2 across two processes: a third connection of the user
    is refused (429) whichever process it reaches; one closing, or its process dying,
    frees a place."""
    servers = await start_cluster(
        launch,
        tmp_path,
        db_url,
        private_redis,
        2,
        "--max-connections-per-user",
        "2",
        "--presence-ttl",
        PRESENCE_TTL,
    )
    token = await guest_token(servers[0].http_url, "Ann")
    first, second = Member("Ann", token), Member("Ann", token)
    await first.connect(servers[0].ws_url, ["general"])
    await second.connect(servers[1].ws_url, ["general"])
    await eventually(lambda: answers(servers[0], token, 429), "a third refused", SETTLE)
    first.close()
    await eventually(lambda: answers(servers[0], token, 101), "a place freed", SETTLE)
    await servers[1].stop(signal.SIGKILL)  # takes the second connection's count with it
    await eventually(lambda: answers(servers[0], token, 101), "the dead's place freed", SETTLE)


async def connect_attempt(server: Server, token: str) -> int:
    """101 if the server lets one more connection of the token's user in (closed at once),
    else the HTTP status of the refusal."""
    try:
        member = Member("probe", token)
        await member.connect(server.ws_url, ["general"])
    except HTTPClientError as exc:
        return exc.code
    member.close()
    await eventually(lambda: not member.connected, "probe closed", SETTLE)
    return 101


async def answers(server: Server, token: str, code: int) -> bool:
    """Whether one more connection of the token's user gets ``code`` (101: let in)."""
    got = await connect_attempt(server, token)
    assert got in (101, 429), got
    return got == code


async def _at_least(server: Server, name: str, value: float) -> bool:
    return await metric(server.http_url, name) >= value
