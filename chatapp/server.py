"""Running the server: assemble the parts, listen, and shut down cleanly on a signal.

Shutdown order matters for durability: stop accepting connections, commit
and acknowledge every queued message, close sockets with 1001, and only then
release the database.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import tempfile
from dataclasses import dataclass

from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.web import Application

from chatapp.auth import keys
from chatapp.broker import Broker
from chatapp.broker.memory import LocalBroker
from chatapp.broker.redis import RedisBroker, RedisConnection
from chatapp.core.admission import Admission
from chatapp.core.hub import Hub
from chatapp.core.service import ChatService
from chatapp.errors import ConfigError, ErrorCode, ExitCode, UsageError, close_code
from chatapp.ops.gcpause import FullCollectionGuard
from chatapp.ops.metrics import Metrics
from chatapp.presence import Presence
from chatapp.presence.memory import LocalPresence
from chatapp.presence.redis import RedisPresence
from chatapp.settings import Settings
from chatapp.store.engine import open_store
from chatapp.store.file_lock import lock_database
from chatapp.web.app import make_app
from chatapp.web.connection import Socket
from chatapp.web.keepalive import Keepalive
from chatapp.web.listening import GuardedSocket
from chatapp.workers import fork_workers

log = logging.getLogger(__name__)

#: Seconds to wait for clients to answer the close frame at shutdown.
CLOSE_GRACE_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class Chat:
    """A running chat backend: the application plus the service that owns its state."""

    app: Application
    service: ChatService
    metrics: Metrics
    database: str
    keepalive: Keepalive


async def build(settings: Settings) -> Chat:
    """Open (and migrate, unless ``--no-migrate``) the database and wire every part together.

    Raises a ``ChatError`` whose reason tells the operator, in one line, what
    keeps the server from starting.
    """
    _prepare_data_dir(settings)
    key = keys.verification_key(settings)  # a bad key fails before the database is touched
    store = await open_store(
        settings.database_url, settings.db_timeout, migrate_schema=not settings.no_migrate
    )
    try:
        auth = keys.authenticator(settings, key, await keys.guest_secret(settings, store))
        broker, presence = await _shared(settings)
    except BaseException:
        await store.close()
        raise
    metrics = Metrics()
    hub = Hub(metrics, presence)
    admission = Admission(
        per_user=settings.max_connections_per_user,
        per_address=settings.max_connections_per_address,
        total=settings.max_connections,
        presence=presence,
    )
    service = ChatService(
        store,
        hub,
        broker,
        metrics,
        admission,
        max_rooms=settings.max_rooms_per_connection,
        retention_days=settings.retention_days,
        db_timeout=settings.db_timeout,
        presence=presence,
    )
    await service.start()
    open_sockets: set[Socket] = set()
    app = make_app(service, auth, settings, metrics, open_sockets)
    keepalive = Keepalive(lambda: open_sockets, settings.ping_interval)
    keepalive.start()
    return Chat(app, service, metrics, store.description, keepalive)


async def _shared(settings: Settings) -> tuple[Broker, Presence]:
    """What processes share: through Redis with ``--redis`` (connected, or ``ConfigError``),
    else nothing (the in-process broker and presence)."""
    if settings.redis_url is None:
        return LocalBroker(), LocalPresence()
    redis = RedisConnection(settings.redis_url)
    await redis.start()
    return RedisBroker(redis), RedisPresence(redis, ttl=settings.presence_ttl)


def _prepare_data_dir(settings: Settings) -> None:
    """Create the data directory private (0700) unless it exists, and check it is writable."""
    try:
        settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=settings.data_dir):
            pass
    except OSError as exc:
        raise ConfigError(
            f"data directory {str(settings.data_dir)!r} is not writable: {exc.strerror}"
        ) from None


async def stop(server: HTTPServer, chat: Chat, timeout: float) -> None:
    """Graceful shutdown: stop accepting, then ``shut_down``."""
    server.stop()
    await shut_down(chat, timeout)


async def shut_down(chat: Chat, timeout: float | None = None) -> None:
    """Commit and acknowledge everything queued, close sockets with 1001, release the database.

    Nothing acknowledged or queued is lost. With a database that does not
    answer, the drain ends after ``timeout`` seconds: senders still waiting
    are told ``unavailable`` (nothing of theirs was acknowledged).
    """
    service = chat.service
    await chat.keepalive.close()
    await service.drain(timeout)
    open_now = list(service.admission.open)  # let every sender hear how its message ended
    await asyncio.gather(*(conn.finish_requests(CLOSE_GRACE_SECONDS) for conn in open_now))
    for conn in list(service.admission.open):
        conn.close(close_code(ErrorCode.SHUTTING_DOWN), "server shutting down")
    try:
        await asyncio.wait_for(service.admission.all_closed(), CLOSE_GRACE_SECONDS)
    except TimeoutError:
        log.warning("%d clients did not close in time", len(service.admission.open))
    await service.close()


def run(settings: Settings) -> int:
    """Serve until SIGTERM or SIGINT, in this process or, with ``--workers N``, in N forked
    ones (``chatapp.workers``); the exit code. Start-up problems raise ``ChatError``."""
    if settings.workers > 1 and settings.redis_url is None:
        raise UsageError(
            f"--workers {settings.workers} needs --redis URL: worker processes reach each "
            "other's members only through Redis"
        )
    # bind first: a taken port should fail before the database is touched
    sockets = _bind(settings.host, settings.port, reuse_port=settings.workers > 1)
    if settings.workers == 1:
        asyncio.run(serve(settings, sockets))
        return ExitCode.OK
    port = sockets[0].getsockname()[1]
    try:
        asyncio.run(_rehearse(settings))
    finally:
        for sock in sockets:  # each worker binds its own (SO_REUSEPORT): none may linger here
            sock.close()
    status = fork_workers(settings.workers)
    if status is not None:
        return status
    asyncio.run(serve(settings, _bind(settings.host, port, reuse_port=True)))
    return ExitCode.OK


def _bind(host: str, port: int, *, reuse_port: bool) -> list[socket.socket]:
    """Listening sockets that pause rather than spin when the process is out of files."""
    try:
        return [GuardedSocket.guarding(s) for s in bind_sockets(port, host, reuse_port=reuse_port)]
    except OSError as exc:
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


async def _rehearse(settings: Settings) -> None:
    """Build the whole server once and take it down again, before forking workers: the
    database is migrated and the guest secret made by one process, and a set-up that cannot
    work (a bad database, Redis unreachable) fails here, with one message, not N."""
    await shut_down(await build(settings))


async def serve(settings: Settings, sockets: list[socket.socket]) -> None:
    """Run on ``sockets`` until SIGTERM or SIGINT, then stop gracefully.

    Alone on a SQLite file, the server holds it (``lock_database``) from before the
    migrations until it exits, so a second server on the same file refuses to start;
    processes that share Redis share the file.
    """
    try:
        _prepare_data_dir(settings)  # where the default database and its lock file go
        with lock_database(settings.database_url, shared=settings.redis_url is not None):
            await _run(settings, sockets)
    finally:
        for sock in sockets:
            sock.close()  # unless the server took them (closing twice is harmless)


async def _run(settings: Settings, sockets: list[socket.socket]) -> None:
    chat = await build(settings)
    server = HTTPServer(chat.app, xheaders=settings.trusted_proxy)
    server.add_sockets(sockets)
    collector = FullCollectionGuard(lambda: len(chat.service.admission.open))
    collector.start()
    port = sockets[0].getsockname()[1]
    log.info(
        "chatapp listening on http://%s:%d/ (database %s, pid %d)",
        settings.host,
        port,
        chat.database,
        os.getpid(),
    )
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    await stopping.wait()
    log.info("shutting down")
    await stop(server, chat, settings.shutdown_timeout)
    await collector.close()
