"""A small client of the JSON protocol, for the ``send`` and ``tail`` commands and bots.

It speaks only the public wire protocol (``/ws``), so it works against any
chatapp server it can reach, local or remote.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketClientConnection, WebSocketError, websocket_connect

from chatapp.errors import CloseCode, ConfigError, Refused, Unreachable


def socket_url(base: str, **query: object) -> str:
    """``ws://host:port`` (any path) to the ``/ws`` endpoint with query parameters."""
    parts = urlsplit(base)
    if parts.scheme not in ("ws", "wss"):
        raise ConfigError(f"the URL must start with ws:// or wss://, not {base!r}")
    params = {k: v for k, v in query.items() if v is not None}
    path = parts.path.rstrip("/")
    return urlunsplit(
        (
            parts.scheme,
            parts.netloc,
            path if path.endswith("/ws") else f"{path}/ws",
            urlencode(params),
            "",
        )
    )


class Session:
    """One connection: ``hello`` and the first ``history`` are read on connect."""

    def __init__(self, conn: WebSocketClientConnection, hello: dict[str, Any]) -> None:
        self.conn = conn
        self.hello = hello

    @classmethod
    async def open(
        cls, url: str, token: str | None, timeout: float
    ) -> tuple[Session, dict[str, Any]]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            conn = await asyncio.wait_for(
                websocket_connect(HTTPRequest(url, headers=headers), max_message_size=1 << 24),
                timeout,
            )
        except HTTPClientError as exc:
            raise Refused(_http_reason(exc)) from None
        except (OSError, TimeoutError, WebSocketError) as exc:
            raise Unreachable(f"cannot connect to {_without_query(url)}: {exc}") from None
        session = cls(conn, {})
        session.hello = await session.expect("hello", timeout)
        return session, await session.expect("history", timeout)

    async def send(self, frame: dict[str, Any]) -> None:
        try:
            await self.conn.write_message(json.dumps(frame))
        except WebSocketError as exc:
            raise Unreachable(f"connection lost: {exc}") from None

    async def frames(self, timeout: float | None = None) -> AsyncIterator[dict[str, Any]]:
        """Frames until the server closes (then ``Unreachable``, or ``Refused`` for 4xxx)."""
        while True:
            try:
                raw = await asyncio.wait_for(self.conn.read_message(), timeout)
            except TimeoutError:
                raise Unreachable("no answer in time") from None
            if raw is None:
                code, reason = self.conn.close_code, self.conn.close_reason
                if code is not None and 4000 <= code < 5000 and code != CloseCode.SLOW_CONSUMER:
                    raise Refused(f"closed by the server ({code}: {reason})")
                raise Unreachable(f"connection closed ({code}: {reason})")
            yield json.loads(raw)

    async def expect(self, kind: str, timeout: float) -> dict[str, Any]:
        async for frame in self.frames(timeout):
            if frame.get("type") == kind:
                return frame
            if frame.get("type") == "error":
                raise Refused(f"{frame.get('code')}: {frame.get('reason')}")
        raise Unreachable("connection closed")  # pragma: no cover - frames() raises first

    def close(self) -> None:
        self.conn.close()


def _http_reason(exc: HTTPClientError) -> str:
    try:
        body = json.loads(exc.response.body) if exc.response is not None else {}
        return f"HTTP {exc.code}: {body.get('reason') or body.get('error')}"
    except ValueError:
        return f"HTTP {exc.code}"


def _without_query(url: str) -> str:
    return urlunsplit(urlsplit(url)._replace(query=""))
