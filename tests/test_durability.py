"""The real server process: graceful and hard stops, restarts, migrations, resume.

Every test runs ``python -m chatapp`` as a subprocess on a data dir of its own
and reads back what survived, through a restarted server or with ``sqlite3``.
"""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import pytest
from conftest import Client, connect_json, post
from factories import PATIENCE
from procs import Launch, Server, rows_in
from revisions import head_revision
from tornado.httpclient import AsyncHTTPClient
from tornado.websocket import WebSocketClosedError

#: CLI args of every server here: bursts of messages must not hit the rate limit.
UNLIMITED = ("--rate-limit", "0")
#: The schema revision a database is stamped with.
STAMP = "SELECT version_num FROM alembic_version"


async def stored_messages(server: Server, room: str = "general") -> list[dict[str, Any]]:
    """Every message of ``room``, oldest first, paged through GET /api/rooms/ROOM/messages."""
    client = AsyncHTTPClient()
    messages: list[dict[str, Any]] = []
    query = "limit=200"
    while True:
        response = await client.fetch(f"{server.http_url}/api/rooms/{room}/messages?{query}")
        page = json.loads(response.body)
        messages = page["messages"] + messages
        if not page["has_more"] or not page["messages"]:
            return messages
        query = f"limit=200&before={page['messages'][0]['seq']}"


class Burst:
    """Clients pipelining messages (without waiting for acks) while their acks are collected."""

    def __init__(self, clients: list[Client], count: int) -> None:
        self.acked: dict[str, dict[str, Any]] = {}
        self._enough = asyncio.Event()
        self._threshold = 0
        self._tasks = [asyncio.ensure_future(self._read(c)) for c in clients] + [
            asyncio.ensure_future(self._send(c, f"c{i}", count)) for i, c in enumerate(clients)
        ]

    async def _send(self, client: Client, prefix: str, count: int) -> None:
        for n in range(count):
            frame = {"type": "message", "room": "general", "text": f"{prefix} {n}"}
            try:
                await client.send(frame | {"client_id": f"{prefix}-{n}"})
            except WebSocketClosedError:
                return  # the server went away mid-burst

    async def _read(self, client: Client) -> None:
        while (raw := await client.raw()) is not None:
            frame = json.loads(raw)
            if frame["type"] == "ack":
                self.acked[frame["client_id"]] = frame
                if len(self.acked) >= self._threshold:
                    self._enough.set()

    async def acks(self, at_least: int) -> None:
        """Wait until ``at_least`` acks have arrived (the burst goes on)."""
        self._threshold = at_least
        if len(self.acked) < at_least:
            await asyncio.wait_for(self._enough.wait(), 2 * PATIENCE)

    async def end(self) -> dict[str, dict[str, Any]]:
        """Wait for every socket to be closed by the server; every ack received, by client_id.

        Acks read after a signal was sent were still sent by the server before it.
        """
        await asyncio.gather(*self._tasks)
        return self.acked


# --- SIGTERM ----------------------------------------------------------------------


async def test_sigterm_closes_client_sockets_with_1001(launch, tmp_path):
    """On SIGTERM every connected client is closed with code 1001 (going away)."""
    server = await launch(tmp_path / "data", *UNLIMITED)
    clients = [(await connect_json(server.ws_url))[0] for _ in range(3)]
    await post(clients[0], "before shutdown")
    server.proc.send_signal(signal.SIGTERM)
    codes = [(await client.closed())[0] for client in clients]
    assert codes == [1001, 1001, 1001]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_stop_signal_exits_with_status_0(launch, tmp_path, sig):
    """SIGTERM (or Ctrl-C) with a client connected: exit status 0 and no traceback."""
    server = await launch(tmp_path / "data", *UNLIMITED)
    client, _, _ = await connect_json(server.ws_url)
    await post(client, "hello")
    status = await server.stop(sig)
    await client.closed()
    assert status == 0, server.output()
    assert "Traceback" not in server.output()


async def test_sigterm_keeps_every_acknowledged_message(launch, tmp_path):
    """Messages in flight at SIGTERM: every one acknowledged is in the database afterwards."""
    server = await launch(tmp_path / "data", *UNLIMITED)
    burst = Burst([(await connect_json(server.ws_url))[0] for _ in range(3)], 100)
    await burst.acks(at_least=20)
    stopped = asyncio.ensure_future(server.stop(signal.SIGTERM))  # one signal, then wait
    acked = await burst.end()
    assert await stopped == 0
    stored = {
        client_id: (seq, message_id)
        for client_id, seq, message_id in rows_in(
            server.db_path, "SELECT client_id, seq, id FROM messages WHERE room = 'general'"
        )
    }
    assert acked, "no message was acknowledged before the shutdown"
    missing = {cid: (a["seq"], a["id"]) for cid, a in acked.items() if cid not in stored}
    assert not missing
    assert all(stored[cid] == (a["seq"], a["id"]) for cid, a in acked.items())


# --- SIGKILL ------------------------------------------------------------------------


async def burst_then_kill(launch: Launch, data_dir: Path) -> tuple[dict[str, Any], Server]:
    """Four clients pipeline 50 messages each; SIGKILL once some acks are in.

    Returns the acks received before the kill and a server restarted on the same data.
    """
    server = await launch(data_dir, *UNLIMITED)
    burst = Burst([(await connect_json(server.ws_url))[0] for _ in range(4)], 50)
    await burst.acks(at_least=30)
    server.proc.send_signal(signal.SIGKILL)
    acked = await burst.end()
    assert await server.stop(signal.SIGKILL) == -signal.SIGKILL
    return acked, await launch(data_dir, *UNLIMITED)


async def test_sigkill_keeps_every_acknowledged_message_with_its_seq_and_id(launch, tmp_path):
    """After kill -9 mid-burst, every acked message is stored with the acked seq and id."""
    acked, restarted = await burst_then_kill(launch, tmp_path / "data")
    stored = {m["client_id"]: m for m in await stored_messages(restarted)}
    assert acked
    for client_id, ack in acked.items():
        assert client_id in stored, f"acked message {client_id} lost"
        assert (stored[client_id]["seq"], stored[client_id]["id"]) == (ack["seq"], ack["id"])


async def test_sigkill_leaves_seqs_gapless_from_1(launch, tmp_path):
    """After kill -9 mid-burst, the room's seqs run 1, 2, 3, ... without a gap."""
    _, restarted = await burst_then_kill(launch, tmp_path / "data")
    seqs = [m["seq"] for m in await stored_messages(restarted)]
    assert seqs == list(range(1, len(seqs) + 1))
    assert seqs


# --- restarts -------------------------------------------------------------------------


async def test_restart_keeps_history(launch, tmp_path):
    """After a restart, a new client's first ``history`` frame holds the earlier messages."""
    server = await launch(tmp_path / "data", *UNLIMITED)
    client, _, _ = await connect_json(server.ws_url)
    acks = [await post(client, f"line {n}") for n in range(3)]
    client.close()
    assert await server.stop() == 0
    restarted = await launch(tmp_path / "data", *UNLIMITED)
    _, _, history = await connect_json(restarted.ws_url)
    assert [(m["seq"], m["id"], m["text"]) for m in history["messages"]] == [
        (a["seq"], a["id"], f"line {n}") for n, a in enumerate(acks)
    ]
    assert history["has_more"] is False


async def test_since_resume_across_restart_delivers_exactly_the_missed_messages(launch, tmp_path):
    """A client resuming with ``since`` after a restart gets exactly what it missed."""
    server = await launch(tmp_path / "data", *UNLIMITED)
    alice, _, _ = await connect_json(server.ws_url)
    bob, _, _ = await connect_json(server.ws_url)
    for n in range(2):
        await post(alice, f"seen {n}")
    last_seen = [(await bob.expect("message"))["seq"] for _ in range(2)][-1]
    bob.close()
    await post(alice, "missed before restart")
    alice.close()
    assert await server.stop() == 0

    restarted = await launch(tmp_path / "data", *UNLIMITED)
    carol, _, _ = await connect_json(restarted.ws_url)
    await post(carol, "missed after restart 1")
    await post(carol, "missed after restart 2")
    bob, _, history = await connect_json(restarted.ws_url, f"?since={last_seen}")
    assert [(m["seq"], m["text"]) for m in history["messages"]] == [
        (3, "missed before restart"),
        (4, "missed after restart 1"),
        (5, "missed after restart 2"),
    ]
    assert history["has_more"] is False
    await bob.silent(0.3)


# --- migrations ------------------------------------------------------------------------


async def test_fresh_data_dir_gets_database_at_alembic_head(launch, tmp_path):
    """A new data dir (created on start) gets chat.db stamped with the newest revision."""
    server = await launch(tmp_path / "new" / "nested" / "data", *UNLIMITED)
    assert await server.stop() == 0
    assert rows_in(server.db_path, STAMP) == [(head_revision(),)]
    tables = {name for (name,) in rows_in(server.db_path, "SELECT name FROM sqlite_master")}
    assert {"rooms", "messages"} <= tables


async def test_existing_database_is_reopened_with_data_intact(launch, tmp_path):
    """A database from a previous run opens again with every message exactly as it was."""
    first = await launch(tmp_path / "data", *UNLIMITED)
    client, _, _ = await connect_json(first.ws_url)
    for n in range(5):
        await post(client, f"kept {n}", client_id=f"k{n}")
    before = await stored_messages(first)
    client.close()
    assert await first.stop() == 0

    second = await launch(tmp_path / "data", *UNLIMITED)
    assert await stored_messages(second) == before
    assert len(before) == 5
    assert rows_in(second.db_path, STAMP) == [(head_revision(),)]
