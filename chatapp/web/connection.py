"""What both WebSocket endpoints share: who is connected, flow-controlled sending,
keepalive, the rate limit, and cleanup.

Handlers stay thin: check who and where from (before the upgrade, so a
refusal is an HTTP status with a JSON reason), decode frames, call the
service, encode what comes back with the endpoint's encoder. No exception
escapes: a ``ChatError`` becomes an error reply, anything unexpected is
logged and answered generically.

Sending is flow-controlled (``Outbox``): history and catch-up are sent a
page at a time as the client takes them, and a client whose backlog is full
gets live traffic again from the database once it has room.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import AsyncGenerator, Awaitable
from contextlib import aclosing
from functools import partial
from typing import Any

from tornado.http1connection import HTTP1Connection
from tornado.httputil import HTTPHeaders
from tornado.ioloop import IOLoop
from tornado.util import ObjectDict
from tornado.websocket import WebSocketHandler, WebSocketProtocol, _WebSocketParams

from chatapp.auth.tokens import Authenticator, Identity
from chatapp.core.hub import Delivery
from chatapp.core.service import ChatService
from chatapp.errors import ChatError, ErrorCode, LimitReached, Unavailable, close_code
from chatapp.limits import MAX_INFLIGHT_PER_CONNECTION, MAX_REJECTED_FRAMES
from chatapp.model import Appended, History, User
from chatapp.ops import instance
from chatapp.ops.logs import connection_id
from chatapp.ops.metrics import Metrics
from chatapp.settings import Settings
from chatapp.web.edge import BaseHandler, client_address, is_loopback, require_allowed_origin
from chatapp.web.encoders import Encoder, Encoders
from chatapp.web.outbox import Corks, Outbox
from chatapp.web.ratelimit import TokenBucket
from chatapp.web.wsreader import BufferedProtocol13

log = logging.getLogger(__name__)

#: Connection ids are unique across processes: this process's tag, then a counter.
_connection_numbers = itertools.count(1)
#: What an open socket keeps of its HTTP exchange: nothing (shared, never written to).
_NO_HEADERS = HTTPHeaders()
_NO_UI = ObjectDict()


class Socket(BaseHandler, WebSocketHandler):
    """What both WebSocket endpoints share: identity, flow control, rate limit, cleanup.

    Its own state lives in slots, not in the instance dict, and the HTTP request's
    leftovers are dropped once the socket is open: an idle connection should cost
    little, since a server holds tens of thousands of them.
    """

    __slots__ = (
        "_bucket",
        "_catching_up",
        "_closing",
        "_corks",
        "_expiry",
        "_outbox",
        "_rejected",
        "_tasks",
        "address",
        "alive",
        "auth",
        "encoders",
        "id",
        "identity",
        "metrics",
        "open_sockets",
        "server_settings",
        "service",
    )

    def initialize(
        self,
        service: ChatService,
        auth: Authenticator,
        settings: Settings,
        metrics: Metrics,
        encoders: Encoders,
        open_sockets: set[Socket],
        corks: Corks,
    ) -> None:
        self.encoders = encoders
        self._corks = corks
        self.open_sockets = open_sockets
        self.service = service
        self.auth = auth
        self.server_settings = settings
        self.metrics = metrics
        self.id = f"{instance.tag()}.{next(_connection_numbers):x}"
        self.identity = Identity(User("", ""))
        self.address = ""
        self._outbox: Outbox | None = None
        self._expiry: object | None = None
        self._bucket = (
            TokenBucket(settings.rate_limit, settings.rate_burst) if settings.rate_limit else None
        )
        self._rejected = 0
        self._closing = False
        self._catching_up = False
        self._tasks: set[asyncio.Future[Any]] | None = None  # made on first use
        self.alive = True  # any frame or pong since the last keepalive round

    @property
    def user(self) -> User:
        return self.identity.user

    @property
    def encoder(self) -> Encoder:
        """This endpoint's encoder (from the server's ``Encoders``)."""
        raise NotImplementedError

    async def prepare(self) -> None:
        """Refuse before the upgrade: foreign origin 403, no identity 401, over a cap 429/503
        (the per-user cap counting the user's connections on every process)."""
        connection_id.set(self.id)
        require_allowed_origin(self, self.server_settings)
        self.identity = self.identify(self.auth)
        self.address = client_address(self, self.server_settings)
        self.service.admission.check(
            self.identity.user.id, None if is_loopback(self.address) else self.address
        )
        await self.service.admission.check_elsewhere(self.identity.user.id)

    def check_origin(self, origin: str) -> bool:
        return True  # decided in prepare(), which answers with a JSON reason

    def get_compression_options(self) -> None:
        return None  # compression costs CPU per receiver and defeats encode-once

    def get_websocket_protocol(self) -> WebSocketProtocol | None:
        """Tornado's protocol with our frame reader (``wsreader``); other versions: 426."""
        if self.request.headers.get("Sec-WebSocket-Version") != "13":
            return None
        params = _WebSocketParams(
            ping_interval=self.ping_interval,
            ping_timeout=self.ping_timeout,
            max_message_size=self.max_message_size,
            compression_options=None,  # see get_compression_options
        )
        return BufferedProtocol13(self, False, params)

    def _start(self) -> None:
        self.set_nodelay(True)
        assert self.ws_connection is not None and self.ws_connection.stream is not None
        self._outbox = Outbox(
            self.ws_connection.stream,
            self.server_settings.max_client_backlog,
            self.server_settings.slow_client_timeout,
            self._stalled,
            self._corks,
        )
        self.service.connect(self)
        self.open_sockets.add(self)
        self._forget_http()
        if self.identity.expires_at is not None:
            self._expiry = IOLoop.current().call_later(
                max(0.0, self.identity.expires_at - time.time()), self._token_expired
            )

    def _forget_http(self) -> None:
        """Drop what only the HTTP exchange needed: the request's headers and the handler's
        response state and template helpers (a kilobyte or two per idle connection)."""
        self.request.headers = _NO_HEADERS
        if isinstance(self.request.connection, HTTP1Connection):  # it keeps its own reference
            self.request.connection._request_headers = _NO_HEADERS
        self.request.arguments = self.request.query_arguments = self.request.body_arguments = {}
        self._headers = _NO_HEADERS
        self.ui = _NO_UI

    def on_pong(self, data: bytes) -> None:
        self.alive = True

    def on_ping(self, data: bytes) -> None:
        self.alive = True

    def _token_expired(self) -> None:
        self.close(close_code(ErrorCode.TOKEN_EXPIRED), "token expired")

    def _stalled(self) -> None:
        self.metrics.slow_consumers.inc()
        log.info("disconnecting %s: took nothing of its backlog in time", self.id)
        self.close(close_code(ErrorCode.SLOW_CONSUMER), "too slow: the backlog was not read")

    # --- sending -------------------------------------------------------------

    def push(self, delivery: Delivery) -> bool:
        """Live traffic from the hub; False when the backlog is full (then catch up later)."""
        if self._outbox is None:
            return True
        data = self.encoder.delivery(delivery, self)
        if not data or self._outbox.write(data):
            return True
        if not self._catching_up:
            self._catching_up = True
            self.metrics.lagging.inc()
            self._spawn(self._catch_up())
        return False

    def reply(self, data: bytes) -> None:
        """An answer to this client's own request: queued whatever the backlog."""
        if self._outbox is not None:
            self._outbox.write(data, force=True)

    async def _send_all(self, items: AsyncGenerator[History | Delivery, None]) -> None:
        """Send history and catch-up as the client takes it: one page at a time."""
        async with aclosing(items):
            async for item in items:
                assert self._outbox is not None
                await self._outbox.drained()
                if self._closing:
                    return
                if isinstance(item, History):
                    self.reply(self.encoder.history(item))
                else:
                    self.reply(self.encoder.delivery(item, self))

    async def _catch_up(self) -> None:
        try:
            await self._guarded(self._send_all(self.service.catch_up(self)))
        finally:
            self._catching_up = False

    def report(self, error: ChatError) -> None:
        self.metrics.errors.labels(code=str(error.code)).inc()
        self.reply(self.encoder.error(error))

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        self._closing = True
        if self._outbox is not None:
            self._outbox.uncork()  # what this turn wrote goes before the close frame
            self._outbox.close()
        super().close(code, reason)

    # --- receiving ------------------------------------------------------------

    def on_message(self, message: str | bytes) -> Awaitable[None] | None:
        """Every frame: a sign of life, then the rate limit, then the endpoint's ``handle``."""
        connection_id.set(self.id)
        self.alive = True
        if self._closing:
            return None
        if not self._admit():
            self.report(self.refused(message))
            return None
        return self.handle(message)

    def handle(self, message: str | bytes) -> Awaitable[None] | None:
        """Decode and serve one frame (past the rate limit); an awaitable makes Tornado wait
        for it before reading the next frame."""
        raise NotImplementedError

    def refused(self, message: str | bytes) -> LimitReached:
        """The error that answers a frame dropped by the rate limit."""
        return LimitReached("slow down")

    def _admit(self) -> bool:
        """Apply the rate limit; a client that keeps flooding is closed with 1008."""
        if self._bucket is None or self._bucket.allow():
            self._rejected = 0
            return True
        self._rejected += 1
        self.metrics.rate_limited.inc()
        if self._rejected > MAX_REJECTED_FRAMES:
            self.close(close_code(ErrorCode.FLOODING), "flooding past the rate limit")
        return False

    def _post(self, room: str, text: str, client_id: str | None) -> Awaitable[None] | None:
        """Post a message without waiting, so the next frame can join the same commit.

        No task per message: the ack (``acknowledge``) or the error is sent from
        the stored future's callback. Past MAX_INFLIGHT_PER_CONNECTION an
        awaitable is returned, and the reader waits for it before reading on:
        backpressure on a flooding client.
        """
        try:
            stored = self.service.post_soon(self, room, text, client_id)
        except ChatError as exc:
            self._report_for(exc, client_id, room)
            return None
        in_flight = self._in_flight()
        in_flight.add(stored)  # one callback per message answers and forgets it
        stored.add_done_callback(partial(self._stored, client_id, room))
        if len(in_flight) <= MAX_INFLIGHT_PER_CONNECTION:
            return None
        return _settled(stored)

    def _stored(self, client_id: str | None, room: str, stored: asyncio.Future[Appended]) -> None:
        if self._tasks is not None:
            self._tasks.discard(stored)
        if stored.cancelled():
            return
        error = stored.exception()
        if error is None:
            self.acknowledge(stored.result())
        elif isinstance(error, ChatError):
            self._report_for(error, client_id, room)
        else:
            log.error("storing a message failed on connection %s", self.id, exc_info=error)
            self.report(Unavailable("internal error", ref=client_id, room=room))

    def acknowledge(self, stored: Appended) -> None:
        """Tell the client its message is stored (the text endpoint says nothing)."""

    async def finish_requests(self, timeout: float) -> None:
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)

    def _in_flight(self) -> set[asyncio.Future[Any]]:
        """What this connection still runs (shutdown waits for it), made on first use."""
        if self._tasks is None:
            self._tasks = set()
        return self._tasks

    def _spawn(self, work: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(work)
        in_flight = self._in_flight()
        in_flight.add(task)
        task.add_done_callback(in_flight.discard)

    async def _guarded(
        self, work: Awaitable[None], ref: str | None = None, room: str | None = None
    ) -> None:
        """Run one request; turn every failure into an error reply, never a crash.

        The reply names the request's room, so a client can tell which one failed.
        """
        try:
            await work
        except ChatError as exc:
            self._report_for(exc, ref, room)
        except Exception:
            log.exception("request failed on connection %s", self.id)
            self.report(Unavailable("internal error", ref=ref, room=room))

    def _report_for(self, error: ChatError, ref: str | None, room: str | None) -> None:
        error.ref = error.ref or ref
        error.room = error.room or room
        self.report(error)

    def on_close(self) -> None:
        connection_id.set(self.id)
        self._closing = True
        if self._outbox is not None:
            self._outbox.close()
        if self._expiry is not None:
            IOLoop.current().remove_timeout(self._expiry)
        self.open_sockets.discard(self)
        self._spawn(self.service.disconnect(self))


async def _settled(work: asyncio.Future[Any]) -> None:
    """Wait for ``work`` without raising its error: the reader would take it for a fault
    of the connection (the error reaches the client through ``work``'s own callback)."""
    await asyncio.wait([work])
