"""One home for the tests' sample values and their one time unit: users, messages, secrets and
tokens, frames, and ``TICK`` with ``eventually`` for waiting on what a test expects."""

from __future__ import annotations

import asyncio
import inspect
import os
import struct
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import jwt

from chatapp.model import MessageEvent, NewMessage, StoredMessage, User
from chatapp.store import Store

_T = TypeVar("_T")

#: The tests' one time unit in seconds; every wait is a multiple of it. A slow or loaded
#: machine stretches them all at once with CHATAPP_TEST_TICK (say 0.3).
TICK = float(os.environ.get("CHATAPP_TEST_TICK", "0.1"))
#: How long a test waits for something it expects before it fails.
PATIENCE = 50 * TICK
#: How long a test waits for a bulk transfer (hundreds of long messages) to go through.
BULK_PATIENCE = 300 * TICK
#: A rate limit (per second) so slow that nothing comes back into a burst while a test
#: runs, however loaded the machine: what a test sends past the burst is refused.
TRICKLE = 0.01

ALICE = User(id="u-alice", name="Alice")
BOB = User(id="u-bob", name="Bob")
CAROL = User(id="u-carol", name="carol")
#: A fixed instant with microseconds, so time round trips are checked to the digit.
T0 = datetime(2026, 11, 26, 12, 0, 0, 123456, tzinfo=UTC)
#: An HS256 key long enough for the server to accept.
SECRET = "a-test-secret-long-enough-for-hs256-keys"


def token(key: object = SECRET, algorithm: str = "HS256", **claims: Any) -> str:
    """A JWT for ALICE that expires in an hour, unless ``claims`` say otherwise; a claim
    given as None is left out (``exp=None``: a token without ``exp``)."""
    body = {"sub": ALICE.id, "name": ALICE.name, "exp": int(time.time()) + 3600} | claims
    present = {name: value for name, value in body.items() if value is not None}
    return jwt.encode(present, key, algorithm=algorithm)  # type: ignore[arg-type]


def stored(
    seq: int,
    room: str = "general",
    user: User = BOB,
    text: str | None = None,
    client_id: str | None = None,
) -> StoredMessage:
    """A committed message: id = 10 + seq (an id unlike its seq, so that mixing them up
    shows), created ``seq`` seconds after T0."""
    return StoredMessage(
        id=10 + seq,
        room=room,
        seq=seq,
        user=user,
        text=f"text {seq}" if text is None else text,
        created_at=T0 + timedelta(seconds=seq),
        client_id=client_id,
    )


def event(seq: int, origin: str = "c-other", user: User = BOB, room: str = "general"):
    """A committed message as the broker carries it, sent by connection ``origin``."""
    return MessageEvent(stored(seq, room=room, user=user), origin)


def new(
    text: str = "hi",
    *,
    room: str = "general",
    user: User = ALICE,
    client_id: str | None = None,
    at: datetime | None = None,
) -> NewMessage:
    """A message not stored yet, written at ``at`` or, as the server writes them, now (to
    the microsecond: the store tells messages without a client_id apart by it)."""
    created_at = datetime.now(UTC) if at is None else at
    return NewMessage(room=room, user=user, text=text, client_id=client_id, created_at=created_at)


def seqs(messages: Sequence[StoredMessage]) -> list[int]:
    return [m.seq for m in messages]


async def fill(
    store: Store, count: int, room: str = "general", user: User = ALICE
) -> list[StoredMessage]:
    """Store ``count`` messages "m1".."mN" in ``room`` in one batch (through the store only:
    no server hears of them, as if another process had stored them)."""
    results = await store.append([new(f"m{i}", room=room, user=user) for i in range(1, count + 1)])
    return [r.message for r in results]


def dialect_of(url: str) -> str:
    """The database kind behind a test database URL."""
    return "sqlite" if url.startswith("sqlite") else "postgresql"


def decode_frames(data: bytes) -> list[str]:
    """Split concatenated unmasked, final WebSocket text frames into their payloads."""
    payloads = []
    pos = 0
    while pos < len(data):
        first, second = data[pos], data[pos + 1]
        assert first == 0x81, f"not a final text frame: {first:#x}"
        assert not second & 0x80, "server frames must not be masked"
        size = second & 0x7F
        pos += 2
        if size == 126:
            (size,) = struct.unpack_from("!H", data, pos)
            pos += 2
        elif size == 127:
            (size,) = struct.unpack_from("!Q", data, pos)
            pos += 8
        payloads.append(data[pos : pos + size].decode("utf-8"))
        pos += size
    assert pos == len(data), "truncated frame"
    return payloads


async def eventually(
    check: Callable[[], _T | Awaitable[_T]], what: str, within: float = PATIENCE
) -> _T:
    """Ask ``check`` every fifth of a TICK until it answers something true, and return that;
    fail naming ``what`` after ``within`` seconds. Waiting for the outcome, not a fixed time,
    keeps a test quick on an idle machine and right on a loaded one."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        answer = check()
        if inspect.isawaitable(answer):
            answer = await answer
        if answer:
            return answer  # type: ignore[return-value]
        assert loop.time() < deadline, f"{what}: still not so after {within:.1f} s ({answer!r})"
        await asyncio.sleep(TICK / 5)
