"""The JSON wire protocol of ``/ws``: client frames in, server events out.

Pure functions over strings and dataclasses, no I/O. ``parse_client_frame``
turns one text frame into a typed, frozen request or raises ``RequestError``
with the code and reason the client will see; the ``encode_*`` functions
produce the server's frames as compact JSON text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
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
from chatapp.model import RoomActivity, SearchResult, StoredMessage, User

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
    if not isinstance(value, str) or not value or len(value) > max_chars:
        raise RequestError(
            f"'{key}' must be a non-empty string of at most {max_chars}", ErrorCode.BAD_FIELD
        )
    return value


def clamp_limit(limit: int | None, default: int) -> int:
    """The page size to serve: the client's wish, capped by MAX_HISTORY_LIMIT."""
    return min(limit or default, MAX_HISTORY_LIMIT)


# --- server events ---------------------------------------------------------


def _dumps(obj: object) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def iso_utc(moment: datetime) -> str:
    """ISO-8601 in UTC with a ``Z`` suffix, microsecond precision."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def user_dict(user: User) -> dict[str, str]:
    return {"id": user.id, "name": user.name}


def message_dict(message: StoredMessage) -> dict[str, Any]:
    """A message object as the wire and the REST API show it."""
    out: dict[str, Any] = {
        "type": "message",
        "room": message.room,
        "seq": message.seq,
        "id": message.id,
        "user": user_dict(message.user),
        "text": message.text,
        "ts": iso_utc(message.created_at),
    }
    if message.client_id is not None:
        out["client_id"] = message.client_id
    return out


def encode_message(message: StoredMessage) -> str:
    return _dumps(message_dict(message))


def encode_hello(user: User, server: str) -> str:
    return _dumps({"type": "hello", "user": user_dict(user), "server": server})


def encode_history(
    room: str,
    messages: Iterable[StoredMessage],
    has_more: bool,
    pruned_before: int | None = None,
) -> str:
    return _dumps(history_dict(room, messages, has_more, pruned_before))


def history_dict(
    room: str,
    messages: Iterable[StoredMessage],
    has_more: bool,
    pruned_before: int | None = None,
) -> dict[str, Any]:
    """A ``history`` frame; ``pruned_before`` (the oldest seq still stored) only when
    older messages were deleted by retention, so the client stops paging back."""
    out: dict[str, Any] = {
        "type": "history",
        "room": room,
        "messages": [message_dict(m) for m in messages],
        "has_more": has_more,
    }
    if pruned_before is not None:
        out["pruned_before"] = pruned_before
    return out


def search_dict(query: str, room: str | None, result: SearchResult) -> dict[str, Any]:
    """``GET /api/search``'s answer: hits best first, each a message object plus ``score``;
    ``total`` matches in all (counted up to a bound, ``total_capped`` beyond it)."""
    return {
        "query": query,
        "room": room,
        "hits": [message_dict(hit.message) | {"score": hit.score} for hit in result.hits],
        "total": result.total,
        "total_capped": result.total_capped,
    }


def rooms_dict(rooms: Iterable[tuple[RoomActivity, int]]) -> dict[str, Any]:
    """``GET /api/rooms``'s answer: each room's newest activity and members present."""
    return {
        "rooms": [
            {
                "name": room.name,
                "last_activity": iso_utc(room.last_activity) if room.last_activity else None,
                "last_seq": room.last_seq,
                "members": members,
            }
            for room, members in rooms
        ]
    }


def encode_ack(message: StoredMessage) -> str:
    return _dumps(
        {
            "type": "ack",
            "client_id": message.client_id,
            "room": message.room,
            "seq": message.seq,
            "id": message.id,
        }
    )


def encode_presence(room: str, users: Iterable[User], count: int) -> str:
    """``users`` may be a sample of a large room; ``count`` is how many are present."""
    return _dumps(
        {"type": "presence", "room": room, "users": [user_dict(u) for u in users], "count": count}
    )


def encode_typing(room: str, user: User) -> str:
    return _dumps({"type": "typing", "room": room, "user": user_dict(user)})


def encode_error(
    code: ErrorCode, reason: str, ref: str | None = None, room: str | None = None
) -> str:
    """``ref`` names the offending message (its client_id), ``room`` the request's room."""
    out: dict[str, Any] = {"type": "error", "code": str(code), "reason": reason}
    if ref is not None:
        out["ref"] = ref
    if room is not None:
        out["room"] = room
    return _dumps(out)


def text_line(message: StoredMessage) -> str:
    """A message as the tutorial's plain-text clients show it."""
    return f"{message.user.name}: {message.text}"
