"""A small WebSocket client (RFC 6455) on an asyncio ``Protocol``, for thousands of sockets.

Why not Tornado's client: a soak needs readers that *stop reading* (the
kernel buffer fills and the server sees a slow consumer), which a transport
offers directly (``pause_reading``), and a callback per frame instead of a
coroutine per socket keeps thousands of connections cheap in one process.
``on_open`` runs as soon as the upgrade succeeds, before any frame that came
in the same packet is handled. Text frames go to ``on_text``; the close
(with the server's code, or None when the connection just dropped) goes to
``on_close``. A frame that breaks
the protocol (a cut frame, bad UTF-8) aborts the connection and is counted
in ``broken``: that is a server fault the soak reports.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
from collections.abc import Callable, Mapping

OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
NORMAL_CLOSE = 1000
#: Largest frame accepted from the server (a history page of long messages is ~1 MB).
MAX_FRAME = 64 * 1024 * 1024
MAX_HEADERS = 64 * 1024


class HandshakeError(Exception):
    """The server refused the upgrade (e.g. HTTP 401, 429, 503) or closed during it."""


class WebSocket(asyncio.Protocol):
    def __init__(
        self,
        on_open: Callable[[WebSocket], None],
        on_text: Callable[[str], None],
        on_close: Callable[[int | None], None],
    ) -> None:
        self._on_open = on_open
        self._on_text = on_text
        self._on_close = on_close
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._fragments: list[bytes] | None = None
        self.handshake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.close_code: int | None = None
        self.broken: str | None = None
        self.closed = False
        self._open = False

    # --- asyncio.Protocol ----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if not self.handshake.done():
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > MAX_HEADERS:
                    self._fail("handshake reply too long")
                return
            status = bytes(self._buffer[: self._buffer.find(b"\r\n")])
            del self._buffer[: end + 4]
            if not status.startswith(b"HTTP/1.1 101"):
                self.handshake.set_exception(HandshakeError(status.decode(errors="replace")))
                self._abort()
                return
            self._open = True
            self.handshake.set_result(None)
            self._on_open(self)  # before the frames that came with the reply
        self._read_frames()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.handshake.done():
            self.handshake.set_exception(HandshakeError("connection closed during handshake"))
        if self._open:
            self._on_close(self.close_code)

    def start(self, request: bytes) -> None:
        """Send the upgrade request; ``handshake`` resolves on the server's 101."""
        if self._transport is not None:
            self._transport.write(request)

    # --- sending -------------------------------------------------------------

    def send_text(self, text: str) -> bool:
        """Queue a text frame; False when the connection is already gone."""
        if self.closed or self._transport is None or self._transport.is_closing():
            return False
        self._transport.write(frame(OP_TEXT, text.encode()))
        return True

    def close(self, code: int = NORMAL_CLOSE) -> None:
        """Send a close frame and close the connection (a client-initiated, clean close)."""
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(frame(OP_CLOSE, code.to_bytes(2, "big")))
            self._transport.close()

    def abort(self) -> None:
        self._abort()

    def pause_reading(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()

    # --- receiving -----------------------------------------------------------

    def _read_frames(self) -> None:
        buf = self._buffer
        pos, size = 0, len(buf)
        while size - pos >= 2 and not self.closed:
            first, second = buf[pos], buf[pos + 1]
            if first & 0x70 or second & 0x80:
                self._fail("reserved bits or a mask in a server frame (a cut frame?)")
                return
            length, header = second & 0x7F, 2
            if length == 126:
                if size - pos < 4:
                    break
                length, header = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
            elif length == 127:
                if size - pos < 10:
                    break
                length, header = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
            if length > MAX_FRAME:
                self._fail(f"frame of {length} bytes")
                return
            if size - pos < header + length:
                break
            payload = bytes(buf[pos + header : pos + header + length])
            pos += header + length
            self._frame(first & 0x80 != 0, first & 0x0F, payload)
        del buf[:pos]

    def _frame(self, fin: bool, opcode: int, payload: bytes) -> None:
        if opcode in (OP_TEXT, OP_BINARY, OP_CONTINUATION):
            if opcode != OP_CONTINUATION:
                if self._fragments is not None:
                    self._fail("new message inside a fragmented one")
                    return
                self._fragments = []
            elif self._fragments is None:
                self._fail("continuation without a message")
                return
            self._fragments.append(payload)
            if fin:
                data, self._fragments = b"".join(self._fragments), None
                if opcode == OP_BINARY:
                    return
                try:
                    text = data.decode()
                except UnicodeDecodeError:
                    self._fail("text frame that is not UTF-8")
                    return
                self._on_text(text)
        elif opcode == OP_CLOSE:
            self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            self.close(NORMAL_CLOSE)
        elif opcode == OP_PING:
            if self._transport is not None and not self._transport.is_closing():
                self._transport.write(frame(OP_PONG, payload))
        elif opcode != OP_PONG:
            self._fail(f"unknown opcode {opcode}")

    def _fail(self, reason: str) -> None:
        self.broken = reason
        self._abort()

    def _abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()


def frame(opcode: int, payload: bytes) -> bytes:
    """One final, masked client frame."""
    size = len(payload)
    if size < 126:
        header = bytes((0x80 | opcode, 0x80 | size))
    elif size < 1 << 16:
        header = bytes((0x80 | opcode, 0x80 | 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, 0x80 | 127)) + size.to_bytes(8, "big")
    key = os.urandom(4)
    return header + key + mask(key, payload)


def mask(key: bytes, data: bytes) -> bytes:
    """XOR ``data`` with the repeated 4-byte ``key``, as one big-integer operation."""
    if not data:
        return data
    size = len(data)
    stream = (key * (size // 4 + 1))[:size]
    return (int.from_bytes(data, "big") ^ int.from_bytes(stream, "big")).to_bytes(size, "big")


async def connect(
    port: int,
    target: str,
    *,
    on_open: Callable[[WebSocket], None],
    on_text: Callable[[str], None],
    on_close: Callable[[int | None], None],
    headers: Mapping[str, str] | None = None,
    receive_buffer: int = 0,
    timeout: float = 30.0,
) -> WebSocket:
    """Open ``ws://127.0.0.1:PORT{target}``; ``receive_buffer`` shrinks the socket's SO_RCVBUF."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if receive_buffer:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.setblocking(False)
        await asyncio.wait_for(loop.sock_connect(sock, ("127.0.0.1", port)), timeout)
        _, ws = await loop.create_connection(
            lambda: WebSocket(on_open, on_text, on_close), sock=sock
        )
    except BaseException:
        sock.close()
        raise
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {target} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        *(f"{name}: {value}" for name, value in (headers or {}).items()),
    ]
    ws.start(("\r\n".join(lines) + "\r\n\r\n").encode())
    try:
        await asyncio.wait_for(ws.handshake, timeout)
    except BaseException:
        ws.abort()
        raise
    return ws
