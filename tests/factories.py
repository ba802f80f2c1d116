"""One home for the tests' sample values: users, messages, secrets and tokens, frames."""

from __future__ import annotations

import struct
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt

from chatapp.model import MessageEvent, NewMessage, StoredMessage, User

ALICE = User(id="u-alice", name="Alice")
BOB = User(id="u-bob", name="Bob")
CAROL = User(id="u-carol", name="carol")
#: A fixed instant with microseconds, so time round trips are checked to the digit.
T0 = datetime(2026, 11, 26, 12, 0, 0, 123456, tzinfo=UTC)
#: An HS256 key long enough for the server to accept.
SECRET = "a-test-secret-long-enough-for-hs256-keys"


def token(key: object = SECRET, algorithm: str = "HS256", **claims: Any) -> str:
    """A JWT for ``sub`` (default "u-alice") that expires in an hour unless ``claims`` say."""
    body: dict[str, Any] = {"sub": "u-alice", "exp": int(time.time()) + 3600} | claims
    return jwt.encode(body, key, algorithm=algorithm)  # type: ignore[arg-type]


def stored(
    seq: int,
    room: str = "general",
    user: User = BOB,
    text: str | None = None,
    client_id: str | None = None,
) -> StoredMessage:
    """A committed message: id = seq, created ``seq`` seconds after T0."""
    return StoredMessage(
        id=seq,
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
    text: str, client_id: str | None = None, room: str = "general", user: User = ALICE
) -> NewMessage:
    """A message as a client sends it, not stored yet."""
    return NewMessage(
        room=room, user=user, text=text, client_id=client_id, created_at=datetime.now(UTC)
    )


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
