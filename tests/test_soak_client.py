"""The soak's client against a real server: its own bookkeeping must not lose a room,
or the soak reports a server fault that is the client's."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import jwt
import pytest
from factories import eventually

from bench import soak
from bench.wsclient import WebSocket

SECRET = "soak-client-test-secret-of-32-bytes!"


def _world(port: int) -> soak.World:
    config = soak.SoakConfig(
        duration=1, clients=1, rooms=2, rooms_per_client=2, send_interval=1, long_share=0,
        slow_share=0, pause=(1, 1), away=(1, 1), leave_share=0, reconnect_share=0,
        join_share=0, kill_at=0, down=0, sample_interval=1, settle_timeout=1, ramp=0, seed=1,
    )  # fmt: skip
    world = soak.World(config)
    world.port = port
    return world


async def test_a_room_come_back_to_during_the_handshake_is_joined_on_open(
    serve: Callable[..., Awaitable[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client left ``b`` and lost its connection; its come_back fires while the next
    handshake is under way (no connection to join on yet). The open must join ``b``:
    the client once read its rooms before the handshake and ignored ``b`` for good."""
    port = await serve(jwt_secret=SECRET)
    claims = {"sub": "soak-1", "name": "soak1", "exp": int(time.time()) + 600}
    token = jwt.encode(claims, SECRET)
    client = soak.SoakClient(_world(port), 1, ["a", "b"], token, slow=False)
    room_b = client.rooms["b"]
    room_b.wanted = False  # left, and back in a few seconds
    real_connect = soak.connect

    async def connect_while_coming_back(*args: Any, **kwargs: Any) -> WebSocket:
        client.come_back(room_b)  # no connection yet: nothing sent
        return await real_connect(*args, **kwargs)

    monkeypatch.setattr(soak, "connect", connect_while_coming_back)
    await client._open()
    try:
        await eventually(
            lambda: all(st.state == "in" for st in client.rooms.values()),
            "both rooms joined",
        )
    finally:
        assert client.conn is not None
        client.conn.close()
