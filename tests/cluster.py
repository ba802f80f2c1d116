"""Clients of a chat spread over several server processes, and what they saw.

A ``Member`` is one person: a guest token (valid on every process), a
connection to one process, and a record of every message it received per
room, in arrival order. It can move to another process (after its own died)
and resume every room with ``since``, then send again what was never
acknowledged, with the same ``client_id``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import defaultdict
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from conftest import open_client, sign_in
from factories import BULK_PATIENCE, eventually
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from tornado.websocket import WebSocketClientConnection, WebSocketClosedError

#: How long a test waits for a cluster-wide outcome (several servers share the machine).
SETTLE = BULK_PATIENCE


async def guest_token(http_url: str, name: str) -> str:
    """A guest token (valid on every process of the chat)."""
    token: str = (await sign_in(http_url, {"name": name}))["token"]
    return token


class Member:
    """One person's connection and everything it received; see the module docstring."""

    def __init__(self, name: str, token: str) -> None:
        self.name = name
        self.token = token
        self.seqs: dict[str, list[int]] = defaultdict(list)
        self.joined: set[str] = set()
        self.acks: dict[str, tuple[str, int]] = {}  # client_id -> (room, seq)
        self.pending: dict[str, tuple[str, str]] = {}  # client_id -> (room, text), unacked
        self.presence: dict[str, list[str]] = {}  # room -> names in the last presence frame
        self.typists: list[tuple[str, str]] = []  # (room, name) of each typing notice
        self.conn: WebSocketClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        return self._reader is not None and not self._reader.done()

    async def connect(self, ws_url: str, rooms: Sequence[str]) -> None:
        """Connect to a process and join ``rooms``, resuming each after what was seen."""
        self.joined.clear()
        first, *others = rooms
        self.conn = await open_client(f"{ws_url}/ws?{self._where(first)}&token={self.token}")
        self._reader = asyncio.create_task(self._read(self.conn))
        for room in others:
            frame: dict[str, Any] = {"type": "join", "room": room}
            if self.seqs[room]:
                frame["since"] = self.seqs[room][-1]
            await self.send(frame)
        await eventually(lambda: self.joined >= set(rooms), f"{self.name} joined {rooms}", SETTLE)

    def _where(self, room: str) -> str:
        since = f"&since={self.seqs[room][-1]}" if self.seqs[room] else ""
        return f"room={quote(room)}{since}"

    async def send(self, frame: dict[str, Any]) -> None:
        assert self.conn is not None
        await self.conn.write_message(json.dumps(frame))

    async def post_or_queue(self, room: str, text: str, client_id: str) -> None:
        """Send a message without waiting for its ack (the reader records it); on a closed
        connection it stays pending, for ``resend_pending`` after a reconnection."""
        self.pending[client_id] = (room, text)
        frame = {"type": "message", "room": room, "text": text, "client_id": client_id}
        with contextlib.suppress(WebSocketClosedError):
            await self.send(frame)

    async def resend_pending(self) -> None:
        for client_id, (room, body) in list(self.pending.items()):
            await self.post_or_queue(room, body, client_id)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()

    async def _read(self, conn: WebSocketClientConnection) -> None:
        while (raw := await conn.read_message()) is not None:
            frame = json.loads(raw)
            kind, room = frame["type"], frame.get("room")
            if kind == "history":
                self.seqs[room].extend(m["seq"] for m in frame["messages"])
                self.joined.add(room)
            elif kind == "message":
                self.seqs[room].append(frame["seq"])
            elif kind == "ack":
                self.pending.pop(frame["client_id"], None)
                self.acks[frame["client_id"]] = (frame["room"], frame["seq"])
            elif kind == "typing":
                self.typists.append((room, frame["user"]["name"]))
            elif kind == "presence":
                self.presence[room] = sorted(u["name"] for u in frame["users"])


async def stored_seqs(db_url: str) -> dict[str, list[tuple[int, str | None]]]:
    """Every stored message's (seq, client_id) per room, in seq order."""
    engine = create_async_engine(db_url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(
                text("SELECT room, seq, client_id FROM messages ORDER BY room, seq")
            )
            found: dict[str, list[tuple[int, str | None]]] = defaultdict(list)
            for room, seq, client_id in rows:
                found[room].append((seq, client_id))
            return found
    finally:
        await engine.dispose()
