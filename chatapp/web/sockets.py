"""The two WebSocket endpoints: JSON at ``/ws`` and the tutorial's plain text at ``/``.

What they share (identity, flow-controlled sending, keepalive, rate limit)
is ``chatapp.web.connection.Socket``; here each decodes its own frames and
calls the service.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable

from chatapp.core import protocol
from chatapp.core.service import require_access
from chatapp.errors import ErrorCode, LimitReached, RequestError
from chatapp.limits import DEFAULT_ROOM
from chatapp.model import Appended, History
from chatapp.ops.logs import connection_id
from chatapp.web.connection import Socket
from chatapp.web.encoders import JsonEncoder, TextEncoder


class ChatSocket(Socket):
    """``/ws``: the JSON protocol."""

    __slots__ = ("limit", "room", "since")

    @property
    def encoder(self) -> JsonEncoder:
        return self.encoders.json

    async def prepare(self) -> None:
        await super().prepare()
        self.room = protocol.room_name(self.get_query_argument("room", DEFAULT_ROOM))
        self.since = self.query_int("since")
        self.limit = self.query_int("limit", minimum=1)
        require_access(self.identity, self.room)

    async def open(self) -> None:
        connection_id.set(self.id)
        self._start()
        self.reply(self.encoder.hello(self.user))
        await self._join(self.room, self.since, self.limit)

    def handle(self, message: str | bytes) -> Awaitable[None] | None:
        try:
            frame = protocol.parse_client_frame(message)
        except RequestError as exc:
            self.report(exc)
            return None
        return self._dispatch(frame)

    def _dispatch(self, frame: protocol.ClientFrame) -> Awaitable[None] | None:
        room = frame.room
        match frame:
            case protocol.PostMessage():
                return self._post(room, frame.text, frame.client_id)
            case protocol.Join():
                return self._join(room, frame.since, frame.limit)
            case protocol.Leave():
                request = self.service.leave(self, room)
            case protocol.HistoryRequest():
                request = self._history(frame)
            case protocol.Typing():
                request = self.service.typing(self, room)
        return self._guarded(request, room=room)

    async def _join(self, room: str, since: int | None, limit: int | None) -> None:
        await self._guarded(self._send_all(self.service.join(self, room, since, limit)), room=room)

    def acknowledge(self, stored: Appended) -> None:
        self.reply(self.encoder.ack(stored.message))

    async def _history(self, frame: protocol.HistoryRequest) -> None:
        page = await self.service.page(self.identity, frame.room, frame.before, frame.limit)
        assert self._outbox is not None
        await self._outbox.drained()
        self.reply(self.encoder.history(History(frame.room, page)))

    def refused(self, message: str | bytes) -> LimitReached:
        """Name the frame's ``client_id`` and room, so the client knows which one was dropped."""
        try:
            data = json.loads(message)
        except (ValueError, RecursionError):
            data = None
        ref = data.get("client_id") if isinstance(data, dict) else None
        room = data.get("room") if isinstance(data, dict) else None
        refusal = LimitReached("slow down", ref=ref if isinstance(ref, str) else None)
        refusal.room = room if isinstance(room, str) else None
        return refusal


class TextSocket(Socket):
    """``ws://host/``: the tutorial's plain-text mode in room ``general``.

    Text in, ``"name: text"`` out, no echo to the sender. Problems are reported
    as a line starting with ``[chatapp]``, since these clients only show text.
    """

    __slots__ = ()

    @property
    def encoder(self) -> TextEncoder:
        return self.encoders.text

    async def open(self) -> None:
        connection_id.set(self.id)
        self._start()
        await self._guarded(self._send_all(self.service.join(self, DEFAULT_ROOM)))

    def handle(self, message: str | bytes) -> Awaitable[None] | None:
        if isinstance(message, bytes):
            self.report(RequestError("send text, not binary frames", ErrorCode.BAD_FRAME))
            return None
        try:
            text = protocol.message_text(message)
        except RequestError as exc:
            self.report(exc)
            return None
        return self._post(DEFAULT_ROOM, text, None)
