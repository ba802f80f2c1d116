"""What every HTTP handler shares: JSON errors, token-free logs, request identity.

A handler raises any ``ChatError``; the answer is the status its code maps to
(``chatapp.errors.http_status``) with a JSON body ``{"error": code, "reason":
text}``, and nothing is logged as a failure. Anything else is a bug: logged
with its traceback, answered 500 without one.

Query strings may carry tokens, so nothing here ever logs ``request.uri``:
only the method and path.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import logging
import math
import re
import sys
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from tornado.web import HTTPError, RequestHandler

from chatapp.auth.tokens import Authenticator, Identity
from chatapp.core import protocol
from chatapp.errors import AccessDenied, ChatError, ErrorCode, LimitReached, http_status
from chatapp.settings import Settings
from chatapp.web.ratelimit import AddressLimits

log = logging.getLogger(__name__)

#: A number in a query string: ASCII digits only (``int`` refuses some that ``isdigit`` accepts,
#: and converts very long ones slowly), at most as long as the largest seq.
_DIGITS = re.compile(r"[0-9]{1,10}")

TOKEN_COOKIE = "chatapp_token"  # noqa: S105 (a cookie name, not a secret)


def log_request(handler: RequestHandler) -> None:
    """Access log line with the path only."""
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


class BaseHandler(RequestHandler):
    """JSON errors and token-free logging for every handler."""

    def _handle_request_exception(self, e: BaseException) -> None:
        if isinstance(e, ChatError) and not self._finished:
            self.send_error(http_status(e.code), exc_info=sys.exc_info())
            return
        super()._handle_request_exception(e)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, ChatError):
            body = {"error": str(exc.code), "reason": exc.reason}
            if isinstance(exc, LimitReached) and exc.retry_after is not None:
                self.set_header("Retry-After", str(max(1, math.ceil(exc.retry_after))))
        else:
            body = {"error": str(ErrorCode.HTTP_ERROR), "reason": self._reason}
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps(body))

    def log_exception(
        self,
        typ: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        where = f"{self.request.method} {self.request.path}"
        if isinstance(value, HTTPError | ChatError):
            log.debug("%s: %s", where, value)
        else:
            log.error("uncaught exception in %s", where, exc_info=value)

    def query_int(self, key: str, minimum: int = 0) -> int | None:
        """An optional integer query parameter; ``RequestError`` if it is not one."""
        raw = self.get_query_argument(key, None)
        value: object = int(raw) if raw is not None and _DIGITS.fullmatch(raw) else raw
        return protocol.optional_int({key: value}, key, minimum)

    def identify(self, auth: Authenticator) -> Identity:
        """The request's identity, or ``AuthError``.

        A token (Authorization: Bearer, ``token`` parameter, or cookie) must
        verify; without one, the client is a fresh guest where guests are allowed.
        """
        token = self.request_token()
        return auth.verify(token) if token else auth.anonymous_guest()

    def throttle(self, limits: AddressLimits, settings: Settings) -> None:
        """Refuse a request from an address past its rate: 429, with Retry-After."""
        wait = limits.take(client_address(self, settings))
        if wait is not None:
            raise LimitReached(
                "too many requests from this address; try again shortly", retry_after=wait
            )

    def request_token(self) -> str | None:
        scheme, _, value = self.request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return self.get_query_argument("token", None) or self.get_cookie(TOKEN_COOKIE) or None


def require_allowed_origin(handler: RequestHandler, settings: Settings) -> None:
    """``AccessDenied`` unless the request may come from where it comes (``origin_allowed``)."""
    if not origin_allowed(handler, settings):
        origin = handler.request.headers.get("Origin")
        raise AccessDenied(f"origin {origin!r} is not allowed", ErrorCode.FORBIDDEN_ORIGIN)


def set_token_cookie(handler: RequestHandler, settings: Settings, token: str) -> None:
    """Hand the browser its token as a cookie that page scripts and other sites never see.

    A session cookie: the page establishes it again from its stored token on each load.
    """
    handler.set_cookie(TOKEN_COOKIE, token, **_cookie_options(handler, settings))


def clear_token_cookie(handler: RequestHandler, settings: Settings) -> None:
    handler.clear_cookie(TOKEN_COOKIE, **_cookie_options(handler, settings))


def _cookie_options(handler: RequestHandler, settings: Settings) -> dict[str, Any]:
    secure = _scheme(handler, settings) == "https"
    return {"path": "/", "httponly": True, "samesite": "Strict", "secure": secure}


def _scheme(handler: RequestHandler, settings: Settings) -> str:
    """The scheme the client used: the proxy's X-Forwarded-Proto when the proxy is trusted."""
    scheme = handler.request.protocol
    if settings.trusted_proxy:
        scheme = handler.request.headers.get("X-Forwarded-Proto", scheme).split(",")[0].strip()
    return scheme


def client_address(handler: RequestHandler, settings: Settings) -> str:
    """The client's IP: the proxy's X-Forwarded-For entry when the proxy is trusted."""
    if settings.trusted_proxy:
        forwarded = handler.request.headers.get("X-Forwarded-For", "")
        last_hop = forwarded.split(",")[-1].strip()
        if last_hop:
            return last_hop
    return handler.request.remote_ip or ""


@functools.lru_cache(maxsize=1024)
def is_loopback(address: str) -> bool:
    """Cached: parsing the address was a noticeable part of each connect."""
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def origin_allowed(handler: RequestHandler, settings: Settings) -> bool:
    """Cross-site WebSocket hijacking defence: same origin, or listed in --allowed-origins.

    Requests without an Origin header are not from a browser page and pass;
    they still need a token where tokens are required.
    """
    headers = handler.request.headers
    if headers.get("Sec-Fetch-Site") in ("same-origin", "none"):
        return True  # the browser itself says so; a page cannot forge this header
    origin = headers.get("Origin")
    if origin is None:
        return True
    if origin in settings.allowed_origins:
        return True
    if origin == "null":
        return False
    host = headers.get("Host", "")
    if settings.trusted_proxy:
        host = headers.get("X-Forwarded-Host", host).split(",")[0].strip()
    parts = urlsplit(origin)
    return _site(parts.scheme, parts.netloc) == _site(_scheme(handler, settings), host)


_DEFAULT_PORTS = {"http": "80", "https": "443", "ws": "80", "wss": "443"}


def _site(scheme: str, netloc: str) -> tuple[str, str]:
    """Host and port, the port filled in from the scheme when absent."""
    host, _, port = netloc.lower().rpartition(":")
    if not host or not port.isdigit():  # no port, or the colons of a bare IPv6 address
        host, port = netloc.lower(), ""
    return host, port or _DEFAULT_PORTS.get(scheme.lower(), "")
