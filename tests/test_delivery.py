"""Delivery under stress: slow readers are cut off; frames are not compressed."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest
from conftest import connect_json, open_client
from rawws import RawClient

from chatapp.limits import MAX_TEXT_CHARS

BACKLOG = 1024 * 1024


@pytest.fixture
def settings(settings):
    return dataclasses.replace(settings, max_client_backlog=BACKLOG)


async def test_a_client_that_stops_reading_is_disconnected_and_others_get_everything(
    ws_url, port, chat
):
    """Once a non-reading client's backlog passes the bound it is closed with 4003."""
    stalled = await RawClient.connect(port, recv_buffer=4096)
    sender, _, _ = await connect_json(ws_url)
    reader, _, _ = await connect_json(ws_url)
    count = 3000  # about 12 MB: well past the kernel's buffers plus the backlog bound
    text = "y" * MAX_TEXT_CHARS
    received = 0
    for start in range(0, count, 50):  # in chunks, so healthy clients keep up
        for _ in range(50):
            await sender.send({"type": "message", "room": "general", "text": text})
        for _ in range(50):
            await sender.expect_ack()
        while received < start + 50:
            if (await reader.recv())["type"] == "message":
                received += 1
    assert chat.metrics.registry.get_sample_value("chatapp_slow_consumers_total") == 1
    code, frames = await stalled.until_close()
    assert code == 4003 and frames < count
    stalled.close()


async def test_compression_is_not_negotiated(ws_url):
    """The server declines permessage-deflate so one encoded frame serves every receiver."""
    conn = await open_client(f"{ws_url}/ws", compression_options={})
    assert "Sec-WebSocket-Extensions" not in conn.headers
    assert (await asyncio.wait_for(conn.read_message(), 5)).startswith('{"type":"hello"')
