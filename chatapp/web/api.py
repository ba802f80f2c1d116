"""The HTTP API: scrollback pages, search, the room directory, sign-in, health and metrics."""

from __future__ import annotations

import json
from typing import Any

from tornado.web import HTTPError

from chatapp import SERVER_NAME
from chatapp.auth.tokens import MAX_NAME_CHARS, Authenticator
from chatapp.core import protocol
from chatapp.core.service import ChatService
from chatapp.errors import AuthError, CloseCode, ErrorCode, RequestError
from chatapp.limits import (
    DEFAULT_HISTORY_LIMIT,
    DEFAULT_SEARCH_LIMIT,
    MAX_HISTORY_LIMIT,
    MAX_SEARCH_LIMIT,
    MAX_SEARCH_QUERY_CHARS,
    MAX_TEXT_CHARS,
    ROOM_NAME_PATTERN,
)
from chatapp.ops.metrics import CONTENT_TYPE, Metrics
from chatapp.settings import Settings
from chatapp.web import wire
from chatapp.web.edge import (
    BaseHandler,
    clear_token_cookie,
    require_allowed_origin,
    set_token_cookie,
)
from chatapp.web.ratelimit import AddressLimits


class _ReadHandler(BaseHandler):
    """A read of the chat over HTTP, limited per address (--http-rate-limit)."""

    def initialize(
        self,
        service: ChatService,
        auth: Authenticator,
        settings: Settings,
        limits: AddressLimits,
    ) -> None:
        self.service = service
        self.auth = auth
        self.server_settings = settings
        self.limits = limits

    def prepare(self) -> None:
        self.throttle(self.limits, self.server_settings)


class MessagesHandler(_ReadHandler):
    """``GET /api/rooms/{room}/messages?before=SEQ&limit=N``: one page of scrollback."""

    async def get(self, room: str) -> None:
        identity = self.identify(self.auth)
        name = protocol.room_name(room)
        before = self.query_int("before", minimum=1)
        limit = self.query_int("limit", minimum=1)
        page = await self.service.page(identity, name, before, limit)
        self.set_header("Cache-Control", "no-store")
        self.write(wire.history_dict(name, page.messages, page.has_more, page.pruned_before))


class SearchHandler(_ReadHandler):
    """``GET /api/search?q=WORDS&room=ROOM&limit=N``: messages matching every word, best first.

    Without ``room``, every room the caller may use is searched.
    """

    async def get(self) -> None:
        identity = self.identify(self.auth)
        query = protocol.search_query(self.get_query_argument("q", None))
        room_arg = self.get_query_argument("room", None)
        room = protocol.room_name(room_arg) if room_arg else None
        limit = self.query_int("limit", minimum=1)
        result = await self.service.search(identity, query, room, limit)
        self.set_header("Cache-Control", "no-store")
        self.write(wire.search_dict(query, room, result))


class RoomsHandler(_ReadHandler):
    """``GET /api/rooms``: the rooms the caller may use, most recently active first."""

    async def get(self) -> None:
        rooms = await self.service.directory(self.identify(self.auth))
        self.set_header("Cache-Control", "no-store")
        self.write(wire.rooms_dict(rooms))


class HealthHandler(BaseHandler):
    """``GET /healthz``: liveness. 200 while the process serves requests at all."""

    def get(self) -> None:
        self.set_header("Cache-Control", "no-store")
        self.write({"status": "ok", "server": SERVER_NAME})


class ReadyHandler(BaseHandler):
    """``GET /readyz``: readiness. 200 when the database answers, its schema is current and it
    takes writes; else 503 with the reason."""

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


def _json_body(handler: BaseHandler) -> dict[str, Any]:
    try:
        body = json.loads(handler.request.body or b"{}")
    except (ValueError, RecursionError):
        raise RequestError("the body must be JSON", ErrorCode.BAD_JSON) from None
    if not isinstance(body, dict):
        raise RequestError("the body must be a JSON object", ErrorCode.BAD_JSON)
    return body


class GuestHandler(BaseHandler):
    """``POST /api/guest`` ``{"name": ..., "previous": token?}``: a short-lived guest token.

    The browser signs in with a display name; renewing with the previous
    token (even a recently expired one) keeps the same guest id, so retries
    with the same ``client_id`` still deduplicate across renewals. The token
    also comes back as the ``chatapp_token`` cookie, so the page never puts it
    in a URL.
    """

    def initialize(self, auth: Authenticator, settings: Settings, limits: AddressLimits) -> None:
        self.auth = auth
        self.server_settings = settings
        self.limits = limits

    def post(self) -> None:
        require_allowed_origin(self, self.server_settings)
        self.throttle(self.limits, self.server_settings)
        if not self.auth.allow_guests:
            raise AuthError("this server requires a token", ErrorCode.GUESTS_DISABLED)
        body = _json_body(self)
        name, previous = body.get("name"), body.get("previous")
        if not isinstance(name, str) or not isinstance(previous, str | None):
            raise RequestError("'name' must be a string", ErrorCode.BAD_FIELD)
        try:
            token, identity = self.auth.guest_token(name, previous)
        except AuthError as exc:  # a bad name or an unusable previous token: the body's fault
            raise RequestError(exc.reason, ErrorCode.BAD_FIELD) from None
        set_token_cookie(self, self.server_settings, token)
        self.set_header("Cache-Control", "no-store")
        self.write(
            {
                "token": token,
                "user": wire.user_dict(identity.user),
                "expires_at": identity.expires_at,
            }
        )


class NotFoundHandler(BaseHandler):
    """Any path no route matches (``/api/rooms//messages``): 404 with a JSON reason."""

    def prepare(self) -> None:
        raise HTTPError(404)


class SessionHandler(BaseHandler):
    """``POST /api/session`` ``{"token": ...}``: check a token and keep it as the cookie;
    ``DELETE /api/session``: forget the cookie (sign out).

    Pages sign in here instead of putting the token in URLs (where browser
    consoles, proxies and histories would keep it).
    """

    def initialize(self, auth: Authenticator, settings: Settings) -> None:
        self.auth = auth
        self.server_settings = settings

    def post(self) -> None:
        require_allowed_origin(self, self.server_settings)
        token = _json_body(self).get("token")
        if not isinstance(token, str) or not token.strip():
            raise RequestError("'token' must be a non-empty string", ErrorCode.BAD_FIELD)
        identity = self.auth.verify(token.strip())
        set_token_cookie(self, self.server_settings, token.strip())
        self.set_header("Cache-Control", "no-store")
        self.write({"user": wire.user_dict(identity.user), "expires_at": identity.expires_at})

    def delete(self) -> None:
        require_allowed_origin(self, self.server_settings)
        clear_token_cookie(self, self.server_settings)
        self.set_status(204)


def published_limits(settings: Settings) -> dict[str, Any]:
    """The limits a client must respect, so that the browser page copies none of them."""
    return {
        "room_pattern": ROOM_NAME_PATTERN,
        "max_text_chars": MAX_TEXT_CHARS,
        "max_name_chars": MAX_NAME_CHARS,
        "default_history_limit": DEFAULT_HISTORY_LIMIT,
        "max_history_limit": MAX_HISTORY_LIMIT,
        "default_search_limit": DEFAULT_SEARCH_LIMIT,
        "max_search_limit": MAX_SEARCH_LIMIT,
        "max_search_query_chars": MAX_SEARCH_QUERY_CHARS,
        "rate_limit": settings.rate_limit,
        "rate_burst": settings.rate_burst,
        "close_codes": {code.name.lower(): int(code) for code in CloseCode},
    }


class AuthOptionsHandler(BaseHandler):
    """``GET /api/auth``: how a client may sign in here (guests, tokens), and the limits."""

    def initialize(self, auth: Authenticator, settings: Settings) -> None:
        self.auth = auth
        self.limits = published_limits(settings)

    def get(self) -> None:
        self.write(
            {
                "guests": self.auth.allow_guests,
                "tokens": self.auth.tokens_configured,
                "limits": self.limits,
            }
        )
