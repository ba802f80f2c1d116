"""Reading client frames: whatever the socket has, parsed in one callback.

Tornado reads each frame with two to four awaited reads and keeps a chain of
seven coroutines and a task alive for every open connection, from the HTTP
handler down to the pending read. A server holding tens of thousands of idle
sockets pays for that chain in memory (~2.5 KiB each), and one whose clients
pipeline frames pays for the awaits in CPU (a future and a loop turn per
read). This protocol keeps Tornado's handshake, writing, closing and dispatch
(``_handle_message``) and replaces only the read loop: every complete frame
in what arrived handled at once, and the rules for frames Tornado's own (RFC
6455 section 5; no extension is negotiated, so any reserved bit is an error).

It also reads the socket itself. Even one ``read_bytes(partial=True)`` per
chunk costs a future, a 64 KiB buffer, a copy, a failed ``recv`` and two
changes of the poller's interest set; reading directly took durable writes
from 14.7k to 15.8k acks/s (three pairs, empty database). Instead the stream
stays registered for reading for as long as the connection reads, and each
readable event is one ``recv``. The stream is told it is reading (a pending
future of ours, which it fails when it closes, so closing is noticed as
before); the readable events are sent here. While a handler holds the reader
back (backpressure), the stream is told it is not reading: the socket's
buffer fills and TCP slows the client down. What the stream buffered
meanwhile (or with the handshake) is taken first when reading resumes. The
server speaks plain TCP (TLS ends at a proxy), so a ``recv`` on the socket
sees every byte there is.
"""

from __future__ import annotations

import asyncio
import logging
import struct

from tornado.ioloop import IOLoop
from tornado.iostream import IOStream
from tornado.util import _websocket_mask
from tornado.websocket import WebSocketProtocol13, _WebSocketDelegate, _WebSocketParams

log = logging.getLogger(__name__)

#: Most bytes taken from the socket per readable event: one read's frames are handled
#: without yielding to the loop, so this bounds how long one client holds it.
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

    # In slots: set on an instance whose dict Tornado has filled, they would make it grow
    # into a larger table (0.8 KiB per connection, measured with tracemalloc).
    __slots__ = ("_listening", "_message_opcode", "_pending", "_reading_done")
    _listening: asyncio.Future[bytes]

    def __init__(
        self, handler: _WebSocketDelegate, mask_outgoing: bool, params: _WebSocketParams
    ) -> None:
        super().__init__(handler, mask_outgoing, params)
        self._pending = b""  # received and not yet a complete frame
        self._reading_done = False  # the handler was told the connection closed
        self._message_opcode = 0  # of the fragmented message being received
        # _listening, the stream's read while we read: made once the loop runs (below)

    async def _receive_frame_loop(self) -> None:
        """Start reading and return: the stream's callbacks drive the connection from
        here, and the coroutines of the HTTP exchange that led to it are freed."""
        stream = self.stream
        assert type(stream) is IOStream, "a plain TCP stream: recv sees every byte"
        stream._handle_read = self._readable  # type: ignore[method-assign]
        self._listening = asyncio.get_running_loop().create_future()
        self._listening.add_done_callback(self._stream_closed)
        self._parse()

    def _readable(self) -> None:
        """The socket has bytes (or was closed by the peer)."""
        stream = self.stream
        if stream._read_future is not self._listening:
            IOStream._handle_read(stream)  # paused: the stream's own idle read (one chunk)
            return
        try:
            data = stream.socket.recv(READ_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            stream.close(exc_info=exc)  # fails our read: _lost
            return
        if not data:
            stream.close()
            return
        self._received(data)

    def _received(self, data: bytes) -> None:
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
            self._stop_listening()
            waiting.add_done_callback(self._resume)
        else:
            self._listen()

    def _listen(self) -> None:
        """Read on: first what the stream buffered, then every readable event."""
        stream = self.stream
        if stream._read_buffer_size:  # came with the handshake, or while we waited
            self._received(stream._consume(stream._read_buffer_size))
            return
        if stream.closed():  # then our read has failed too, or never started
            self._lost()
            return
        if stream._read_future is None:
            stream._read_future = self._listening
            stream._add_io_state(IOLoop.READ)

    def _stop_listening(self) -> None:
        """The stream stops asking for readable events once this event is handled."""
        if self.stream._read_future is self._listening:
            self.stream._read_future = None

    def _stream_closed(self, listening: asyncio.Future[bytes]) -> None:
        if listening.cancelled() or listening.exception() is not None:
            self._lost()

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
