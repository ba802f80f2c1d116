"""The two WebSocket endpoints: JSON at ``/ws`` and the tutorial's plain text at ``/``.

Handlers stay thin: check who and where from (before the upgrade, so a
refusal is an HTTP status with a JSON reason), decode frames, call the
service, encode replies. No exception escapes: protocol errors become
``error`` frames, anything unexpected is logged and answered generically.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from collections.abc import Awaitable
from typing import Any, ClassVar

from tornado.ioloop import IOLoop
from tornado.iostream import IOStream, StreamBufferFullError, StreamClosedError
from tornado.websocket import WebSocketHandler

from chatapp import SERVER_NAME
from chatapp.auth.tokens import Authenticator, Identity
from chatapp.core import protocol
from chatapp.core.service import ChatService, require_access
from chatapp.errors import (
    ChatError,
    ErrorCode,
    LimitReached,
    RequestError,
    Unavailable,
    close_code,
)
from chatapp.limits import DEFAULT_ROOM, MAX_INFLIGHT_PER_CONNECTION, MAX_REJECTED_FRAMES
from chatapp.model import User
from chatapp.ops.logs import connection_id
from chatapp.ops.metrics import Metrics
from chatapp.settings import Settings
from chatapp.web.edge import BaseHandler, client_address, is_loopback, require_allowed_origin
from chatapp.web.ratelimit import TokenBucket
from chatapp.web.wsframe import text_frame

log = logging.getLogger(__name__)

_connection_ids = itertools.count(1)


def _send_now(stream: IOStream, data: bytes) -> int:
    """Write what the socket takes without blocking; the rest is for ``stream.write``."""
    try:
        return stream.socket.send(data)
    except (BlockingIOError, InterruptedError):
        return 0
    except OSError:
        return 0  # stream.write meets the same error and closes the stream


class _Socket(BaseHandler, WebSocketHandler):
    """What both WebSocket endpoints share: identity, backpressure, rate limit, cleanup."""

    text_mode: ClassVar[bool] = False

    def initialize(
        self, service: ChatService, auth: Authenticator, settings: Settings, metrics: Metrics
    ) -> None:
        self.service = service
        self.auth = auth
        self.config = settings
        self.metrics = metrics
        self.id = f"c{next(_connection_ids)}"
        self.identity = Identity(User("", ""))
        self.address = ""
        self._expiry: object | None = None
        self._bucket = (
            TokenBucket(settings.rate_limit, settings.rate_burst) if settings.rate_limit else None
        )
        self._rejected = 0
        self._closing = False
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def user(self) -> User:
        return self.identity.user

    def prepare(self) -> None:
        """Refuse before the upgrade: hostile origin 403, no identity 401, over a cap 429."""
        connection_id.set(self.id)
        require_allowed_origin(self, self.config)
        self.identity = self.identify(self.auth)
        self.address = client_address(self, self.config)
        refusal = self.service.admission(
            self.identity.user.id, None if is_loopback(self.address) else self.address
        )
        if refusal:
            raise LimitReached(refusal, ErrorCode.TOO_MANY_CONNECTIONS)

    def check_origin(self, origin: str) -> bool:
        return True  # decided in prepare(), which answers with a JSON reason

    def get_compression_options(self) -> None:
        return None  # compression costs CPU per receiver and defeats encode-once

    def _start(self) -> None:
        self.set_nodelay(True)
        stream = self.ws_connection.stream if self.ws_connection else None
        if stream is not None:
            stream.max_write_buffer_size = self.config.max_client_backlog
        self.service.connect(self)
        if self.identity.expires_at is not None:
            self._expiry = IOLoop.current().call_later(
                max(0.0, self.identity.expires_at - time.time()), self._token_expired
            )

    def _token_expired(self) -> None:
        self.close(close_code(ErrorCode.TOKEN_EXPIRED), "token expired")

    def send(self, frames: bytes) -> None:
        """Queue frames; a client whose backlog passes the bound is disconnected."""
        protocol = self.ws_connection
        if protocol is None or self._closing or not frames or protocol.is_closing():
            return
        stream = protocol.stream
        if stream is None:
            return
        try:
            if type(stream) is IOStream and not stream.writing():
                # Nothing queued: hand the bytes to the kernel now. Skips the
                # Future and buffer bookkeeping of IOStream.write, which in a
                # broadcast to thousands of sockets is most of the cost.
                sent = _send_now(stream, frames)
                if sent == len(frames):
                    return
                frames = frames[sent:]
            stream.write(frames)
        except StreamBufferFullError:
            self._drop_slow_client(stream)
        except StreamClosedError:
            self._closing = True

    def _drop_slow_client(self, stream: Any) -> None:
        self._closing = True
        self.metrics.slow_consumers.inc()
        log.info("disconnecting %s: over %d bytes unsent", self.id, stream.max_write_buffer_size)
        stream.max_write_buffer_size = None  # room for the close frame behind the backlog
        self.close(close_code(ErrorCode.SLOW_CONSUMER), "too slow: backlog limit reached")

    def send_text(self, payload: str) -> None:
        self.send(text_frame(payload))

    def close(self, code: int | None = None, reason: str | None = None) -> None:
        self._closing = True
        super().close(code, reason)

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

    def _pipelined(self, work: Awaitable[None]) -> Awaitable[None] | None:
        """Run a post without waiting, so the next frame can join the same commit.

        Past MAX_INFLIGHT_PER_CONNECTION the work is returned instead, and
        Tornado waits for it before reading on: backpressure on a flooding client.
        """
        if len(self._tasks) < MAX_INFLIGHT_PER_CONNECTION:
            self._spawn(work)
            return None
        return work

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _guarded(
        self,
        work: Awaitable[None],
        ref: str | None = None,
        room: str | None = None,
    ) -> None:
        """Run one request; turn every failure into an error reply, never a crash.

        The reply names the request's room, so a client can tell which one failed.
        """
        try:
            await work
        except ChatError as exc:
            exc.ref = exc.ref or ref
            exc.room = exc.room or room
            self.report(exc)
        except Exception:
            log.exception("request failed on connection %s", self.id)
            self.report(Unavailable("internal error", ref=ref, room=room))

    def report(self, error: ChatError) -> None:
        self.metrics.errors.labels(code=str(error.code)).inc()
        self.send_text(protocol.encode_error(error.code, error.reason, error.ref, error.room))

    def on_close(self) -> None:
        connection_id.set(self.id)
        self._closing = True
        if self._expiry is not None:
            IOLoop.current().remove_timeout(self._expiry)
        self._spawn(self.service.disconnect(self))


class ChatSocket(_Socket):
    """``/ws``: the JSON protocol."""

    def prepare(self) -> None:
        super().prepare()
        self.room = protocol.room_name(self.get_query_argument("room", DEFAULT_ROOM))
        self.since = self.query_int("since")
        self.limit = self.query_int("limit", minimum=1)
        require_access(self.identity, self.room)

    async def open(self) -> None:
        connection_id.set(self.id)
        self._start()
        self.send_text(protocol.encode_hello(self.user, SERVER_NAME))
        await self._guarded(self.service.join(self, self.room, self.since, self.limit))

    def on_message(self, message: str | bytes) -> Awaitable[None] | None:
        connection_id.set(self.id)
        if self._closing:
            return None
        if not self._admit():
            self.report(LimitReached("slow down", ref=_client_id(message)))
            return None
        try:
            frame = protocol.parse_client_frame(message)
        except RequestError as exc:
            self.report(exc)
            return None
        return self._dispatch(frame)

    def _dispatch(self, frame: protocol.ClientFrame) -> Awaitable[None] | None:
        service = self.service
        room = frame.room
        match frame:
            case protocol.PostMessage():
                return self._pipelined(self._guarded(self._post(frame), frame.client_id, room))
            case protocol.Join():
                request = service.join(self, room, frame.since, frame.limit)
            case protocol.Leave():
                request = service.leave(self, room)
            case protocol.HistoryRequest():
                request = service.history(self, room, frame.before, frame.limit)
            case protocol.Typing():
                request = service.typing(self, room)
        return self._guarded(request, room=room)

    async def _post(self, frame: protocol.PostMessage) -> None:
        result = await self.service.post(self, frame.room, frame.text, frame.client_id)
        self.send_text(protocol.encode_ack(result.message))


def _client_id(raw: str | bytes) -> str | None:
    """The ``client_id`` of a frame we refuse unread, so the client knows which one."""
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    value = data.get("client_id") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


class TextSocket(_Socket):
    """``ws://host/``: the tutorial's plain-text mode in room ``general``.

    Text in, ``"name: text"`` out, no echo to the sender. Problems are reported
    as a line starting with ``[chatapp]``, since these clients only show text.
    """

    text_mode = True

    async def open(self) -> None:
        connection_id.set(self.id)
        self._start()
        await self._guarded(self.service.join(self, DEFAULT_ROOM))

    def on_message(self, message: str | bytes) -> Awaitable[None] | None:
        connection_id.set(self.id)
        if self._closing:
            return None
        if not self._admit():
            self.report(LimitReached("slow down"))
            return None
        if isinstance(message, bytes):
            self.report(RequestError("send text, not binary frames", ErrorCode.BAD_FRAME))
            return None
        try:
            text = protocol.message_text(message)
        except RequestError as exc:
            self.report(exc)
            return None
        return self._pipelined(self._guarded(self._post(text)))

    async def _post(self, text: str) -> None:
        await self.service.post(self, DEFAULT_ROOM, text, None)

    def report(self, error: ChatError) -> None:
        self.metrics.errors.labels(code=str(error.code)).inc()
        self.send_text(f"[chatapp] {error.reason}")
