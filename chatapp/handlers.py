"""Tornado handlers: thin edges that decode requests, call the service, encode replies.

No exception escapes a handler: protocol errors become ``error`` frames (or
HTTP 4xx JSON), anything unexpected is logged (without query strings, which
may hold tokens) and answered with a generic error.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, ClassVar

from tornado.iostream import IOStream, StreamBufferFullError, StreamClosedError
from tornado.web import HTTPError, RequestHandler
from tornado.websocket import WebSocketHandler

from chatapp import __version__, protocol
from chatapp.auth import Authenticator, AuthError
from chatapp.codes import (
    DEFAULT_ROOM,
    MAX_INFLIGHT_PER_CONNECTION,
    MAX_REJECTED_FRAMES,
    CloseCode,
    ErrorCode,
)
from chatapp.config import Settings
from chatapp.metrics import Metrics
from chatapp.model import User
from chatapp.protocol import ProtocolError
from chatapp.ratelimit import TokenBucket
from chatapp.service import ChatService
from chatapp.store import StoreError
from chatapp.wsframe import text_frame

log = logging.getLogger(__name__)

TOKEN_COOKIE = "chatapp_token"  # noqa: S105 (a cookie name, not a secret)
SERVER_NAME = f"chatapp/{__version__}"
_connection_ids = itertools.count(1)


class ApiError(HTTPError):
    """An HTTP error answered as JSON ``{"error": code, "reason": text}``."""

    def __init__(self, status: int, code: str, reason: str) -> None:
        super().__init__(status)
        self.code = code
        self.text = reason


def _send_now(stream: IOStream, data: bytes) -> int:
    """Write what the socket takes without blocking; the rest is for ``stream.write``."""
    try:
        return stream.socket.send(data)
    except (BlockingIOError, InterruptedError):
        return 0
    except OSError:
        return 0  # stream.write meets the same error and closes the stream


def request_token(handler: RequestHandler) -> str | None:
    """The bearer token of a request: Authorization header, ``token`` parameter, or cookie."""
    scheme, _, value = handler.request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    from_query = handler.get_query_argument("token", None)
    if from_query:
        return from_query
    return handler.get_cookie(TOKEN_COOKIE) or None


def identify(handler: RequestHandler, auth: Authenticator) -> User:
    """The request's user, or ``ApiError(401)``; guests when no key is configured."""
    if not auth.tokens_required:
        return auth.guest()
    token = request_token(handler)
    if token is None:
        raise ApiError(401, "unauthorized", "a token is required")
    try:
        return auth.verify(token)
    except AuthError as exc:
        raise ApiError(401, "unauthorized", str(exc)) from None


def query_int(handler: RequestHandler, key: str, minimum: int = 0) -> int | None:
    """An optional integer query parameter; ``ProtocolError`` if it is not one."""
    raw = handler.get_query_argument(key, None)
    value: object = int(raw) if raw is not None and raw.isdigit() else raw
    return protocol.optional_int({key: value}, key, minimum)


def log_request(handler: RequestHandler) -> None:
    """Access log line with the path only: query strings may carry tokens."""
    status = handler.get_status()
    level = logging.INFO if status < 400 else logging.WARNING if status < 500 else logging.ERROR
    request = handler.request
    logging.getLogger("tornado.access").log(
        level,
        "%d %s %s (%s) %.2fms",
        status,
        request.method,
        request.path,
        request.remote_ip,
        1000.0 * request.request_time(),
    )


class _Base(RequestHandler):
    """JSON errors and token-free logging for every handler."""

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, ApiError):
            body = {"error": exc.code, "reason": exc.text}
        else:
            body = {"error": "http_error", "reason": self._reason}
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps(body))

    def log_exception(
        self,
        typ: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        where = f"{self.request.method} {self.request.path}"
        if isinstance(value, HTTPError):
            log.debug("%s: HTTP %d", where, value.status_code)
        else:
            log.error("uncaught exception in %s", where, exc_info=value)


class _Socket(_Base, WebSocketHandler):
    """What both WebSocket endpoints share: identity, backpressure, rate limit, cleanup."""

    text_mode: ClassVar[bool] = False

    def initialize(
        self, service: ChatService, auth: Authenticator, settings: Settings, metrics: Metrics
    ) -> None:
        self.service = service
        self.auth = auth
        self.settings_ = settings
        self.metrics = metrics
        self.id = f"c{next(_connection_ids)}"
        self.user = User("", "")
        self._bucket = (
            TokenBucket(settings.rate_limit, settings.rate_burst) if settings.rate_limit else None
        )
        self._rejected = 0
        self._closing = False
        self._tasks: set[asyncio.Task[None]] = set()

    def prepare(self) -> None:
        self.user = identify(self, self.auth)

    def get_compression_options(self) -> None:
        return None  # compression costs CPU per receiver and defeats encode-once

    def _start(self) -> None:
        self.set_nodelay(True)
        stream = self.ws_connection.stream if self.ws_connection else None
        if stream is not None:
            stream.max_write_buffer_size = self.settings_.max_client_backlog
        self.service.connect(self)

    def send(self, frames: bytes) -> None:
        """Queue frames; a client whose backlog passes the bound is disconnected."""
        protocol = self.ws_connection
        if protocol is None or self._closing or not frames or protocol.is_closing():
            return
        stream = protocol.stream
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
        self.close(CloseCode.SLOW_CONSUMER, "too slow: backlog limit reached")

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
        if self._rejected > MAX_REJECTED_FRAMES:
            self.close(CloseCode.POLICY_VIOLATION, "flooding past the rate limit")
        return False

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _guarded(self, work: Callable[[], Awaitable[None]], ref: str | None = None) -> None:
        """Run one request; turn every failure into an error reply, never a crash."""
        try:
            await work()
        except ProtocolError as exc:
            self.report(exc)
        except StoreError:
            self.report(ProtocolError(ErrorCode.UNAVAILABLE, "storage is unavailable", ref))
        except Exception:
            log.exception("request failed on connection %s", self.id)
            self.report(ProtocolError(ErrorCode.UNAVAILABLE, "internal error", ref))

    def report(self, error: ProtocolError) -> None:
        self.metrics.errors.inc(label_value=str(error.code))
        self.send_text(protocol.encode_error(error.code, error.reason, error.ref))

    def on_close(self) -> None:
        self._closing = True
        self._spawn(self.service.disconnect(self))


class ChatSocket(_Socket):
    """``/ws``: the JSON protocol."""

    def prepare(self) -> None:
        super().prepare()
        try:
            self.room = protocol.room_name(self.get_query_argument("room", DEFAULT_ROOM))
            self.since = query_int(self, "since")
            self.limit = query_int(self, "limit", minimum=1)
        except ProtocolError as exc:
            raise ApiError(400, str(exc.code), exc.reason) from None

    async def open(self) -> None:
        self._start()
        self.send_text(protocol.encode_hello(self.user, SERVER_NAME))
        await self._guarded(lambda: self.service.join(self, self.room, self.since, self.limit))

    def on_message(self, message: str | bytes) -> Awaitable[None] | None:
        if self._closing:
            return None
        if not self._admit():
            self.report(ProtocolError(ErrorCode.RATE_LIMITED, "slow down", _client_id(message)))
            return None
        try:
            frame = protocol.parse_client_frame(message)
        except ProtocolError as exc:
            self.report(exc)
            return None
        return self._dispatch(frame)

    def _dispatch(self, frame: protocol.ClientFrame) -> Awaitable[None] | None:
        service = self.service
        match frame:
            case protocol.PostMessage():
                work = self._guarded(lambda: self._post(frame), frame.client_id)
                if len(self._tasks) < MAX_INFLIGHT_PER_CONNECTION:
                    self._spawn(work)  # pipelined: the next frame can join the same commit
                    return None
                return work  # Tornado waits for it before reading on: backpressure
            case protocol.Join():
                return self._guarded(
                    lambda: service.join(self, frame.room, frame.since, frame.limit)
                )
            case protocol.Leave():
                return self._guarded(lambda: service.leave(self, frame.room))
            case protocol.HistoryRequest():
                return self._guarded(
                    lambda: service.history(self, frame.room, frame.before, frame.limit)
                )
            case protocol.Typing():
                return self._guarded(lambda: service.typing(self, frame.room))

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
        self._start()
        await self._guarded(lambda: self.service.join(self, DEFAULT_ROOM))

    def on_message(self, message: str | bytes) -> Awaitable[None] | None:
        if self._closing:
            return None
        if not self._admit():
            self.report(ProtocolError(ErrorCode.RATE_LIMITED, "slow down"))
            return None
        if isinstance(message, bytes):
            self.report(ProtocolError(ErrorCode.BAD_FRAME, "send text, not binary frames"))
            return None
        try:
            text = protocol.message_text(message)
        except ProtocolError as exc:
            self.report(exc)
            return None
        work = self._guarded(lambda: self._post(text))
        if len(self._tasks) < MAX_INFLIGHT_PER_CONNECTION:
            self._spawn(work)
            return None
        return work

    async def _post(self, text: str) -> None:
        await self.service.post(self, DEFAULT_ROOM, text, None)

    def report(self, error: ProtocolError) -> None:
        self.metrics.errors.inc(label_value=str(error.code))
        self.send_text(f"[chatapp] {error.reason}")


class MessagesHandler(_Base):
    """``GET /api/rooms/{room}/messages?before=SEQ&limit=N``: one page of scrollback."""

    def initialize(self, service: ChatService, auth: Authenticator) -> None:
        self.service = service
        self.auth = auth

    async def get(self, room: str) -> None:
        identify(self, self.auth)
        try:
            name = protocol.room_name(room)
            before = query_int(self, "before", minimum=1)
            limit = query_int(self, "limit", minimum=1)
        except ProtocolError as exc:
            raise ApiError(400, str(exc.code), exc.reason) from None
        try:
            page = await self.service.page(name, before, limit)
        except StoreError as exc:
            raise ApiError(503, "unavailable", "storage is unavailable") from exc
        self.set_header("Cache-Control", "no-store")
        self.write(protocol.history_dict(name, page.messages, page.has_more))


class HealthHandler(_Base):
    """``GET /healthz``: 200 when the server runs and its database answers, else 503."""

    def initialize(self, service: ChatService) -> None:
        self.service = service

    async def get(self) -> None:
        self.set_header("Cache-Control", "no-store")
        try:
            await self.service.check()
        except StoreError:
            raise ApiError(503, "unavailable", "database unreachable") from None
        self.write({"status": "ok", "server": SERVER_NAME})


class MetricsHandler(_Base):
    """``GET /metrics`` in the Prometheus text format."""

    def initialize(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def get(self) -> None:
        self.set_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.write(self.metrics.render())
