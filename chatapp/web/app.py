"""``make_app``: the Tornado application assembled from its parts (tests build it too)."""

from __future__ import annotations

from typing import Any

from tornado.httputil import HTTPServerRequest
from tornado.routing import PathMatches, Rule
from tornado.web import Application, RequestHandler, StaticFileHandler

from chatapp.auth.tokens import Authenticator
from chatapp.core.service import ChatService
from chatapp.limits import GUEST_BURST, MAX_FRAME_BYTES, MIN_HTTP_BURST
from chatapp.ops.metrics import Metrics
from chatapp.resources import resource_dir
from chatapp.settings import Settings
from chatapp.web.api import (
    AuthOptionsHandler,
    GuestHandler,
    HealthHandler,
    MessagesHandler,
    MetricsHandler,
    NotFoundHandler,
    ReadyHandler,
    RoomsHandler,
    SearchHandler,
    SessionHandler,
)
from chatapp.web.connection import Socket
from chatapp.web.edge import log_request
from chatapp.web.encoders import Encoders
from chatapp.web.outbox import Corks
from chatapp.web.ratelimit import AddressLimits
from chatapp.web.sockets import ChatSocket, TextSocket


class _WebSocketUpgrade(PathMatches):
    """Matches the path only for WebSocket upgrade requests, so ``/`` can serve both."""

    def match(self, request: HTTPServerRequest) -> dict[str, Any] | None:
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return None
        return super().match(request)


#: The page runs only its own scripts and styles and talks only to its own server,
#: so even a rendering bug cannot turn a user's text into running markup.
PAGE_CSP = (
    "default-src 'self'; connect-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def confine(handler: RequestHandler) -> None:
    """The page's protective headers. Every response that can be the page, or a document
    opened from static/ (``/static/index.html``, the SVG icon), carries the same ones."""
    handler.set_header("Content-Security-Policy", PAGE_CSP)
    handler.set_header("X-Content-Type-Options", "nosniff")
    handler.set_header("Referrer-Policy", "no-referrer")


class PageHandler(RequestHandler):
    """``GET /``: the browser client, revalidated on every load."""

    def initialize(self, page: bytes) -> None:
        self.page = page

    def get(self) -> None:
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-cache")
        confine(self)
        self.write(self.page)


class StaticHandler(StaticFileHandler):
    """``/static/``: cached, but revalidated (ETag, 304) unless the URL is versioned.

    The page's ES modules import each other by plain URL, so a long-lived
    cache could mix old and new modules after an upgrade; ``?v=HASH`` URLs
    keep Tornado's long ``max-age``.
    """

    def set_extra_headers(self, path: str) -> None:
        confine(self)
        if "v" not in self.request.arguments:
            self.set_header("Cache-Control", "no-cache")


def make_app(
    service: ChatService,
    auth: Authenticator,
    settings: Settings,
    metrics: Metrics,
    open_sockets: set[Socket],
) -> Application:
    """The application; its open WebSockets are kept in ``open_sockets`` (for keepalive)."""
    socket_deps = {
        "service": service,
        "auth": auth,
        "settings": settings,
        "metrics": metrics,
        "encoders": Encoders.new(),
        "open_sockets": open_sockets,
        "corks": Corks(),
    }
    reads = {
        "service": service,
        "auth": auth,
        "settings": settings,
        "limits": AddressLimits(
            settings.http_rate_limit, max(MIN_HTTP_BURST, int(2 * settings.http_rate_limit))
        ),
    }
    guests = AddressLimits(settings.guest_rate_limit / 60, GUEST_BURST)
    static = resource_dir("static")
    return Application(
        [
            Rule(_WebSocketUpgrade("/"), TextSocket, socket_deps),
            (r"/", PageHandler, {"page": (static / "index.html").read_bytes()}),
            (r"/ws", ChatSocket, socket_deps),
            (r"/api/rooms/([^/]+)/messages", MessagesHandler, reads),
            (r"/api/rooms", RoomsHandler, reads),
            (r"/api/search", SearchHandler, reads),
            (r"/api/guest", GuestHandler, {"auth": auth, "settings": settings, "limits": guests}),
            (r"/api/session", SessionHandler, {"auth": auth, "settings": settings}),
            (r"/api/auth", AuthOptionsHandler, {"auth": auth, "settings": settings}),
            (r"/healthz", HealthHandler),
            (r"/readyz", ReadyHandler, {"service": service}),
            (r"/metrics", MetricsHandler, {"metrics": metrics}),
        ],
        static_path=str(static),
        static_handler_class=StaticHandler,
        default_handler_class=NotFoundHandler,
        log_function=log_request,
        websocket_max_message_size=MAX_FRAME_BYTES,
        compress_response=True,
    )
