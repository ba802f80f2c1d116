"""Every error code, close code and protocol limit the server uses, in one place.

Clients match on these values, so they are part of the wire contract: change
one only together with the docs.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class ErrorCode(StrEnum):
    """The ``code`` of an ``error`` frame: a short machine word."""

    BAD_JSON = "bad_json"  # the frame is not valid JSON
    BAD_FRAME = "bad_frame"  # valid JSON but not an object, or a binary frame
    UNKNOWN_TYPE = "unknown_type"  # ``type`` missing or not one we know
    BAD_FIELD = "bad_field"  # a field is missing or has the wrong type or range
    BAD_ROOM = "bad_room"  # a room name that does not match ROOM_NAME_PATTERN
    EMPTY_TEXT = "empty_text"  # a message with no visible text
    TOO_LONG = "too_long"  # a message over MAX_TEXT_CHARS
    NOT_JOINED = "not_joined"  # posting or typing in a room not joined
    FORBIDDEN = "forbidden"  # the token's ``rooms`` claim does not cover the room
    RATE_LIMITED = "rate_limited"  # over the per-connection rate; the frame was dropped
    UNAVAILABLE = "unavailable"  # storage failed; the message was not stored, retry


class CloseCode(IntEnum):
    """WebSocket close codes the server sends (RFC 6455 and the 4xxx private range)."""

    GOING_AWAY = 1001  # server shutting down; reconnect later
    POLICY_VIOLATION = 1008  # kept flooding after rate-limit errors
    MESSAGE_TOO_BIG = 1009  # a frame over MAX_FRAME_BYTES (sent by Tornado itself)
    INTERNAL_ERROR = 1011  # unexpected server fault
    TOKEN_EXPIRED = 4001  # the token's ``exp`` passed; get a new token and resume with since
    SLOW_CONSUMER = 4003  # the client read too slowly; its backlog passed the bound


#: Room names: letters, digits, ``_``, ``-`` and ``.``, 1 to 64 characters.
ROOM_NAME_PATTERN = r"[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}"
DEFAULT_ROOM = "general"
#: Longest message text, in characters (code points).
MAX_TEXT_CHARS = 4000
#: Longest ``client_id`` (idempotency key), in characters.
MAX_CLIENT_ID_CHARS = 128
#: Largest incoming WebSocket frame; Tornado closes with 1009 above it.
MAX_FRAME_BYTES = 64 * 1024
#: Default and largest page of history.
DEFAULT_HISTORY_LIMIT = 50
MAX_HISTORY_LIMIT = 200
#: Default and largest number of search hits; longest search query, in characters.
DEFAULT_SEARCH_LIMIT = 20
MAX_SEARCH_LIMIT = 100
MAX_SEARCH_QUERY_CHARS = 256
#: Largest seq (and so ``before``/``since``) there can be: the database column is 32-bit.
MAX_SEQ = 2**31 - 1
#: Most messages replayed after ``since`` before the server sends only the newest page.
MAX_REPLAY = 1000
#: Minimum burst of the per-connection rate limit, in frames.
MIN_RATE_BURST = 20
#: Consecutive rate-limited frames after which the connection is closed (1008).
MAX_REJECTED_FRAMES = 200
#: Unsent bytes queued for one client before it is disconnected as too slow.
DEFAULT_MAX_CLIENT_BACKLOG = 4 * 1024 * 1024
#: Messages from one connection waiting for their commit before it stops reading.
MAX_INFLIGHT_PER_CONNECTION = 64
