"""The HTTP API: scrollback pages, guest sign-in, health and metrics."""

from __future__ import annotations

import json

from chatapp import SERVER_NAME
from chatapp.auth.tokens import Authenticator
from chatapp.core import protocol
from chatapp.core.service import ChatService
from chatapp.errors import AuthError, ErrorCode, RequestError
from chatapp.ops.metrics import CONTENT_TYPE, Metrics
from chatapp.web import wire
from chatapp.web.edge import BaseHandler


class MessagesHandler(BaseHandler):
    """``GET /api/rooms/{room}/messages?before=SEQ&limit=N``: one page of scrollback."""

    def initialize(self, service: ChatService, auth: Authenticator) -> None:
        self.service = service
        self.auth = auth

    async def get(self, room: str) -> None:
        identity = self.identify(self.auth)
        name = protocol.room_name(room)
        before = self.query_int("before", minimum=1)
        limit = self.query_int("limit", minimum=1)
        page = await self.service.page(identity, name, before, limit)
        self.set_header("Cache-Control", "no-store")
        self.write(wire.history_dict(name, page.messages, page.has_more, page.pruned_before))


class SearchHandler(BaseHandler):
    """``GET /api/search?q=WORDS&room=ROOM&limit=N``: messages matching every word, best first.

    Without ``room``, every room the caller may use is searched.
    """

    def initialize(self, service: ChatService, auth: Authenticator) -> None:
        self.service = service
        self.auth = auth

    async def get(self) -> None:
        identity = self.identify(self.auth)
        query = protocol.search_query(self.get_query_argument("q", None))
        room_arg = self.get_query_argument("room", None)
        room = protocol.room_name(room_arg) if room_arg else None
        limit = self.query_int("limit", minimum=1)
        hits = await self.service.search(identity, query, room, limit)
        self.set_header("Cache-Control", "no-store")
        self.write(wire.search_dict(query, room, hits))


class HealthHandler(BaseHandler):
    """``GET /healthz``: liveness. 200 while the process serves requests at all."""

    def get(self) -> None:
        self.set_header("Cache-Control", "no-store")
        self.write({"status": "ok", "server": SERVER_NAME})


class ReadyHandler(BaseHandler):
    """``GET /readyz``: readiness. 200 when the database answers and its schema is current."""

    def initialize(self, service: ChatService) -> None:
        self.service = service

    async def get(self) -> None:
        self.set_header("Cache-Control", "no-store")
        await self.service.check()
        self.write({"status": "ready", "server": SERVER_NAME})


class MetricsHandler(BaseHandler):
    """``GET /metrics`` in the Prometheus text format."""

    def initialize(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def get(self) -> None:
        self.set_header("Content-Type", CONTENT_TYPE)
        self.write(self.metrics.render())


class GuestHandler(BaseHandler):
    """``POST /api/guest`` ``{"name": ..., "previous": token?}``: a short-lived guest token.

    The browser signs in with a display name; renewing with the previous
    token (even a recently expired one) keeps the same guest id, so retries
    with the same ``client_id`` still deduplicate across renewals.
    """

    def initialize(self, auth: Authenticator) -> None:
        self.auth = auth

    def post(self) -> None:
        if not self.auth.allow_guests:
            raise AuthError("this server requires a token", ErrorCode.GUESTS_DISABLED)
        try:
            body = json.loads(self.request.body or b"{}")
        except (ValueError, RecursionError):
            raise RequestError("the body must be JSON", ErrorCode.BAD_JSON) from None
        name = body.get("name") if isinstance(body, dict) else None
        previous = body.get("previous") if isinstance(body, dict) else None
        if not isinstance(name, str) or not isinstance(previous, str | None):
            raise RequestError("'name' must be a string", ErrorCode.BAD_FIELD)
        try:
            token, identity = self.auth.guest_token(name, previous)
        except AuthError as exc:  # a bad name or an unusable previous token: the body's fault
            raise RequestError(exc.reason, ErrorCode.BAD_FIELD) from None
        self.set_header("Cache-Control", "no-store")
        self.write(
            {
                "token": token,
                "user": wire.user_dict(identity.user),
                "expires_at": identity.expires_at,
            }
        )


class AuthOptionsHandler(BaseHandler):
    """``GET /api/auth``: how a client may sign in here (guests, tokens)."""

    def initialize(self, auth: Authenticator) -> None:
        self.auth = auth

    def get(self) -> None:
        self.write({"guests": self.auth.allow_guests, "tokens": self.auth.tokens_configured})
