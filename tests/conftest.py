"""Shared fixtures: a real chat server on a real port, and a small WebSocket client.

``chat_factory`` builds the server from ``Settings`` (as ``python -m chatapp``
does), ``app`` hands it to pytest-tornasync, which serves it on
``http_server_port``; ``ws_url`` / ``http_url`` point at it. ``launch`` starts
``python -m chatapp`` itself as a subprocess (helpers in ``procs.py``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import itertools
import json
import os
import re
import socket
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from chatdata import populate
from factories import PATIENCE, TICK
from procs import EXIT_TIMEOUT, REPO, Launch, Server, spawn_server, wait_ready
from redisproc import RedisServer
from sqlalchemy.engine import make_url
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop
from tornado.testing import bind_unused_port
from tornado.web import Application
from tornado.websocket import WebSocketClientConnection, websocket_connect

from chatapp.server import Chat, build, shut_down
from chatapp.settings import Settings
from chatapp.store.engine import open_store
from chatapp.store.sql import SqlStore

#: The SQL interface's documentation, whose examples and role the tests run.
SQL_DOC = REPO / "docs" / "sql.md"
#: Seconds a test waits for a frame it expects.
RECV_TIMEOUT = PATIENCE
#: Every client connection a test opened, closed after the test.
_opened: list[WebSocketClientConnection] = []


@pytest.fixture
def io_loop() -> Iterator[IOLoop]:
    """A fresh loop per test that is closed afterwards (the plugin's leaks one)."""
    loop = IOLoop(make_current=False)
    asyncio.set_event_loop(loop.asyncio_loop)  # type: ignore[attr-defined]
    yield loop
    loop.run_sync(_finish_pending_tasks)
    loop.close(all_fds=True)
    asyncio.set_event_loop(None)


async def _finish_pending_tasks() -> None:
    """Cancel what a test left running and let it unwind while the loop still runs.

    Otherwise a task holding a database connection is collected after the loop
    closed, and aiosqlite's worker thread fails reporting to that closed loop.
    """
    current = asyncio.current_task()
    pending = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)


@pytest.fixture(autouse=True)
def close_clients(io_loop: IOLoop) -> Iterator[None]:
    yield
    while _opened:
        _opened.pop().close()


#: Where the suite finds PostgreSQL (libpq's PGHOST and PGPORT may point elsewhere) and Redis.
PG_HOST = os.environ.get("PGHOST", "127.0.0.1")
PG_PORT = int(os.environ.get("PGPORT", "5432"))
PG_USER, PG_ADMIN_DB = "postgres", "test"
REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
#: The tests that need a service carry its marker.
SERVICES = {"postgres": (PG_HOST, PG_PORT), "redis": (REDIS_HOST, REDIS_PORT)}
#: Seconds to wait for a service to accept a connection.
SERVICE_TIMEOUT = 2.0


@functools.cache
def answers(host: str, port: int) -> bool:
    """Whether something accepts TCP connections at ``host:port`` (asked once per run)."""
    try:
        with socket.create_connection((host, port), timeout=SERVICE_TIMEOUT):
            return True
    except OSError:
        return False


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip a test whose service does not answer, with the reason; in CI (``CI`` set), fail it.

    CI must run every test, as it must run the browser tests.
    """
    for marker, (host, port) in SERVICES.items():
        if item.get_closest_marker(marker) is None or answers(host, port):
            continue
        reason = f"{marker} does not answer on {host}:{port}"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}, and CI requires it", pytrace=False)
        pytest.skip(f"{reason} (start it to run this test; CI requires it)")


async def pg_admin(statement: str, database: str = PG_ADMIN_DB) -> None:
    """Run SQL (one or several statements) as the PostgreSQL superuser in ``database``."""
    import asyncpg

    conn = await asyncpg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, database=database)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def db_url(request: pytest.FixtureRequest, tmp_path: Path, io_loop: IOLoop) -> Iterator[str]:
    """The URL of a fresh, empty database on each backend (a throwaway PostgreSQL database)."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'chat.db'}"
        return
    name = f"chatapp_test_{uuid.uuid4().hex[:16]}"
    io_loop.run_sync(lambda: pg_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        io_loop.run_sync(lambda: pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    """A ``redis-server`` of this test's own, which it may stop, restart or kill."""
    server = RedisServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def store(db_url: str, io_loop: IOLoop) -> Iterator[SqlStore]:
    """A migrated store on a fresh database of each backend, closed after the test."""
    opened = io_loop.run_sync(lambda: open_store(db_url))
    yield opened
    io_loop.run_sync(opened.close)


@pytest.fixture
def populated(db_url: str, io_loop: IOLoop) -> Iterator[str]:
    """A database of each backend holding the sample history of ``chatdata``."""
    io_loop.run_sync(lambda: populate(db_url))
    yield db_url


@pytest.fixture
def reader_url(populated: str, io_loop: IOLoop) -> Iterator[str]:
    """``populated`` as ``python -m chatapp sql`` should read it: on PostgreSQL as the
    SELECT-only role that docs/sql.md creates (its SQL verbatim, names aside); SQLite as is."""
    if not populated.startswith("postgresql"):
        yield populated
        return
    url = make_url(populated)
    role = f"reader_{uuid.uuid4().hex[:12]}"
    [block] = re.findall(r"^```plpgsql\n(.*?)^```", SQL_DOC.read_text(), re.MULTILINE | re.DOTALL)
    script = re.sub(r"\bchatapp_reader\b", role, block)
    script = re.sub(r"\bchatapp\b", PG_USER, script)  # the doc's server role
    script = re.sub(r"\bchat\b", f'"{url.database}"', script)  # the doc's database
    io_loop.run_sync(lambda: pg_admin(script, str(url.database)))
    try:
        yield url.set(username=role, password=None).render_as_string(hide_password=False)
    finally:
        io_loop.run_sync(lambda: pg_admin(f'DROP OWNED BY "{role}"', str(url.database)))
        io_loop.run_sync(lambda: pg_admin(f'DROP ROLE "{role}"'))


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Defaults as shipped, but in a temporary data dir and without the rate limit."""
    return Settings(data_dir=tmp_path / "data", rate_limit=0)


@pytest.fixture
def chat_factory(io_loop: IOLoop) -> Iterator[Callable[[Settings], Chat]]:
    built: list[Chat] = []

    def make(settings: Settings) -> Chat:
        chat = io_loop.run_sync(lambda: build(settings))
        built.append(chat)
        return chat

    yield make
    for chat in built:
        io_loop.run_sync(partial(shut_down, chat))


@pytest.fixture
def chat(chat_factory: Callable[[Settings], Chat], settings: Settings) -> Chat:
    return chat_factory(settings)


@pytest.fixture
def serve(settings: Settings, io_loop: IOLoop) -> Iterator[Callable[..., Awaitable[int]]]:
    """In a test: start another server with some settings changed; returns its port."""
    started: list[tuple[HTTPServer, Chat]] = []

    async def start(**changes: Any) -> int:
        chat = await build(dataclasses.replace(settings, **changes))
        sock, port = bind_unused_port()
        server = HTTPServer(chat.app)
        server.add_socket(sock)
        started.append((server, chat))
        return port

    yield start
    for server, chat in started:
        server.stop()
        io_loop.run_sync(partial(shut_down, chat))


@pytest.fixture
def launch(io_loop: IOLoop, tmp_path: Path) -> Iterator[Launch]:
    """Start ``python -m chatapp`` servers; every process left over is killed at teardown.

    ``await launch(data_dir=None, *args, env=None)``: a server on a free port and
    ``data_dir`` (``tmp_path / "data"`` by default) with extra CLI ``args`` and extra
    environment variables ``env``, once GET /healthz answers.
    """
    started: list[Server] = []
    numbers = itertools.count()  # several may start at once: name logs before awaiting

    async def start(
        data_dir: Path | None = None, *args: str, env: Mapping[str, str] | None = None
    ) -> Server:
        log = tmp_path / f"server-{next(numbers)}.log"
        server = await spawn_server(
            data_dir or tmp_path / "data", *args, cwd=tmp_path, log=log, env=env
        )
        started.append(server)
        await wait_ready(server)
        return server

    yield start
    for server in started:
        if server.proc.returncode is None:
            server.proc.kill()
            io_loop.run_sync(server.proc.wait, timeout=EXIT_TIMEOUT)


@pytest.fixture
def app(chat: Chat) -> Application:
    return chat.app


@pytest.fixture
def port(http_server: Any, http_server_port: tuple[Any, int]) -> int:
    return http_server_port[1]


@pytest.fixture
def unused_tcp_port_url() -> str:
    """A ws:// URL on which nothing listens."""
    sock, port = bind_unused_port()
    sock.close()
    return f"ws://127.0.0.1:{port}"


@pytest.fixture
def ws_url(port: int) -> str:
    return f"ws://127.0.0.1:{port}"


@pytest.fixture
def http_url(port: int) -> str:
    return f"http://127.0.0.1:{port}"


class Client:
    """A JSON (or plain-text) WebSocket client with helpers that wait for frames."""

    def __init__(self, conn: WebSocketClientConnection) -> None:
        self.conn = conn

    async def send(self, frame: dict[str, Any] | str | bytes) -> None:
        data = json.dumps(frame) if isinstance(frame, dict) else frame
        await self.conn.write_message(data, binary=isinstance(data, bytes))

    async def raw(self, timeout: float = RECV_TIMEOUT) -> str | bytes | None:
        """The next frame as sent, or None once the server has closed the connection."""
        return await asyncio.wait_for(self.conn.read_message(), timeout)

    async def recv(self, timeout: float = RECV_TIMEOUT) -> dict[str, Any]:
        raw = await self.raw(timeout)
        assert raw is not None, (
            f"connection closed: {self.conn.close_code} {self.conn.close_reason}"
        )
        frame: dict[str, Any] = json.loads(raw)
        return frame

    async def expect(self, kind: str, timeout: float = RECV_TIMEOUT) -> dict[str, Any]:
        """The next frame of type ``kind``, skipping presence and typing notices."""
        while True:
            frame = await self.recv(timeout)
            if frame["type"] == kind:
                return frame
            assert frame["type"] in {"presence", "typing"}, f"expected {kind}, got {frame}"

    async def expect_ack(self, timeout: float = RECV_TIMEOUT) -> dict[str, Any]:
        """The next ``ack``, skipping echoes of messages and notices."""
        while True:
            frame = await self.recv(timeout)
            if frame["type"] == "ack":
                return frame
            assert frame["type"] in {"presence", "typing", "message"}, f"expected ack: {frame}"

    async def silent(
        self, seconds: float = 3 * TICK, ignore: tuple[str, ...] = ("presence",)
    ) -> None:
        """Assert that nothing but ``ignore`` arrives for ``seconds``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while (left := deadline - loop.time()) > 0:
            try:
                raw = await asyncio.wait_for(self.conn.read_message(), left)
            except TimeoutError:
                return
            assert raw is not None, "connection closed"
            frame = json.loads(raw)
            assert frame["type"] in ignore, f"unexpected frame {frame}"

    async def closed(self, timeout: float = RECV_TIMEOUT) -> tuple[int | None, str | None]:
        """Read until the server closes; the close code and reason."""
        while await self.raw(timeout) is not None:
            pass
        return self.conn.close_code, self.conn.close_reason

    def close(self) -> None:
        self.conn.close()


async def open_client(
    url: str, headers: dict[str, str] | None = None, **kwargs: Any
) -> WebSocketClientConnection:
    conn = await websocket_connect(HTTPRequest(url, headers=headers or {}), **kwargs)
    _opened.append(conn)
    return conn


async def connect_json(
    ws_url: str, query: str = "", headers: dict[str, str] | None = None
) -> tuple[Client, dict[str, Any], dict[str, Any]]:
    """Connect to ``/ws``; returns the client, its ``hello`` and its first ``history``."""
    client = Client(await open_client(f"{ws_url}/ws{query}", headers))
    hello = await client.expect("hello")
    history = await client.expect("history")
    return client, hello, history


async def post(
    client: Client, text: str, room: str = "general", client_id: str | None = None
) -> dict[str, Any]:
    """Send a message and wait for its ack (skipping the echo and other frames)."""
    frame: dict[str, Any] = {"type": "message", "room": room, "text": text}
    if client_id is not None:
        frame["client_id"] = client_id
    await client.send(frame)
    return await client.expect_ack()


async def sign_in(http_url: str, body: dict[str, Any]) -> dict[str, Any]:
    """``POST /api/guest`` with ``body`` (the guest's name, maybe a previous token); the answer."""
    response = await AsyncHTTPClient().fetch(
        f"{http_url}/api/guest", method="POST", body=json.dumps(body)
    )
    answer: dict[str, Any] = json.loads(response.body)
    return answer


def sample(lines: list[str], name: str) -> float:
    """The value of one sample line of the Prometheus text format."""
    [line] = [line for line in lines if line.split(" ")[0] == name]
    return float(line.split(" ")[1])


async def metric(http_url: str, name: str) -> float:
    """One sample of the server's ``/metrics`` now."""
    response = await AsyncHTTPClient().fetch(f"{http_url}/metrics")
    return sample(response.body.decode().splitlines(), name)
