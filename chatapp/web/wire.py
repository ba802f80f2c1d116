"""What the server sends: the JSON documents of the wire contract, as compact text.

Pure functions over the core's values. WebSocket events (``message``,
``history``, ``ack``, ``presence``, ``typing``, ``error``, ``hello``) and the
HTTP API's answers share these shapes, so a message looks the same
everywhere.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from chatapp.errors import ErrorCode
from chatapp.model import RoomActivity, SearchResult, StoredMessage, User

#: One encoder for every document (json.dumps with options builds a new one per call).
_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def iso_utc(moment: datetime) -> str:
    """ISO-8601 in UTC with a ``Z`` suffix, microsecond precision."""
    utc = moment if moment.tzinfo is UTC else moment.astimezone(UTC)
    return utc.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


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
    """``message_dict`` as JSON, assembled from its encoded strings: every stored message is
    encoded once on its way out, and building the dict first took twice as long."""
    user, client_id = message.user, message.client_id
    end = "}" if client_id is None else f',"client_id":{_dumps(client_id)}}}'
    return (
        f'{{"type":"message","room":{_dumps(message.room)},"seq":{int(message.seq)},'
        f'"id":{int(message.id)},"user":{{"id":{_dumps(user.id)},"name":{_dumps(user.name)}}},'
        f'"text":{_dumps(message.text)},"ts":"{iso_utc(message.created_at)}"{end}'
    )


def encode_hello(user: User, server: str) -> str:
    return _dumps({"type": "hello", "user": user_dict(user), "server": server})


def encode_history(
    room: str,
    messages: Iterable[StoredMessage],
    has_more: bool,
    pruned_before: int | None = None,
    message_json: Callable[[StoredMessage], str] = encode_message,
) -> str:
    """A ``history`` frame as ``history_dict`` shapes it, built from each message's JSON
    (``message_json`` may serve those from a cache)."""
    tail = f',"pruned_before":{int(pruned_before)}' if pruned_before is not None else ""
    return (
        f'{{"type":"history","room":{_dumps(room)},"messages":['
        + ",".join(message_json(m) for m in messages)
        + f'],"has_more":{_dumps(has_more)}{tail}}}'
    )


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


def encode_user(user: User) -> str:
    return _dumps(user_dict(user))


def presence_with(room: str, users_json: str, count: int) -> str:
    """A presence frame: ``users_json`` is the listed users' JSON (``encode_user``) joined
    with commas, kept by the encoder while a room's listed users stay the same (joiners
    that sort after them change only ``count``, the total present)."""
    head = f'{{"type":"presence","room":{_dumps(room)},"users":['
    return f'{head}{users_json}],"count":{int(count)}}}'


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
