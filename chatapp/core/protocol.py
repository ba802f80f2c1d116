"""What clients send: frames of the JSON protocol of ``/ws`` and request parameters.

Pure functions over strings and dataclasses, no I/O. ``parse_client_frame``
turns one text frame into a typed, frozen request or raises ``RequestError``
with the code and reason the client will see. The server's side of the
conversation is encoded at the edge (``chatapp.web.wire``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from chatapp.errors import ErrorCode, RequestError
from chatapp.limits import (
    MAX_CLIENT_ID_CHARS,
    MAX_HISTORY_LIMIT,
    MAX_SEARCH_QUERY_CHARS,
    MAX_SEQ,
    MAX_TEXT_CHARS,
    ROOM_NAME_PATTERN,
)

_ROOM_NAME = re.compile(ROOM_NAME_PATTERN)


@dataclass(frozen=True, slots=True)
class PostMessage:
    room: str
    text: str
    client_id: str | None


@dataclass(frozen=True, slots=True)
class Join:
    room: str
    since: int | None
    limit: int | None


@dataclass(frozen=True, slots=True)
class Leave:
    room: str


@dataclass(frozen=True, slots=True)
class HistoryRequest:
    room: str
    before: int
    limit: int | None


@dataclass(frozen=True, slots=True)
class Typing:
    room: str


ClientFrame = PostMessage | Join | Leave | HistoryRequest | Typing


def parse_client_frame(raw: str | bytes) -> ClientFrame:
    """Parse one WebSocket frame from a JSON client; raise ``RequestError`` if invalid."""
    if isinstance(raw, bytes):
        raise RequestError("binary frames are not supported; send JSON text", ErrorCode.BAD_FRAME)
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # deep nesting exhausts the parser's stack
        raise RequestError("frame is not valid JSON", ErrorCode.BAD_JSON) from None
    if not isinstance(data, dict):
        raise RequestError("frame must be a JSON object", ErrorCode.BAD_FRAME)
    kind = data.get("type")
    parser = _PARSERS.get(kind) if isinstance(kind, str) else None
    if parser is None:
        raise RequestError(f"unknown frame type {kind!r}", ErrorCode.UNKNOWN_TYPE)
    return parser(data)


def _parse_message(data: Mapping[str, Any]) -> PostMessage:
    client_id = optional_str(data, "client_id", MAX_CLIENT_ID_CHARS)
    try:
        room = room_name(data.get("room"))
        text = data.get("text")
        if not isinstance(text, str):
            raise RequestError("'text' must be a string", ErrorCode.BAD_FIELD)
        return PostMessage(room=room, text=message_text(text), client_id=client_id)
    except RequestError as exc:
        exc.ref = client_id
        raise


def _parse_join(data: Mapping[str, Any]) -> Join:
    return Join(
        room=room_name(data.get("room")),
        since=optional_int(data, "since"),
        limit=optional_int(data, "limit", minimum=1),
    )


def _parse_leave(data: Mapping[str, Any]) -> Leave:
    return Leave(room=room_name(data.get("room")))


def _parse_history(data: Mapping[str, Any]) -> HistoryRequest:
    before = optional_int(data, "before", minimum=1)
    if before is None:
        raise RequestError("'before' (a seq) is required", ErrorCode.BAD_FIELD)
    return HistoryRequest(
        room=room_name(data.get("room")),
        before=before,
        limit=optional_int(data, "limit", minimum=1),
    )


def _parse_typing(data: Mapping[str, Any]) -> Typing:
    return Typing(room=room_name(data.get("room")))


_PARSERS: dict[str, Callable[[Mapping[str, Any]], ClientFrame]] = {
    "message": _parse_message,
    "join": _parse_join,
    "leave": _parse_leave,
    "history": _parse_history,
    "typing": _parse_typing,
}


def room_name(value: object) -> str:
    """Validate a room name (also used for query parameters and URL paths)."""
    if not isinstance(value, str):
        raise RequestError("'room' must be a string", ErrorCode.BAD_FIELD)
    if not _ROOM_NAME.fullmatch(value):
        raise RequestError(
            "room names are 1-64 letters, digits, '_', '-' or '.', not starting with '-' or '.'",
            ErrorCode.BAD_ROOM,
        )
    return value


def message_text(text: str) -> str:
    """Validate message text: visible and at most MAX_TEXT_CHARS characters."""
    if not text.strip():
        raise RequestError("message text is empty", ErrorCode.EMPTY_TEXT)
    if "\x00" in text:  # PostgreSQL cannot store it, and no chat needs it
        raise RequestError("message text may not contain NUL characters", ErrorCode.BAD_FIELD)
    if not _encodable(text):
        raise RequestError("message text is not valid Unicode (a lone surrogate)")
    if len(text) > MAX_TEXT_CHARS:
        raise RequestError(f"message text is over {MAX_TEXT_CHARS} characters", ErrorCode.TOO_LONG)
    return text


def search_query(value: str | None) -> str:
    """Validate a search query: some visible text, at most MAX_SEARCH_QUERY_CHARS."""
    if value is None or not value.strip():
        raise RequestError("'q' (the words to search for) is required", ErrorCode.BAD_FIELD)
    if len(value) > MAX_SEARCH_QUERY_CHARS:
        raise RequestError(f"'q' is over {MAX_SEARCH_QUERY_CHARS} characters", ErrorCode.TOO_LONG)
    return value.strip()


def optional_int(data: Mapping[str, Any], key: str, minimum: int = 0) -> int | None:
    """An optional integer field from ``minimum`` to MAX_SEQ (``true`` is not an integer)."""
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= MAX_SEQ:
        raise RequestError(
            f"'{key}' must be an integer from {minimum} to {MAX_SEQ}", ErrorCode.BAD_FIELD
        )
    return value


def optional_str(data: Mapping[str, Any], key: str, max_chars: int) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > max_chars or not _encodable(value):
        raise RequestError(
            f"'{key}' must be a non-empty string of at most {max_chars}", ErrorCode.BAD_FIELD
        )
    return value


def _encodable(text: str) -> bool:
    """JSON's ``\\ud800`` escapes give strings no database can store (lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def clamp_limit(limit: int | None, default: int) -> int:
    """The page size to serve: the client's wish, capped by MAX_HISTORY_LIMIT."""
    return min(limit or default, MAX_HISTORY_LIMIT)
