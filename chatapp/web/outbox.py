"""What one client has not taken yet: frames queued in order, written as its socket drains.

Only whole frames are ever handed to the stream, and the next chunk only once
the previous one was taken by the kernel, so a close frame can always follow
at a frame boundary. ``write`` refuses (queuing nothing) once more than
``bound`` bytes are waiting: the hub then stops sending the client live
traffic, and the service sends what it missed from the database once
``drained`` returns. A client that takes nothing at all for ``stall``
seconds while data waits for it is given up (``on_stall``): a client that
keeps reading is never closed, however much it has to catch up.

Frames written in one turn of the event loop leave in one write at its end
(``Corks``): the acks of a batch, and its broadcast, reach a client that
pipelines messages as one send instead of one each.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

from tornado.iostream import IOStream, StreamClosedError

#: Largest chunk of queued frames handed to the stream at once (a larger frame goes alone).
CHUNK_BYTES = 256 * 1024


#: A turn that wrote to this many clients is a large room's broadcast: when another
#: came less than LARGE_TURN_BUSY seconds before (the room is busy), its sends wait
#: LARGE_TURN_HOLD seconds for the next messages, which then share them.
LARGE_TURN = 500
LARGE_TURN_HOLD = 0.005
LARGE_TURN_BUSY = 0.02


class Corks:
    """The outboxes written to in this turn of the loop, sent once it ends (one per app).

    A turn that wrote to LARGE_TURN clients or more (a broadcast to a large room)
    shortly after another is held a few milliseconds first. At 1000 members
    every message costs 1000 sends on the server and 1000 reads on the
    clients; messages arriving within the hold leave together, as one send per
    client. A quiet room's message gains nothing from waiting and is not held;
    small turns never are.
    """

    __slots__ = ("_busy", "_corked", "_held", "_hold", "_large", "_last_large")

    def __init__(
        self, large: int = LARGE_TURN, hold: float = LARGE_TURN_HOLD, busy: float = LARGE_TURN_BUSY
    ) -> None:
        self._corked: list[Outbox] = []
        self._large = large
        self._hold = hold
        self._busy = busy
        self._held = False
        self._last_large = float("-inf")

    def add(self, outbox: Outbox) -> None:
        if not self._corked and not self._held:
            asyncio.get_running_loop().call_soon(self._uncork)
        self._corked.append(outbox)

    def _uncork(self) -> None:
        if len(self._corked) >= self._large:
            loop = asyncio.get_running_loop()
            now, last = loop.time(), self._last_large
            self._last_large = now
            if now - last < self._busy:
                self._held = True
                loop.call_later(self._hold, self._release)
                return
        self._send_all()

    def _release(self) -> None:
        self._held = False
        self._send_all()

    def _send_all(self) -> None:
        corked, self._corked = self._corked, []
        for outbox in corked:
            outbox.uncork()


class Outbox:
    __slots__ = (
        "_bound",
        "_closed",
        "_cork",
        "_corked",
        "_corks",
        "_handed",
        "_last_taken",
        "_on_stall",
        "_queue",
        "_queued",
        "_stall",
        "_stall_timer",
        "_stream",
        "_waiters",
    )

    def __init__(
        self,
        stream: IOStream,
        bound: int,
        stall: float,
        on_stall: Callable[[], None],
        corks: Corks,
    ) -> None:
        self._stream = stream
        self._corks = corks
        self._cork: list[bytes] | None = None  # frames of this turn, sent at its end
        self._corked = 0  # bytes in _cork
        self._bound = bound
        self._stall = stall
        self._on_stall = on_stall
        self._queue: deque[bytes] | None = None  # created on first congestion
        self._queued = 0  # bytes in _queue
        self._handed = 0  # bytes handed to the stream and not yet written out
        self._last_taken = time.monotonic()
        self._stall_timer: asyncio.TimerHandle | None = None
        self._waiters: list[asyncio.Future[None]] | None = None
        self._closed = False

    @property
    def pending(self) -> int:
        """Bytes queued for the client that it has not taken yet."""
        return self._queued + self._handed + self._corked

    def write(self, data: bytes, *, force: bool = False) -> bool:
        """Queue complete frames; False, queuing nothing, when over the bound (unless
        ``force``: replies to the client's own requests are never refused)."""
        if self._closed:
            return True  # going away: nothing more to catch up
        if not force and self.pending > self._bound:
            self._watch_for_stall()
            return False
        if self._handed or self._queued:
            self._enqueue(data)
        elif self._cork is not None:
            self._cork.append(data)
            self._corked += len(data)
        else:
            self._cork = [data]
            self._corked = len(data)
            self._corks.add(self)
        return True

    def uncork(self) -> None:
        """Send what this turn wrote (``Corks`` calls it once the turn is over; ``Socket``
        before closing, so that its last frames precede the close frame)."""
        cork = self._cork
        if cork is None:
            return
        self._cork, self._corked = None, 0
        if not self._closed:
            self._send(cork[0] if len(cork) == 1 else b"".join(cork))

    async def drained(self) -> None:
        """Return once at most half the bound waits (or the client is gone)."""
        if self._closed or self.pending <= self._bound // 2:
            return
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = []
        self._waiters.append(waiter)
        self._watch_for_stall()
        await waiter

    def close(self) -> None:
        """Drop what was not handed to the stream yet; wake everyone waiting to send."""
        self._closed = True
        self._queue = None
        self._queued = 0
        self._cork, self._corked = None, 0
        if self._stall_timer is not None:
            self._stall_timer.cancel()
            self._stall_timer = None
        self._wake()

    def _enqueue(self, data: bytes) -> None:
        if self._queue is None:
            self._queue = deque()
        self._queue.append(data)
        self._queued += len(data)

    def _send(self, data: bytes) -> None:
        """Hand ``data`` to the kernel now if the socket takes it, the rest to the stream."""
        stream = self._stream
        if stream.closed():
            self.close()
            return
        if type(stream) is IOStream and not stream.writing():
            # Plain TCP with nothing of Tornado's own (a ping, say) waiting: hand the bytes
            # to the kernel directly, skipping the stream's Future and buffer work, which in
            # a broadcast to thousands of sockets is most of the cost.
            try:
                sent = stream.socket.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                sent = 0  # the stream meets the same error below and closes
            if sent == len(data):
                self._last_taken = time.monotonic()
                return
            if sent:
                self._last_taken = time.monotonic()
                data = data[sent:]
        try:
            written = stream.write(data)
        except StreamClosedError:
            self.close()
            return
        self._handed = len(data)
        written.add_done_callback(self._taken)

    def _taken(self, written: asyncio.Future[None]) -> None:
        self._handed = 0
        if written.cancelled() or written.exception() is not None:
            self.close()
            return
        self._last_taken = time.monotonic()
        # Chunk after chunk while the kernel takes each whole: a chunk sent at once leaves
        # no write in flight whose end would send the next one.
        while self._queue and not self._handed and not self._closed:
            self._send(self._next_chunk())
        if self.pending <= self._bound // 2:
            self._wake()

    def _next_chunk(self) -> bytes:
        assert self._queue
        parts = [self._queue.popleft()]
        size = len(parts[0])
        while self._queue and size + len(self._queue[0]) <= CHUNK_BYTES:
            part = self._queue.popleft()
            parts.append(part)
            size += len(part)
        self._queued -= size
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def _watch_for_stall(self) -> None:
        if self._stall_timer is None and self._stall > 0:
            self._stall_timer = asyncio.get_running_loop().call_later(
                self._stall, self._check_stall
            )

    def _check_stall(self) -> None:
        self._stall_timer = None
        if self._closed or not self.pending:
            return
        idle = time.monotonic() - self._last_taken
        if idle >= self._stall:
            self.close()
            self._on_stall()
        elif self.pending > self._bound // 2 or self._waiters:
            self._stall_timer = asyncio.get_running_loop().call_later(
                self._stall - idle, self._check_stall
            )
