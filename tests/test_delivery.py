"""Delivery under pressure, over real sockets: big bursts, long resumes, slow and stalled
readers. A client that keeps reading is never closed and misses nothing; one that stops
reading is closed with 4003, at a frame boundary."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from conftest import Client, connect_json, metric, open_client, post
from factories import BULK_PATIENCE, PATIENCE, TICK, eventually
from rawws import RawClient

from chatapp.limits import MAX_TEXT_CHARS

#: A small backlog bound, so that a few long messages overflow it.
BACKLOG = 64 * 1024
#: A client that takes nothing for this long is given up (long enough that a busy test
#: machine, running server and clients in one loop, never starves a reader that long).
STALL = 50 * TICK
#: The stall time of the test that waits for a client to be given up.
SHORT_STALL = 20 * TICK
#: Text that JSON escapes to six bytes a character: frames of about 24 KB.
ESCAPED = "\x01" * MAX_TEXT_CHARS


@pytest.fixture
def settings(settings):
    return dataclasses.replace(settings, max_client_backlog=BACKLOG, slow_client_timeout=STALL)


async def burst(senders: list[Client], per_sender: int, text: str = ESCAPED) -> None:
    """Every sender pipelines its messages at once (so they share commits), then waits for
    its acks, all senders reading at once: a sender left unread while another collects its
    acks would be a client that stopped reading (and closed with 4003 on a slow machine)."""
    for sender in senders:
        for _ in range(per_sender):
            await sender.send({"type": "message", "room": "general", "text": text})

    async def acks(sender: Client) -> None:
        for _ in range(per_sender):
            await sender.expect_ack(timeout=BULK_PATIENCE)

    await asyncio.gather(*(acks(sender) for sender in senders))


async def seqs_until(client: Client, last: int, timeout: float = BULK_PATIENCE) -> list[int]:
    """The message seqs a client receives (live or in history frames) up to ``last``."""
    seen: list[int] = []
    while not seen or seen[-1] < last:
        frame = await client.recv(timeout)
        if frame["type"] == "message":
            seen.append(frame["seq"])
        elif frame["type"] == "history":
            seen.extend(m["seq"] for m in frame["messages"])
    return seen


async def slow_consumers(port: int) -> float:
    """How many clients the server has closed for taking nothing of their backlog."""
    return await metric(f"http://127.0.0.1:{port}", "chatapp_slow_consumers_total")


async def test_readers_are_not_closed_by_a_burst_far_larger_than_the_backlog(ws_url, chat):
    """Hundreds of 24 KB messages committed together: every reading client gets each one
    once, in order, and none is closed (the bound counts what a client has not taken)."""
    senders = [(await connect_json(ws_url))[0] for _ in range(4)]
    readers = [(await connect_json(ws_url))[0] for _ in range(3)]
    sending = asyncio.ensure_future(burst(senders, 50))
    received = await asyncio.gather(*(seqs_until(r, 200) for r in readers))
    await sending
    for seqs in received:
        assert seqs == list(range(1, 201))
    assert chat.metrics.registry.get_sample_value("chatapp_slow_consumers_total") == 0


async def test_a_reader_that_pauses_gets_what_it_missed_from_the_database(serve):
    """A client that stops reading past the bound, then reads again, is not closed: it
    gets every message once and in order, the missed ones from the database."""
    port = await serve(slow_client_timeout=60)  # a pause shorter than the stall time
    pausing = await RawClient.connect(port, recv_buffer=4096)
    sender, _, _ = await connect_json(f"ws://127.0.0.1:{port}")
    for _ in range(20):  # ~10 MB while it reads nothing: far past bound and buffers
        await burst([sender], 20)
    await post(sender, "after the pause")
    assert await pausing.seqs_until(401) == list(range(1, 402))
    pausing.close()
    assert await metric(f"http://127.0.0.1:{port}", "chatapp_lagging_clients_total") >= 1
    assert await slow_consumers(port) == 0


async def test_a_long_resume_streams_over_a_small_receive_buffer(ws_url, port, chat):
    """A client that missed hundreds of long messages resumes with since over a slow link
    (a tiny receive buffer, read a little at a time) and gets them all, then live traffic."""
    sender, _, _ = await connect_json(ws_url)
    await burst([sender], 300)  # ~7 MB to replay
    slow = await RawClient.connect(port, "/ws?since=0&limit=200", recv_buffer=4096)
    replayed = await slow.seqs_until(300, pause=TICK / 50)
    await post(sender, "live")
    live = await slow.seqs_until(301)
    slow.close()
    assert replayed + live == list(range(1, 302))
    assert chat.metrics.registry.get_sample_value("chatapp_slow_consumers_total") == 0


async def test_a_client_that_stops_reading_is_closed_with_4003_at_a_frame_boundary(serve):
    """A client that takes nothing while its backlog waits is closed with 4003 after the
    stall time; every frame before the close is whole, and the others got everything."""
    port = await serve(slow_client_timeout=SHORT_STALL)
    stalled = await RawClient.connect(port, recv_buffer=4096)
    sender, _, _ = await connect_json(f"ws://127.0.0.1:{port}")
    reader, _, _ = await connect_json(f"ws://127.0.0.1:{port}")
    reading = asyncio.ensure_future(seqs_until(reader, 400))
    for _ in range(20):  # ~10 MB: far past the kernel's buffers and the bound
        await burst([sender], 20)
    assert await reading == list(range(1, 401))
    # Read nothing from it until the server has given it up: reading would end its stall.
    given_up = await eventually(
        lambda: slow_consumers(port), "a stalled client given up", SHORT_STALL + PATIENCE
    )
    code, frames = await asyncio.wait_for(stalled.until_close(), PATIENCE)
    assert code == 4003 and 0 < frames < 400
    stalled.close()
    assert given_up == 1 and await slow_consumers(port) == 1


async def test_compression_is_not_negotiated(ws_url):
    """The server declines permessage-deflate so one encoded frame serves every receiver."""
    conn = await open_client(f"{ws_url}/ws", compression_options={})
    assert "Sec-WebSocket-Extensions" not in conn.headers
    assert (await asyncio.wait_for(conn.read_message(), PATIENCE)).startswith('{"type":"hello"')
