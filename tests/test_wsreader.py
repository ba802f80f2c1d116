"""The callback-driven frame reader: RFC 6455 framing over a real socket, however the
bytes are cut, and the same answers to bad frames as Tornado's own reader."""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import struct
from collections.abc import Awaitable, Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rawws import RawClient
from tornado.iostream import IOStream
from tornado.websocket import _WebSocketParams

from chatapp.web.wsreader import READ_CHUNK, BufferedProtocol13

TEXT, BINARY, CONTINUATION, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA
LIMIT = 1000  # max_message_size in these tests


def frame(
    opcode: int, payload: bytes, *, fin: bool = True, masked: bool = True, rsv: int = 0
) -> bytes:
    """One client frame as a peer would send it."""
    head = bytes([(0x80 if fin else 0) | rsv | opcode])
    bit = 0x80 if masked else 0
    if len(payload) < 126:
        head += bytes([bit | len(payload)])
    elif len(payload) <= 0xFFFF:
        head += bytes([bit | 126]) + struct.pack("!H", len(payload))
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", len(payload))
    if not masked:
        return head + payload
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class Handler:
    """The handler's side of the protocol, recording what the reader hands it."""

    def __init__(self) -> None:
        self.messages: list[str | bytes] = []
        self.pings: list[bytes] = []
        self.closed = asyncio.Event()
        self.close_calls = 0
        self.close_code: int | None = None
        self.hold: Callable[[], Awaitable[None]] | None = None

    def on_message(self, message: str | bytes) -> Awaitable[None] | None:
        self.messages.append(message)
        return self.hold() if self.hold else None

    def on_ping(self, data: bytes) -> None:
        self.pings.append(data)

    def on_pong(self, data: bytes) -> None:
        pass

    def on_ws_connection_close(self, code: int | None, reason: str | None) -> None:
        self.close_calls += 1
        self.close_code = code
        self.closed.set()

    def log_exception(self, *exc_info: object) -> None:
        raise AssertionError(f"a handler callback failed: {exc_info}")


class Pair:
    """The reader on one end of a socket pair; the test writes the peer's bytes."""

    def __init__(self) -> None:
        ours, self.peer = socket.socketpair()
        self.peer.setblocking(False)
        self.handler = Handler()
        params = _WebSocketParams(max_message_size=LIMIT)
        self.protocol = BufferedProtocol13(self.handler, False, params)  # type: ignore[arg-type]
        self.protocol.stream = IOStream(ours)

    async def __aenter__(self) -> Pair:
        await self.protocol._receive_frame_loop()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.protocol._abort()
        self.peer.close()

    def busy(self) -> Callable[[], None]:
        """Keep the handler busy with every frame from now on; what ends it."""
        gate = asyncio.get_running_loop().create_future()

        async def busy() -> None:
            await gate

        self.handler.hold = busy

        def release() -> None:
            self.handler.hold = None
            gate.set_result(None)

        return release

    async def send(self, *chunks: bytes) -> None:
        loop = asyncio.get_running_loop()
        for chunk in chunks:
            await loop.sock_sendall(self.peer, chunk)
            await asyncio.sleep(0)

    async def received(self, count: int) -> list[str | bytes]:
        for _ in range(1000):
            if len(self.handler.messages) >= count or self.handler.closed.is_set():
                break
            await asyncio.sleep(0.002)
        return self.handler.messages

    async def written(self, size: int) -> bytes:
        """The next ``size`` bytes the server wrote."""
        loop = asyncio.get_running_loop()
        out = b""
        while len(out) < size:
            data = await loop.sock_recv(self.peer, size - len(out))
            assert data, "closed early"
            out += data
        return out

    async def closed(self) -> bytes:
        """Wait for the reader to give up; what the server wrote before closing."""
        await asyncio.wait_for(self.handler.closed.wait(), 5)
        await asyncio.sleep(0.01)
        out = b""
        while True:
            try:
                data = self.peer.recv(65536)
            except BlockingIOError:
                await asyncio.sleep(0.01)
                continue
            if not data:
                return out
            out += data


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), 10))


def cut(data: bytes, points: list[int]) -> list[bytes]:
    edges = sorted({p % (len(data) + 1) for p in points} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(edges)]


messages = st.lists(
    st.one_of(st.text(max_size=300), st.binary(max_size=300)), min_size=1, max_size=8
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages=messages, points=st.lists(st.integers(min_value=0), max_size=12), data=st.data())
def test_every_message_arrives_whole_and_in_order_however_the_bytes_are_cut(
    messages, points, data
) -> None:
    wire = b""
    for message in messages:
        payload = message.encode() if isinstance(message, str) else message
        opcode = TEXT if isinstance(message, str) else BINARY
        pieces = data.draw(st.integers(min_value=1, max_value=3))
        if pieces == 1 or len(payload) < pieces:
            wire += frame(opcode, payload)
            continue
        step = len(payload) // pieces
        parts = [payload[i * step : (i + 1) * step] for i in range(pieces - 1)]
        parts.append(payload[(pieces - 1) * step :])
        wire += frame(opcode, parts[0], fin=False)
        for i, part in enumerate(parts[1:], 1):
            wire += frame(PING, b"mid-message")  # control frames may come between fragments
            wire += frame(CONTINUATION, part, fin=i == pieces - 1)

    async def scenario() -> None:
        async with Pair() as pair:
            await pair.send(*cut(wire, points))
            assert await pair.received(len(messages)) == messages
            assert not pair.handler.closed.is_set()

    run(scenario)


def test_many_frames_in_one_write_each_reach_the_handler() -> None:
    async def scenario() -> None:
        async with Pair() as pair:
            texts = [f"message {i}" for i in range(500)]
            await pair.send(b"".join(frame(TEXT, t.encode()) for t in texts))
            assert await pair.received(500) == texts

    run(scenario)


def test_unmasked_frames_are_read_as_tornado_reads_them() -> None:
    async def scenario() -> None:
        async with Pair() as pair:
            await pair.send(frame(TEXT, b"plain", masked=False))
            assert await pair.received(1) == ["plain"]

    run(scenario)


def test_a_frame_the_handler_is_busy_with_holds_back_the_next() -> None:
    async def scenario() -> None:
        async with Pair() as pair:
            release = pair.busy()
            await pair.send(frame(TEXT, b"one") + frame(TEXT, b"two"))
            assert await pair.received(1) == ["one"]
            await asyncio.sleep(0.05)
            assert pair.handler.messages == ["one"]  # "two" waits for the handler
            release()
            assert await pair.received(2) == ["one", "two"]

    run(scenario)


def test_the_readers_state_stays_out_of_the_protocols_dict() -> None:
    """Tornado fills the protocol's instance dict; a key more makes it grow into a larger
    table, 0.8 KiB for every idle connection (the memory figure rose 9.0 -> 11.0 KiB)."""

    async def scenario() -> None:
        async with Pair() as pair:
            await pair.send(frame(TEXT, b"one") + frame(TEXT, b"two")[:3])  # the rest is pending
            assert await pair.received(1) == ["one"]
            reader_state = {"_pending", "_listening", "_message_opcode", "_reading_done"}
            assert not reader_state & set(vars(pair.protocol))

    run(scenario)


def test_frames_that_came_with_the_handshake_are_read_first() -> None:
    """The HTTP exchange may leave the client's first frames in the stream's buffer."""

    async def scenario() -> None:
        ours, peer = socket.socketpair()
        handler = Handler()
        protocol = BufferedProtocol13(handler, False, _WebSocketParams(max_message_size=LIMIT))  # type: ignore[arg-type]
        protocol.stream = stream = IOStream(ours)
        peer.sendall(b"GET\r\n" + frame(TEXT, b"early one") + frame(TEXT, b"early two"))
        assert await stream.read_until(b"\r\n") == b"GET\r\n"  # as the handshake reads
        assert stream._read_buffer_size > 0
        await protocol._receive_frame_loop()
        peer.sendall(frame(TEXT, b"later"))
        for _ in range(500):
            if len(handler.messages) == 3:
                break
            await asyncio.sleep(0.002)
        assert handler.messages == ["early one", "early two", "later"]
        protocol._abort()
        peer.close()

    run(scenario)


def test_a_busy_handler_stops_reading_so_the_client_is_slowed_down() -> None:
    """Backpressure: while a handler holds the reader, at most a chunk more is read; the
    rest waits in the kernel until the handler is done, then arrives whole and in order."""

    async def scenario() -> None:
        async with Pair() as pair:
            release = pair.busy()
            texts = [f"{i:06d}" + "x" * 900 for i in range(4000)]  # ~3.6 MiB
            sending = asyncio.ensure_future(
                pair.send(b"".join(frame(TEXT, t.encode()) for t in texts))
            )
            await asyncio.sleep(0.2)
            assert pair.handler.messages == texts[:1]
            assert not sending.done()  # the socket's buffers are full: the client waits
            stream = pair.protocol.stream
            assert len(pair.protocol._pending) + stream._read_buffer_size <= 2 * READ_CHUNK
            release()
            await sending
            assert await pair.received(len(texts)) == texts

    run(scenario)


def test_a_peer_gone_while_the_handler_is_busy_is_reported_once_it_is_done() -> None:
    async def scenario() -> None:
        async with Pair() as pair:
            release = pair.busy()
            await pair.send(frame(TEXT, b"one") + frame(TEXT, b"two"))
            assert await pair.received(1) == ["one"]
            pair.peer.close()
            await asyncio.sleep(0.05)
            release()
            await asyncio.wait_for(pair.handler.closed.wait(), 5)
            assert pair.handler.messages == ["one", "two"]
            assert pair.handler.close_calls == 1

    run(scenario)


def test_a_ping_is_answered_with_a_pong_of_the_same_data() -> None:
    async def scenario() -> None:
        async with Pair() as pair:
            await pair.send(frame(PING, b"are you there"))
            pong = await pair.written(2 + len(b"are you there"))
            assert pong == bytes([0x80 | PONG, len(b"are you there")]) + b"are you there"
            assert pair.handler.pings == [b"are you there"]

    run(scenario)


def test_a_close_frame_is_echoed_and_reported_once_with_its_code() -> None:
    async def scenario() -> None:
        async with Pair() as pair:
            await pair.send(frame(CLOSE, struct.pack("!H", 1001) + b"bye"))
            written = await pair.closed()
            assert written[:1] == b"\x88" and struct.unpack("!H", written[2:4]) == (1001,)
            assert pair.handler.close_code == 1001
            assert pair.handler.close_calls == 1

    run(scenario)


def test_a_message_over_the_limit_is_refused_from_its_header_alone() -> None:
    async def scenario() -> None:
        async with Pair() as pair:
            whole = frame(TEXT, b"x" * (LIMIT + 1))
            await pair.send(whole[:8])  # the header says too much; the payload never comes
            written = await pair.closed()
            assert struct.unpack("!H", written[2:4]) == (1009,)
            assert pair.handler.messages == []

    run(scenario)


def test_fragments_adding_up_over_the_limit_are_refused() -> None:
    async def scenario() -> None:
        async with Pair() as pair:
            half = b"x" * (LIMIT // 2 + 1)
            await pair.send(frame(TEXT, half, fin=False), frame(CONTINUATION, half))
            written = await pair.closed()
            assert struct.unpack("!H", written[2:4]) == (1009,)
            assert pair.handler.messages == []

    run(scenario)


@pytest.mark.parametrize(
    "bad",
    [
        frame(TEXT, b"x", rsv=0x40),  # an extension nobody negotiated
        frame(CONTINUATION, b"x"),  # nothing to continue
        frame(TEXT, b"a", fin=False) + frame(TEXT, b"b"),  # a new message inside one
        frame(PING, b"x", fin=False),  # a fragmented control frame
        frame(PING, b"x" * 126),  # a control frame over 125 bytes
        frame(0x3, b"x"),  # a reserved opcode
        frame(TEXT, b"\xff\xfe"),  # text that is not UTF-8
    ],
    ids=["rsv", "orphan", "interleaved", "fragmented-ping", "long-ping", "opcode", "utf8"],
)
def test_a_broken_frame_ends_the_connection_and_is_reported_once(bad: bytes) -> None:
    async def scenario() -> None:
        async with Pair() as pair:
            await pair.send(frame(TEXT, b"before") + bad + frame(TEXT, b"after"))
            await pair.closed()
            assert "after" not in pair.handler.messages
            assert pair.handler.close_calls == 1

    run(scenario)


def test_a_peer_gone_mid_frame_is_reported_once() -> None:
    async def scenario() -> None:
        async with Pair() as pair:
            await pair.send(frame(TEXT, b"complete"), frame(TEXT, b"never finished")[:5])
            assert await pair.received(1) == ["complete"]
            pair.peer.close()
            await asyncio.wait_for(pair.handler.closed.wait(), 5)
            assert pair.handler.close_calls == 1
            assert pair.handler.messages == ["complete"]

    run(scenario)


async def test_an_open_connection_leaves_no_task_behind(port, chat) -> None:
    """The handshake's chain of coroutines ends once the socket is open: an idle
    connection is its objects, not a task (and the frames of seven coroutines) each."""
    before = len(asyncio.all_tasks())
    clients = [await RawClient.connect(port) for _ in range(20)]
    for client in clients:
        opcode, _ = await client.frame()  # hello: the socket is open
        assert opcode == TEXT
    await asyncio.sleep(0.05)
    assert len(asyncio.all_tasks()) - before < 20
    for client in clients:
        client.close()
