"""Dead peers are reaped by WebSocket pings."""

from __future__ import annotations

import dataclasses

import pytest
from factories import TICK
from rawws import RawClient

#: A reaped peer is closed as "normal closure" with reason "ping timed out": none of the
#: CloseCode reasons (shutdown, flooding, expiry, slowness) applies, and a client that is
#: still there simply reconnects.
NORMAL_CLOSURE = 1000


@pytest.fixture
def settings(settings):
    return dataclasses.replace(settings, ping_interval=3 * TICK)


async def test_a_peer_that_never_answers_pings_is_dropped(port, chat):
    """WebSocket pings reap a connection whose peer has gone silent."""
    silent = await RawClient.connect(port)
    code, _ = await silent.until_close()
    assert code == NORMAL_CLOSURE  # the server gave up on it and said so
    silent.close()
