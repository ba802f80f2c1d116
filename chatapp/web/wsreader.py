"""Reading client frames: whatever the socket has, parsed in one callback.

Tornado reads each frame with two to four awaited reads and keeps a chain of
seven coroutines and a task alive for every open connection, from the HTTP
handler down to the pending read. A server holding tens of thousands of idle
sockets pays for that chain in memory (~2.5 KiB each), and one whose clients
pipeline frames pays for the awaits in CPU (a future and a loop turn per
read). This protocol keeps Tornado's handshake, writing, closing and dispatch
(``_handle_message``) and replaces only the read loop: one pending read per
connection, every complete frame in what arrived handled at once, and the
rules for frames Tornado's own (RFC 6455 section 5; no extension is
negotiated, so any reserved bit is an error).
"""

from __future__ import annotations

import asyncio
import logging
import struct
from typing import cast

from tornado.iostream import StreamClosedError
from tornado.util import _websocket_mask
from tornado.websocket import WebSocketProtocol13

log = logging.getLogger(__name__)

#: Most bytes taken from the stream per read: one read's frames are handled without
#: yielding to the loop, so this bounds how long one client holds it.
READ_CHUNK = 64 * 1024

_FIN = 0x80
_RESERVED = 0x70
_OPCODE = 0x0F
_CONTROL = 0x08
_MASKED = 0x80
_LENGTH = 0x7F
_CONTINUATION = 0x0
_TOO_BIG = 1009


class BufferedProtocol13(WebSocketProtocol13):
    """Tornado's RFC 6455 protocol with a callback-driven reader (see the module's doc)."""

    _pending: bytes = b""  # received and not yet a complete frame
    _reading_done = False  # the handler was told the connection closed
    _message_opcode = 0  # of the fragmented message being received

    async def _receive_frame_loop(self) -> None:
        """Start reading and return: the stream's callbacks drive the connection from
        here, and the coroutines of the HTTP exchange that led to it are freed."""
        self._read()

    def _read(self) -> None:
        try:
            reading = self.stream.read_bytes(READ_CHUNK, partial=True)
        except StreamClosedError:
            self._lost()
            return
        cast("asyncio.Future[bytes]", reading).add_done_callback(self._received)

    def _received(self, received: asyncio.Future[bytes]) -> None:
        if received.cancelled() or received.exception() is not None:
            self._lost()
            return
        data = received.result()
        self._wire_bytes_in += len(data)
        self._pending = self._pending + data if self._pending else data
        self._parse()

    def _resume(self, handled: asyncio.Future[None]) -> None:
        """The handler finished the frame it asked us to wait for: read on."""
        self._parse()

    def _parse(self) -> None:
        """Handle every complete frame pending; then read more, wait for the handler, or
        end once the connection is closing."""
        try:
            waiting = self._handle_complete_frames()
        except Exception:
            log.exception("reading a frame failed")
            self._abort()
            waiting = None
        if self.client_terminated:
            self._lost()
        elif waiting is not None:
            waiting.add_done_callback(self._resume)
        else:
            self._read()

    def _handle_complete_frames(self) -> asyncio.Future[None] | None:
        """Handle frames until the data runs out or a handler returns a future to wait for
        (backpressure: nothing more is read meanwhile). The rest stays pending."""
        data = self._pending
        end = len(data)
        at = 0
        waiting: asyncio.Future[None] | None = None
        while waiting is None and not self.client_terminated and end - at >= 2:
            first, second = data[at], data[at + 1]
            opcode = first & _OPCODE
            length = second & _LENGTH
            head = 2
            if first & _RESERVED or (opcode & _CONTROL and (length >= 126 or not first & _FIN)):
                self._abort()
                break
            if length == 126:
                head = 4
                if end - at < head:
                    break
                (length,) = struct.unpack_from("!H", data, at + 2)
            elif length == 127:
                head = 10
                if end - at < head:
                    break
                (length,) = struct.unpack_from("!Q", data, at + 2)
            if self._too_big(length):
                break
            masked = second & _MASKED
            start = at + head + (4 if masked else 0)
            if end - start < length:
                break
            payload = data[start : start + length]
            if masked:
                payload = _websocket_mask(data[start - 4 : start], payload)
            at = start + length
            waiting = self._frame(bool(first & _FIN), opcode, payload)
        self._pending = data[at:] if at < end else b""
        return waiting

    def _too_big(self, length: int) -> bool:
        """Refuse a message over the size limit as soon as its header says so."""
        if self._fragmented_message_buffer is not None:
            length += len(self._fragmented_message_buffer)
        if length <= self.params.max_message_size:
            return False
        self.close(_TOO_BIG, "message too big")
        self._abort()
        return True

    def _frame(self, final: bool, opcode: int, payload: bytes) -> asyncio.Future[None] | None:
        """One frame: control frames at once, data frames once their message is whole."""
        if opcode & _CONTROL:
            return self._handle_message(opcode, payload)
        fragments = self._fragmented_message_buffer
        if opcode == _CONTINUATION:
            if fragments is None:
                self._abort()  # nothing to continue
                return None
            fragments.extend(payload)
            if not final:
                return None
            opcode = self._message_opcode
            payload = bytes(fragments)
            self._fragmented_message_buffer = None
        elif fragments is not None:
            self._abort()  # a new message before the last one ended
            return None
        elif not final:
            self._message_opcode = opcode
            self._fragmented_message_buffer = bytearray(payload)
            return None
        return self._handle_message(opcode, payload)

    def _lost(self) -> None:
        """The connection is over (closed, aborted or gone): tell the handler, once."""
        if self._reading_done:
            return
        self._reading_done = True
        self._pending = b""
        if not self.client_terminated:
            self._abort()
        self.handler.on_ws_connection_close(self.close_code, self.close_reason)
