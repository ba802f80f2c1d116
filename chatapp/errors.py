"""Every error chatapp raises on purpose, and what it becomes at each edge.

::

    ChatError                  .code (ErrorCode), .reason (safe to show), .ref, .room
    ├── RequestError           the request cannot be served as asked (field, room, length)
    │   └── AccessDenied       the credential does not cover the room, or the origin is foreign
    ├── AuthError              no valid credential
    ├── LimitReached           a cap or a rate limit; ``retry_after`` seconds when known
    ├── Unavailable            storage failed: nothing was stored, send again later
    │   └── StoreError         the database could not be opened or did not answer
    │       ├── UnknownRoom        the room never held a message
    │       ├── SearchUnsupported  no search for this kind of database
    │       ├── SchemaMismatch     the schema is not the one this chatapp knows
    │       └── QueryError         a user's SQL failed in the database
    │           └── WriteRefused   ... because it tried to write on a read-only connection
    ├── ConfigError            settings, key material or surroundings the server cannot start with
    │   └── UsageError         options that do not go together (exit 2, like a malformed one)
    ├── BrokerError            the broker handed over what this process cannot read
    └── ClientError            what the command-line client met at a server
        ├── Refused            the server said no
        └── Unreachable        no answer

The code alone decides the answer: ``http_status`` for HTTP, an ``error`` frame
(or ``close_code`` where the connection cannot go on) for WebSockets, and
``exit_code`` for the command-line tools. Clients match on these values, so
they are part of the wire contract: change one only together with the docs.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class ErrorCode(StrEnum):
    """A short machine word: the ``code`` of an ``error`` frame or JSON error body."""

    # --- error frames (the connection stays open) and HTTP 4xx answers
    BAD_JSON = "bad_json"  # the frame or body is not valid JSON
    BAD_FRAME = "bad_frame"  # valid JSON but not an object, or a binary frame
    UNKNOWN_TYPE = "unknown_type"  # ``type`` missing or not one we know
    BAD_FIELD = "bad_field"  # a field or parameter is missing or has the wrong type or range
    BAD_ROOM = "bad_room"  # a room name that does not match ROOM_NAME_PATTERN
    EMPTY_TEXT = "empty_text"  # a message with no visible text
    TOO_LONG = "too_long"  # a message over MAX_TEXT_CHARS (or a query over its limit)
    NOT_JOINED = "not_joined"  # posting or typing in a room not joined
    TOO_MANY_ROOMS = "too_many_rooms"  # a join past the per-connection room limit
    FORBIDDEN = "forbidden"  # the token's ``rooms`` claim does not cover the room
    RATE_LIMITED = "rate_limited"  # over a rate limit; the frame or request was dropped
    UNAVAILABLE = "unavailable"  # storage failed; nothing was stored, retry
    # --- HTTP only (refusals before a WebSocket upgrade, the HTTP API)
    UNAUTHORIZED = "unauthorized"  # no valid token where one is required
    FORBIDDEN_ORIGIN = "forbidden_origin"  # a web page from another site
    GUESTS_DISABLED = "guests_disabled"  # guest sign-in on a server that requires tokens
    TOO_MANY_CONNECTIONS = "too_many_connections"  # a per-user or per-address cap
    SERVER_FULL = "server_full"  # the server-wide connection cap
    NOT_SUPPORTED = "not_supported"  # a feature this database cannot offer
    HTTP_ERROR = "http_error"  # anything Tornado answers itself (404, 405...)
    # --- reasons to close a WebSocket (see close_code)
    TOKEN_EXPIRED = "token_expired"  # noqa: S105 (a code word, not a secret)
    SLOW_CONSUMER = "slow_consumer"
    FLOODING = "flooding"
    SHUTTING_DOWN = "shutting_down"
    # --- local: start-up and the command-line tools
    BAD_CONFIG = "bad_config"
    BAD_USAGE = "bad_usage"
    UNKNOWN_ROOM = "unknown_room"
    BAD_QUERY = "bad_query"
    READ_ONLY = "read_only"
    SCHEMA_MISMATCH = "schema_mismatch"
    BROKER = "broker"
    REFUSED = "refused"
    UNREACHABLE = "unreachable"


class CloseCode(IntEnum):
    """WebSocket close codes the server sends (RFC 6455 and the 4xxx private range)."""

    GOING_AWAY = 1001  # server shutting down; reconnect later
    POLICY_VIOLATION = 1008  # kept flooding after rate-limit errors
    MESSAGE_TOO_BIG = 1009  # a frame over MAX_FRAME_BYTES (sent by Tornado itself)
    TOKEN_EXPIRED = 4001  # the token's ``exp`` passed; get a new token and resume with since
    SLOW_CONSUMER = 4003  # the client took nothing while its backlog stayed over the bound


class ExitCode(IntEnum):
    """Exit codes of ``python -m chatapp`` and its tools."""

    OK = 0
    FAILED = 1  # could not start, refused, or the database said no
    USAGE = 2  # a malformed command line (argparse uses 2 too)
    UNREACHABLE = 3  # the server did not answer or acknowledge


_HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.BAD_JSON: 400,
    ErrorCode.BAD_FRAME: 400,
    ErrorCode.UNKNOWN_TYPE: 400,
    ErrorCode.BAD_FIELD: 400,
    ErrorCode.BAD_ROOM: 400,
    ErrorCode.EMPTY_TEXT: 400,
    ErrorCode.TOO_LONG: 400,
    ErrorCode.NOT_JOINED: 409,
    ErrorCode.TOO_MANY_ROOMS: 409,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.TOKEN_EXPIRED: 401,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.FORBIDDEN_ORIGIN: 403,
    ErrorCode.GUESTS_DISABLED: 403,
    ErrorCode.UNKNOWN_ROOM: 404,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.TOO_MANY_CONNECTIONS: 429,
    ErrorCode.NOT_SUPPORTED: 501,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.SERVER_FULL: 503,
    ErrorCode.SHUTTING_DOWN: 503,
    ErrorCode.SCHEMA_MISMATCH: 503,
}

_CLOSE_CODE: dict[ErrorCode, CloseCode] = {
    ErrorCode.TOKEN_EXPIRED: CloseCode.TOKEN_EXPIRED,
    ErrorCode.SLOW_CONSUMER: CloseCode.SLOW_CONSUMER,
    ErrorCode.FLOODING: CloseCode.POLICY_VIOLATION,
    ErrorCode.SHUTTING_DOWN: CloseCode.GOING_AWAY,
}

_EXIT_CODE: dict[ErrorCode, ExitCode] = {
    ErrorCode.UNREACHABLE: ExitCode.UNREACHABLE,
    ErrorCode.BAD_USAGE: ExitCode.USAGE,
}


def http_status(code: ErrorCode) -> int:
    """The HTTP status that answers an error with this code (400 for any other request fault)."""
    return _HTTP_STATUS.get(code, 400)


def close_code(code: ErrorCode) -> CloseCode:
    """The WebSocket close code for a reason to end a connection."""
    return _CLOSE_CODE[code]


def exit_code(code: ErrorCode) -> ExitCode:
    """How a command-line tool exits after an error with this code."""
    return _EXIT_CODE.get(code, ExitCode.FAILED)


class ChatError(Exception):
    """The root: every deliberate error has a code, a reason, and optionally what it concerns.

    ``ref`` names the offending message (its ``client_id``), ``room`` the
    request's room, so a client can tell which of its requests failed.
    """

    code: ErrorCode = ErrorCode.BAD_FIELD

    def __init__(
        self,
        reason: str,
        code: ErrorCode | None = None,
        *,
        ref: str | None = None,
        room: str | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        if code is not None:
            self.code = code
        self.ref = ref
        self.room = room


class RequestError(ChatError):
    """A frame, parameter or body that cannot be served as asked; the client must change it."""


class AccessDenied(RequestError):
    code = ErrorCode.FORBIDDEN


class AuthError(ChatError):
    """A credential that must be refused; the reason never contains the token."""

    code = ErrorCode.UNAUTHORIZED


class LimitReached(ChatError):
    """Over a cap or a rate; ``retry_after`` says when trying again may succeed."""

    code = ErrorCode.RATE_LIMITED

    def __init__(
        self,
        reason: str,
        code: ErrorCode | None = None,
        *,
        retry_after: float | None = None,
        ref: str | None = None,
    ) -> None:
        super().__init__(reason, code, ref=ref)
        self.retry_after = retry_after


class Unavailable(ChatError):
    """The message was not stored (storage failed, or the server is stopping): send it again."""

    code = ErrorCode.UNAVAILABLE


class StoreError(Unavailable):
    """The database could not be opened or did not answer; the reason says why."""


class UnknownRoom(StoreError):
    code = ErrorCode.UNKNOWN_ROOM


class SearchUnsupported(StoreError):
    code = ErrorCode.NOT_SUPPORTED


class SchemaMismatch(StoreError):
    """The schema was migrated by a newer chatapp, or is behind and may not be migrated here."""

    code = ErrorCode.SCHEMA_MISMATCH


class QueryError(StoreError):
    """A user's SQL failed in the database; the reason is the database's own."""

    code = ErrorCode.BAD_QUERY


class WriteRefused(QueryError):
    code = ErrorCode.READ_ONLY


class ConfigError(ChatError):
    """Settings, key material or surroundings (a taken port, an unwritable folder) that keep
    the server or a tool from starting; the reason tells the operator what to fix."""

    code = ErrorCode.BAD_CONFIG


class UsageError(ConfigError):
    """Options that contradict each other; the command line must change."""

    code = ErrorCode.BAD_USAGE


class BrokerError(ChatError):
    """An event from the broker this process cannot read (a newer format, or garbage): it is
    skipped, and the database supplies the messages it carried."""

    code = ErrorCode.BROKER


class ClientError(ChatError):
    """What the command-line client met when talking to a server."""


class Refused(ClientError):
    """The server said no (an error frame, an HTTP 4xx, a 4xxx close)."""

    code = ErrorCode.REFUSED


class Unreachable(ClientError):
    """The server could not be reached, or stopped answering."""

    code = ErrorCode.UNREACHABLE
