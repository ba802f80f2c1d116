"""The conversation of PROTOCOL.md over /ws: hello, history, messages, acks, rooms.

Every test runs twice: on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from conftest import Client, connect_json, post
from factories import TICK

from chatapp.limits import DEFAULT_HISTORY_LIMIT, MAX_HISTORY_LIMIT


@pytest.fixture(autouse=True)
def backend(db_url):
    """Requested statically, so pytest parametrizes every test by database."""
    return db_url


@pytest.fixture
def settings(settings, backend):
    return dataclasses.replace(settings, db_url=backend)


async def fill(client: Client, count: int, room: str = "general", prefix: str = "m") -> None:
    """Post ``count`` messages, pipelined, and wait for all their acks."""
    for i in range(count):
        await client.send({"type": "message", "room": room, "text": f"{prefix}{i + 1}"})
    for _ in range(count):
        await client.expect_ack()


async def test_hello_names_a_guest_user_and_the_server(ws_url):
    """Without a key configured, each connection is a guest with a generated name."""
    _, hello, _ = await connect_json(ws_url)
    _, other, _ = await connect_json(ws_url)
    assert hello["user"]["id"].startswith("guest:") and hello["user"]["name"]
    assert hello["user"]["id"] != other["user"]["id"]
    assert hello["server"].startswith("chatapp/")


async def test_message_is_acked_and_broadcast_to_every_member_including_sender(ws_url):
    """A message reaches everyone in the room, the sender too, and the sender gets an ack."""
    alice, hello, _ = await connect_json(ws_url)
    bob, _, _ = await connect_json(ws_url)
    await alice.send({"type": "message", "room": "general", "text": "hi bob", "client_id": "m1"})
    echo = await alice.expect("message")
    ack = await alice.expect("ack")
    got = await bob.expect("message")
    assert got == echo
    assert got["text"] == "hi bob" and got["seq"] == 1 and got["user"] == hello["user"]
    assert got["client_id"] == "m1" and got["ts"].endswith("Z")
    assert ack == {"type": "ack", "client_id": "m1", "room": "general", "seq": 1, "id": got["id"]}


async def test_seq_is_per_room_and_gapless(ws_url):
    """Each room counts its own seq from 1 without gaps."""
    client, _, _ = await connect_json(ws_url)
    await client.send({"type": "join", "room": "other"})
    await client.expect("history")
    seqs = [(await post(client, f"g{i}"))["seq"] for i in range(3)]
    seqs_other = [(await post(client, f"o{i}", room="other"))["seq"] for i in range(2)]
    assert seqs == [1, 2, 3] and seqs_other == [1, 2]


async def test_connect_history_is_the_newest_page_oldest_first(ws_url):
    """A new connection gets the newest 50 messages, oldest first, and has_more when older exist."""
    writer, _, _ = await connect_json(ws_url)
    await fill(writer, DEFAULT_HISTORY_LIMIT + 5)
    _, _, history = await connect_json(ws_url)
    seqs = [m["seq"] for m in history["messages"]]
    assert seqs == list(range(6, DEFAULT_HISTORY_LIMIT + 6))
    assert history["has_more"] is True and history["room"] == "general"


async def test_history_limit_is_honoured_and_capped(ws_url):
    """``limit`` sets the page size, up to the server's maximum."""
    writer, _, _ = await connect_json(ws_url)
    await fill(writer, MAX_HISTORY_LIMIT + 1)
    _, _, small = await connect_json(ws_url, "?limit=3")
    _, _, huge = await connect_json(ws_url, "?limit=100000")
    assert [m["seq"] for m in small["messages"]] == [MAX_HISTORY_LIMIT - 1, MAX_HISTORY_LIMIT, 201]
    assert len(huge["messages"]) == MAX_HISTORY_LIMIT and huge["has_more"] is True


async def test_has_more_is_false_when_the_page_reaches_the_first_message(ws_url):
    """``has_more`` is false exactly when nothing older than the page exists."""
    writer, _, _ = await connect_json(ws_url)
    await fill(writer, 5)
    _, _, exact = await connect_json(ws_url, "?limit=5")
    _, _, short = await connect_json(ws_url, "?limit=4")
    assert exact["has_more"] is False and len(exact["messages"]) == 5
    assert short["has_more"] is True


async def test_history_request_pages_back_to_the_beginning(ws_url):
    """``history`` frames with ``before`` walk back page by page with no overlap."""
    writer, _, _ = await connect_json(ws_url)
    await fill(writer, 25)
    reader, _, first = await connect_json(ws_url, "?limit=10")
    seen = [m["seq"] for m in first["messages"]]
    has_more = first["has_more"]
    while has_more:
        await reader.send({"type": "history", "room": "general", "before": seen[0], "limit": 10})
        page = await reader.expect("history")
        seen = [m["seq"] for m in page["messages"]] + seen
        has_more = page["has_more"]
    assert seen == list(range(1, 26))


async def test_join_gives_history_then_live_messages_of_that_room(ws_url):
    """``join`` answers with the room's history, then its live traffic."""
    alice, _, _ = await connect_json(ws_url, "?room=lobby")
    await post(alice, "before join", room="lobby")
    bob, _, _ = await connect_json(ws_url)
    await bob.send({"type": "join", "room": "lobby"})
    history = await bob.expect("history")
    assert [m["text"] for m in history["messages"]] == ["before join"]
    await post(alice, "after join", room="lobby")
    live = await bob.expect("message")
    assert live["text"] == "after join" and live["room"] == "lobby"


async def test_posting_to_a_room_not_joined_is_refused(ws_url):
    """A connection posts only to rooms it joined: error ``not_joined`` with the ref."""
    client, _, _ = await connect_json(ws_url)
    await client.send({"type": "message", "room": "elsewhere", "text": "x", "client_id": "c9"})
    error = await client.expect("error")
    assert error["code"] == "not_joined" and error["ref"] == "c9" and error["reason"]
    assert error["room"] == "elsewhere"  # so a client knows which request failed


async def test_leave_stops_delivery_and_posting(ws_url):
    """After ``leave`` nothing more arrives from the room and posting is refused."""
    alice, _, _ = await connect_json(ws_url)
    bob, _, _ = await connect_json(ws_url)
    await bob.send({"type": "leave", "room": "general"})
    await bob.send({"type": "message", "room": "general", "text": "x"})
    assert (await bob.expect("error"))["code"] == "not_joined"  # so the leave is done
    await post(alice, "bob is gone")
    await bob.silent()


async def test_resending_a_client_id_stores_once_and_returns_the_original_ack(ws_url):
    """A retried message with the same client_id is neither stored nor broadcast twice."""
    alice, _, _ = await connect_json(ws_url)
    bob, _, _ = await connect_json(ws_url)
    first = await post(alice, "once", client_id="retry-1")
    again = await post(alice, "once", client_id="retry-1")
    assert again == first
    assert (await bob.expect("message"))["client_id"] == "retry-1"
    await bob.silent(0.3)
    _, _, history = await connect_json(ws_url)
    assert [m["text"] for m in history["messages"]] == ["once"]


async def test_typing_is_relayed_to_others_only_and_not_stored(ws_url):
    """``typing`` reaches the other members, not the typist, and leaves no message."""
    alice, hello, _ = await connect_json(ws_url)
    bob, _, _ = await connect_json(ws_url)
    await alice.send({"type": "typing", "room": "general"})
    typing = await bob.expect("typing")
    assert typing == {"type": "typing", "room": "general", "user": hello["user"]}
    await alice.silent(0.3)
    _, _, history = await connect_json(ws_url)
    assert history["messages"] == []


async def test_typing_right_after_sending_a_message_is_relayed(ws_url):
    """A message ends a typing spell: typing the next one at once is announced again, even
    within the throttle interval (the page clears the typist's line when the message lands)."""
    alice, _, _ = await connect_json(ws_url)
    bob, _, _ = await connect_json(ws_url)
    await alice.send({"type": "typing", "room": "general"})
    await bob.expect("typing")
    await alice.send({"type": "message", "room": "general", "text": "hi", "client_id": "m1"})
    await bob.expect("message")
    await alice.send({"type": "typing", "room": "general"})
    assert (await bob.expect("typing"))["room"] == "general"


async def test_presence_lists_the_users_in_the_room_on_changes(ws_url):
    """Joins and leaves produce ``presence`` frames listing who is there."""
    alice, alice_hello, _ = await connect_json(ws_url)
    bob, bob_hello, _ = await connect_json(ws_url)
    ids = {alice_hello["user"]["id"], bob_hello["user"]["id"]}
    while True:
        presence = await alice.recv()
        assert presence["type"] == "presence"
        if {u["id"] for u in presence["users"]} == ids:
            break
    assert presence["count"] == 2
    bob.close()
    while True:
        presence = await alice.recv()
        if [u["id"] for u in presence["users"]] == [alice_hello["user"]["id"]]:
            break


async def test_since_replays_exactly_the_missed_messages_then_live(ws_url):
    """Resuming with ``since`` delivers every later message once, then live traffic."""
    writer, _, _ = await connect_json(ws_url)
    await fill(writer, 12)
    reader, _, history = await connect_json(ws_url, "?since=4&limit=5")
    pages = [history]
    while sum(len(p["messages"]) for p in pages) < 8:
        pages.append(await reader.expect("history"))
    assert [m["seq"] for p in pages for m in p["messages"]] == list(range(5, 13))
    assert all(p["has_more"] is False for p in pages)
    await post(writer, "live")
    assert (await reader.expect("message"))["seq"] == 13


async def test_since_at_the_newest_message_sends_an_empty_history(ws_url):
    """A client that missed nothing gets an empty ``history`` and then live traffic."""
    writer, _, _ = await connect_json(ws_url)
    await fill(writer, 3)
    reader, _, history = await connect_json(ws_url, "?since=3")
    assert history["messages"] == [] and history["has_more"] is False
    await post(writer, "next")
    assert (await reader.expect("message"))["seq"] == 4


async def test_since_beyond_the_newest_message_falls_back_to_the_newest_page(ws_url):
    """A ``since`` the room never reached is treated as a fresh join, so nothing is lost."""
    writer, _, _ = await connect_json(ws_url)
    await fill(writer, 3)
    reader, _, history = await connect_json(ws_url, "?since=999")
    assert [m["seq"] for m in history["messages"]] == [1, 2, 3]
    await post(writer, "next")
    assert (await reader.expect("message"))["seq"] == 4


async def test_since_with_too_many_missed_sends_the_newest_page_with_has_more(ws_url):
    """Past the replay cap the client gets the newest page and sees the gap via has_more."""
    from chatapp.limits import MAX_REPLAY

    writer, _, _ = await connect_json(ws_url)
    await fill(writer, MAX_REPLAY + 2)
    _, _, history = await connect_json(ws_url, "?since=1&limit=10")
    seqs = [m["seq"] for m in history["messages"]]
    assert seqs == list(range(MAX_REPLAY - 7, MAX_REPLAY + 3))
    assert history["has_more"] is True


async def test_joining_during_concurrent_sends_sees_no_gap_and_no_duplicate(ws_url):
    """History then live is contiguous for clients joining while others send."""
    senders = [(await connect_json(ws_url))[0] for _ in range(3)]
    total = 60

    async def send_all(client: Client, tag: int) -> None:
        for i in range(total // len(senders)):
            await client.send({"type": "message", "room": "general", "text": f"{tag}-{i}"})
            await asyncio.sleep(TICK / 50)  # spread over the joins

    async def join_and_collect() -> list[int]:
        client, _, history = await connect_json(ws_url, f"?limit={total}")
        seqs = [m["seq"] for m in history["messages"]]
        while not seqs or seqs[-1] < total:
            frame = await client.expect("message")
            seqs.append(frame["seq"])
        return seqs

    async def joiners() -> list[list[int]]:
        results = []
        for _ in range(8):
            results.append(asyncio.ensure_future(join_and_collect()))
            await asyncio.sleep(TICK / 10)  # joins spread over the traffic
        return await asyncio.gather(*results)

    _, collected = await asyncio.gather(
        asyncio.gather(*(send_all(c, i) for i, c in enumerate(senders))), joiners()
    )
    for seqs in collected:
        assert seqs == list(range(seqs[0], total + 1)), seqs
