"""A deliberately misbehaving WebSocket client over a raw socket (for slow and dead peers)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct

from factories import BULK_PATIENCE


class RawClient:
    """Completes the handshake, then reads only when asked and never answers pings."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int, path: str = "/ws", recv_buffer: int = 0) -> RawClient:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if recv_buffer:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, recv_buffer)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 20)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write(
            (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        status = await reader.readuntil(b"\r\n\r\n")
        assert status.startswith(b"HTTP/1.1 101"), status
        return cls(reader, writer)

    async def frame(self) -> tuple[int, bytes]:
        """The next frame's opcode and payload (server frames are unmasked)."""
        first, second = await self.reader.readexactly(2)
        size = second & 0x7F
        if size == 126:
            (size,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif size == 127:
            (size,) = struct.unpack("!Q", await self.reader.readexactly(8))
        return first & 0x0F, await self.reader.readexactly(size)

    async def seqs_until(self, last: int, pause: float = 0.0) -> list[int]:
        """The message seqs received (live or in history frames) up to ``last``, reading a
        frame every ``pause`` seconds; fails on a close or a frame that is not JSON text."""
        seen: list[int] = []
        while not seen or seen[-1] < last:
            opcode, payload = await asyncio.wait_for(self.frame(), BULK_PATIENCE)
            assert opcode == 0x1, f"opcode {opcode}: {payload[:20]!r}"
            frame = json.loads(payload)
            if frame["type"] == "history":
                seen.extend(m["seq"] for m in frame["messages"])
            elif frame["type"] == "message":
                seen.append(frame["seq"])
            if pause:
                await asyncio.sleep(pause)
        return seen

    async def until_close(self) -> tuple[int | None, int]:
        """Read until a close frame or EOF: (close code or None, frames read before it)."""
        count = 0
        try:
            while True:
                opcode, payload = await self.frame()
                if opcode == 0x8:
                    return (struct.unpack("!H", payload[:2])[0] if payload else None), count
                count += 1
        except (asyncio.IncompleteReadError, ConnectionError):
            return None, count

    def close(self) -> None:
        self.writer.close()
