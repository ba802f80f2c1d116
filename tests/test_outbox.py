"""The outbox over a real socket: frames of one loop turn leave in one send, in order."""

from __future__ import annotations

import asyncio
import socket

from tornado.iostream import IOStream

from chatapp.web.outbox import Corks, Outbox


class CountingSocket(socket.socket):
    """A socket that counts the sends made on it."""

    sends = 0

    def send(self, data, flags: int = 0) -> int:  # type: ignore[override]
        self.sends += 1
        return super().send(data, flags)


def pair() -> tuple[CountingSocket, socket.socket]:
    """Two ends of a TCP connection over loopback (whose buffers grow as TCP's do)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        peer = socket.create_connection(server.getsockname())
        ours, _ = server.accept()
    counting = CountingSocket(ours.family, ours.type, fileno=ours.detach())
    counting.setblocking(False)
    peer.setblocking(False)
    return counting, peer


async def received(peer: socket.socket, size: int) -> bytes:
    loop = asyncio.get_running_loop()
    data = b""
    while len(data) < size:
        data += await loop.sock_recv(peer, size - len(data))
    return data


def outbox(sock: socket.socket, corks: Corks, bound: int = 1 << 20) -> Outbox:
    return Outbox(IOStream(sock), bound, 10.0, lambda: None, corks)


def test_frames_written_in_one_turn_leave_in_one_send_in_order() -> None:
    async def scenario() -> None:
        ours, peer = pair()
        box = outbox(ours, Corks())
        frames = [f"frame {i};".encode() for i in range(10)]
        for frame in frames:
            assert box.write(frame)
        assert ours.sends == 0  # nothing leaves before the turn ends
        assert box.pending == sum(map(len, frames))
        assert await received(peer, box.pending) == b"".join(frames)
        assert ours.sends == 1
        assert box.write(b"next turn")
        assert await received(peer, 9) == b"next turn"
        assert ours.sends == 2
        peer.close()
        ours.close()

    asyncio.run(scenario())


def test_each_outbox_of_a_turn_sends_its_own_frames() -> None:
    async def scenario() -> None:
        corks = Corks()
        sockets = [pair() for _ in range(3)]
        boxes = [outbox(ours, corks) for ours, _ in sockets]
        for i, box in enumerate(boxes):
            box.write(b"a%d" % i)
            box.write(b"b%d" % i)
        for i, (ours, peer) in enumerate(sockets):
            assert await received(peer, 4) == b"a%db%d" % (i, i)
            assert ours.sends == 1
            peer.close()
            ours.close()

    asyncio.run(scenario())


def test_uncork_sends_at_once_and_close_drops_what_is_corked() -> None:
    async def scenario() -> None:
        ours, peer = pair()
        box = outbox(ours, Corks())
        box.write(b"last words")
        box.uncork()  # as Socket.close does before its close frame
        assert ours.sends == 1
        assert await received(peer, 10) == b"last words"
        box.write(b"never sent")
        box.close()
        await asyncio.sleep(0.01)
        assert ours.sends == 1
        assert box.pending == 0
        peer.close()
        ours.close()

    asyncio.run(scenario())


def test_a_full_outbox_refuses_and_counts_its_corked_bytes() -> None:
    async def scenario() -> None:
        ours, peer = pair()
        box = outbox(ours, Corks(), bound=10)
        assert box.write(b"x" * 11)  # under the bound when written
        assert not box.write(b"y")  # over it now, though nothing has left yet
        assert box.write(b"z", force=True)  # replies to the client's own requests always go
        assert await received(peer, 12) == b"x" * 11 + b"z"
        peer.close()
        ours.close()

    asyncio.run(scenario())


def test_a_queue_of_many_chunks_drains_though_the_kernel_takes_some_whole() -> None:
    """Frames queued behind a write in flight leave chunk by chunk; a chunk the kernel
    takes at once must not end the draining (it once left the rest queued for good)."""

    async def scenario() -> None:
        ours, peer = pair()
        box = outbox(ours, Corks(), bound=64 << 20)
        big = b"a" * (4 << 20)  # more than the socket buffers: part waits in the stream
        box.write(big)
        await asyncio.sleep(0)  # the turn ends: the first write is in flight
        frames = [bytes([98 + i % 20]) * (300 * 1024) for i in range(12)]  # > CHUNK_BYTES each
        for frame in frames:
            assert box.write(frame)
        expected = big + b"".join(frames)
        assert await asyncio.wait_for(received(peer, len(expected)), 10) == expected
        assert box.pending == 0
        peer.close()
        ours.close()

    asyncio.run(scenario())


def test_a_busy_large_room_is_held_so_the_next_broadcast_shares_its_sends() -> None:
    """A turn that wrote to ``large`` clients or more, ``busy`` seconds or less after the
    last such turn, waits ``hold`` seconds: what later turns write meanwhile leaves in
    the same send, in order. The first large turn (a quiet room) and small turns do
    not wait."""

    async def scenario() -> None:
        corks = Corks(large=2, hold=0.5, busy=10.0)
        sockets = [pair() for _ in range(3)]
        boxes = [outbox(ours, corks) for ours, _ in sockets]
        for box in boxes[:2]:
            box.write(b"zero;")
        for _, peer in sockets[:2]:
            assert await received(peer, 5) == b"zero;"  # quiet until now: not held
        for box in boxes[:2]:
            box.write(b"one;")
        await asyncio.sleep(0.01)  # a later turn, within the hold
        assert all(ours.sends == 1 for ours, _ in sockets[:2])
        for box in boxes:
            box.write(b"two;")
        wanted = [b"one;two;", b"one;two;", b"two;"]
        for (_, peer), expected in zip(sockets, wanted, strict=True):
            assert await received(peer, len(expected)) == expected
        assert [ours.sends for ours, _ in sockets] == [2, 2, 1]
        boxes[2].write(b"small;")  # one client: sent at the end of its turn
        assert await received(sockets[2][1], 6) == b"small;"
        for ours, peer in sockets:
            peer.close()
            ours.close()

    asyncio.run(scenario())
