"""Bad input gets a clear error and never disturbs the connection's neighbours."""

from __future__ import annotations

import dataclasses
import json

import pytest
from conftest import Client, connect_json, open_client, post
from factories import TRICKLE
from tornado.httpclient import HTTPClientError

from chatapp.limits import MAX_FRAME_BYTES, MAX_REJECTED_FRAMES, MAX_TEXT_CHARS, MIN_RATE_BURST


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", "bad_json"),
        ("[1, 2]", "bad_frame"),
        (b"\x00\x01binary", "bad_frame"),
        ('{"text": "no type"}', "unknown_type"),
        ('{"type": "shout", "room": "general"}', "unknown_type"),
        ('{"type": "message", "room": "general"}', "bad_field"),
        ('{"type": "message", "room": "general", "text": 42}', "bad_field"),
        ('{"type": "message", "room": 7, "text": "x"}', "bad_field"),
        ('{"type": "message", "room": "no spaces", "text": "x"}', "bad_room"),
        ('{"type": "message", "room": "general", "text": "   "}', "empty_text"),
        ('{"type": "message", "room": "general", "text": "nul\\u0000byte"}', "bad_field"),
        ('{"type": "message", "room": "r", "text": "x", "client_id": "\\udfff"}', "bad_field"),
        ('{"type": "history", "room": "general"}', "bad_field"),
        ('{"type": "history", "room": "general", "before": "5"}', "bad_field"),
        ('{"type": "join", "room": "general", "since": -1}', "bad_field"),
        ('{"type": "join", "room": "general", "limit": true}', "bad_field"),
        ('{"type": "typing", "room": "elsewhere"}', "not_joined"),
        ("[" * 60_000, "bad_json"),  # deeper than the parser's stack: still just bad JSON
        ('{"type": "message", "room": "general", "text": "\\ud800"}', "bad_field"),
    ],
)
async def test_bad_frame_gets_an_error_and_the_connection_goes_on(ws_url, frame, code):
    """Each kind of bad frame is answered with its error code; the socket stays usable."""
    client, _, _ = await connect_json(ws_url)
    await client.send(frame)
    error = await client.expect("error")
    assert error["code"] == code and error["reason"]
    assert (await post(client, "still here"))["seq"] == 1


async def test_over_long_text_is_refused_with_the_client_id_as_ref(ws_url):
    """Text over the limit is not stored; the error names the message by client_id."""
    client, _, _ = await connect_json(ws_url)
    text = "x" * (MAX_TEXT_CHARS + 1)
    await client.send({"type": "message", "room": "general", "text": text, "client_id": "big"})
    error = await client.expect("error")
    assert error == {"type": "error", "code": "too_long", "reason": error["reason"], "ref": "big"}
    assert (await post(client, "x" * MAX_TEXT_CHARS))["seq"] == 1


async def test_oversized_frame_closes_with_1009_and_others_are_unaffected(ws_url):
    """A frame over the size limit ends that connection only."""
    bystander, _, _ = await connect_json(ws_url)
    offender, _, _ = await connect_json(ws_url)
    await offender.send("x" * (MAX_FRAME_BYTES + 1))
    code, _ = await offender.closed()
    assert code == 1009
    assert (await post(bystander, "fine"))["seq"] == 1


async def test_bad_query_parameters_are_refused_before_the_upgrade(ws_url):
    """A bad room, since or limit on connect is an HTTP 400 with a JSON reason."""
    for query in ("?room=bad%20room", "?since=-1", "?limit=abc", "?limit=0"):
        with pytest.raises(HTTPClientError) as caught:
            await open_client(f"{ws_url}/ws{query}")
        assert caught.value.code == 400
        assert json.loads(caught.value.response.body)["reason"]


@pytest.fixture
def settings(settings):
    """A rate limit that refills nothing during a test: exactly the burst gets through."""
    return dataclasses.replace(settings, rate_limit=TRICKLE)


async def test_flooding_past_the_rate_limit_is_refused_per_frame(ws_url):
    """Past the burst, frames are dropped with ``rate_limited`` naming the client_id."""
    client, _, _ = await connect_json(ws_url)
    for i in range(40):
        await client.send({"type": "message", "room": "general", "text": "x", "client_id": f"f{i}"})
    acked, limited = set(), set()
    while len(acked) + len(limited) < 40:
        frame = await client.recv()
        if frame["type"] == "ack":
            acked.add(frame["client_id"])
        elif frame["type"] == "error":
            assert frame["code"] == "rate_limited"
            limited.add(frame["ref"])
    assert len(acked) == MIN_RATE_BURST and len(limited) == 40 - MIN_RATE_BURST
    assert acked.isdisjoint(limited)
    _, _, history = await connect_json(ws_url, "?limit=200")
    assert {m["client_id"] for m in history["messages"]} == acked


async def test_a_client_that_keeps_flooding_is_closed_with_1008(ws_url):
    """Ignoring rate-limit errors for long ends the connection with a policy close."""
    bystander, _, _ = await connect_json(ws_url)
    flooder = Client(await open_client(f"{ws_url}/ws"))
    for _ in range(MAX_REJECTED_FRAMES + 40):
        await flooder.send('{"type": "typing", "room": "general"}')
    code, reason = await flooder.closed()
    assert code == 1008 and reason
    assert (await post(bystander, "unaffected"))["seq"] == 1


async def test_a_join_past_the_room_limit_gets_too_many_rooms_and_the_connection_stays(serve):
    """A connection in --max-rooms-per-connection rooms gets too_many_rooms for one more;
    it can still post in the rooms it is in."""
    port = await serve(max_rooms_per_connection=2)
    client, _, _ = await connect_json(f"ws://127.0.0.1:{port}")
    await client.send({"type": "join", "room": "second"})
    await client.expect("history")
    await client.send({"type": "join", "room": "third"})
    error = await client.expect("error")
    assert (error["code"], error["room"]) == ("too_many_rooms", "third")
    assert (await post(client, "still here", room="second"))["seq"] == 1


async def test_a_full_server_refuses_the_upgrade_with_503(serve):
    """Past --max-connections a WebSocket upgrade is refused with 503 and a JSON reason."""
    port = await serve(max_connections=1)
    await connect_json(f"ws://127.0.0.1:{port}")
    with pytest.raises(HTTPClientError) as refused:
        await open_client(f"ws://127.0.0.1:{port}/ws")
    assert refused.value.code == 503
    assert json.loads(refused.value.response.body)["error"] == "server_full"


async def test_typing_notices_are_throttled_per_member_and_room(ws_url):
    """A burst of typing notices reaches the others as one."""
    typist, _, _ = await connect_json(ws_url)
    watcher, _, _ = await connect_json(ws_url)
    for _ in range(5):
        await typist.send({"type": "typing", "room": "general"})
    await post(typist, "done")  # after the notices, in the same order
    frames = []
    while not frames or frames[-1]["type"] != "message":
        frames.append(await watcher.recv())
    assert [f["type"] for f in frames if f["type"] != "presence"] == ["typing", "message"]
