"""Database faults over real sockets: a locked SQLite file, PostgreSQL connections killed,
PostgreSQL unreachable, and SIGTERM while the database does not answer. Senders hear
``unavailable`` within the bound, nothing is stored twice, and service resumes at once."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import PG_HOST, PG_PORT, PG_USER, Client, connect_json, metric, pg_admin, post
from factories import TICK, eventually
from netproxy import Proxy
from procs import EXIT_TIMEOUT
from tornado.httpclient import AsyncHTTPClient, HTTPClientError
from tornado.ioloop import IOLoop

#: The servers' bound on waiting for the database, in these tests.
DB_TIMEOUT = 5 * TICK


@contextlib.contextmanager
def write_locked(db_path: Path) -> Iterator[None]:
    """Hold SQLite's write lock from another connection (as a long transaction would)."""
    locker = sqlite3.connect(db_path, isolation_level=None, timeout=10)
    try:
        locker.execute("BEGIN IMMEDIATE")
        yield
        locker.execute("ROLLBACK")
    finally:
        locker.close()


async def unavailable(client: Client, client_id: str) -> dict:
    """Send a message; the error frame that answers it (the test fails on an ack)."""
    await client.send(
        {"type": "message", "room": "general", "text": "during", "client_id": client_id}
    )
    while True:
        frame = await client.recv(timeout=DB_TIMEOUT * 20)
        assert frame["type"] != "ack", frame
        if frame["type"] == "error":
            return frame


async def test_a_locked_database_answers_unavailable_and_a_resend_is_stored_once(serve, settings):
    """While another connection holds SQLite's write lock, a message gets ``unavailable``
    (naming it) within the bound; once the lock is gone, resending it stores it once and
    the room's members see it once."""
    port = await serve(db_timeout=DB_TIMEOUT)
    url = f"ws://127.0.0.1:{port}"
    sender, _, _ = await connect_json(url)
    watcher, _, _ = await connect_json(url)
    with write_locked(settings.data_dir / "chat.db"):
        error = await unavailable(sender, "k1")
        history = await AsyncHTTPClient().fetch(
            f"http://127.0.0.1:{port}/api/rooms/general/messages"
        )
        assert history.code == 200  # readers are not blocked by the write lock
    assert (error["code"], error["ref"], error["room"]) == ("unavailable", "k1", "general")
    ack = await post(sender, "during", client_id="k1")
    again = await post(sender, "during", client_id="k1")
    assert ack["seq"] == again["seq"] == 1
    seen = [await watcher.expect("message")]
    await post(sender, "after")
    seen.append(await watcher.expect("message"))
    assert [m["seq"] for m in seen] == [1, 2]


@pytest.fixture
def pg_database(io_loop: IOLoop) -> Iterator[str]:
    """A throwaway PostgreSQL database's name."""
    name = f"chatapp_faults_{uuid.uuid4().hex[:12]}"
    io_loop.run_sync(lambda: pg_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield name
    finally:
        io_loop.run_sync(lambda: pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def pg_proxy(io_loop: IOLoop) -> Iterator[Proxy]:
    """A proxy in front of the real PostgreSQL, which a test can cut off."""
    proxy = Proxy(PG_HOST, PG_PORT)
    io_loop.run_sync(proxy.start)
    yield proxy
    io_loop.run_sync(proxy.stop)


@pytest.mark.postgres
async def test_killed_postgresql_connections_are_replaced_without_a_lost_message(
    serve, pg_database
):
    """pg_terminate_backend on every server connection mid-traffic: the next messages are
    stored and acknowledged all the same (the failed batch is retried on a new connection)."""
    url = f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{pg_database}"
    port = await serve(db_url=url, db_timeout=5.0)
    sender, _, _ = await connect_json(f"ws://127.0.0.1:{port}")
    await post(sender, "before", client_id="b")
    await pg_admin(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        f"WHERE datname = '{pg_database}' AND pid <> pg_backend_pid()"
    )
    acks = [await post(sender, f"after {i}", client_id=f"a{i}") for i in range(3)]
    assert [a["seq"] for a in acks] == [2, 3, 4]
    page = await AsyncHTTPClient().fetch(f"http://127.0.0.1:{port}/api/rooms/general/messages")
    assert [m["seq"] for m in json.loads(page.body)["messages"]] == [1, 2, 3, 4]


@pytest.mark.postgres
async def test_unreachable_postgresql_is_503_and_unavailable_then_service_resumes(
    serve, pg_database, pg_proxy
):
    """With PostgreSQL cut off, scrollback is a 503 with a JSON reason (no traceback) and a
    message gets ``unavailable`` within the bound; once it is back, both work at once."""
    url = f"postgresql+asyncpg://{PG_USER}@127.0.0.1:{pg_proxy.port}/{pg_database}"
    port = await serve(db_url=url, db_timeout=DB_TIMEOUT)
    sender, _, _ = await connect_json(f"ws://127.0.0.1:{port}")
    await post(sender, "before")
    await pg_proxy.stop()
    with pytest.raises(HTTPClientError) as refused:
        await AsyncHTTPClient().fetch(f"http://127.0.0.1:{port}/api/rooms/general/messages")
    assert refused.value.code == 503
    assert json.loads(refused.value.response.body)["error"] == "unavailable"
    error = await unavailable(sender, "k1")
    assert (error["code"], error["ref"]) == ("unavailable", "k1")
    await pg_proxy.start()
    ack = await post(sender, "during", client_id="k1")
    assert ack["seq"] == 2


async def test_sigterm_with_a_locked_database_ends_in_time_and_tells_waiting_senders(launch):
    """SIGTERM while the database does not answer: after --shutdown-timeout the server
    exits (status 0); a sender still waiting is told ``unavailable``, then the 1001 close."""
    server = await launch(None, "--db-timeout", "30", "--shutdown-timeout", "1")
    sender, _, _ = await connect_json(server.ws_url)
    with write_locked(server.db_path):
        await sender.send(
            {"type": "message", "room": "general", "text": "stuck", "client_id": "s1"}
        )
        await eventually(
            lambda: metric(server.http_url, "chatapp_messages_received_total"),
            "the message queued behind the lock",
        )
        exit_code = asyncio.ensure_future(server.stop(signal.SIGTERM))
        frames = []
        while (raw := await sender.raw(timeout=EXIT_TIMEOUT)) is not None:
            frames.append(raw)
        assert await exit_code == 0
    assert any('"code":"unavailable"' in f and '"ref":"s1"' in f for f in frames), frames
    assert sender.conn.close_code == 1001
