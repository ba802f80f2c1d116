"""How events travel between processes: one JSON object per publish, with a version.

Processes of different chatapp versions may share a broker during a rolling
upgrade. Every payload says which format it is in (``v``); a process that
does not know the version refuses the payload (``BrokerError``), and the
broker logs and skips it: the head watch then fetches the messages from the
database, so nothing is lost, only delayed. Fields added later must be
optional, so that version 1 readers can skip them.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chatapp.errors import BrokerError
from chatapp.model import Event, MessageEvent, StoredMessage, TypingEvent, User

#: The format this process writes, and the only one it reads.
VERSION = 1


@dataclass(frozen=True, slots=True)
class Payload:
    """What one publish carried: the events, and the process that published them."""

    sender: str
    events: list[Event]


def encode(events: Sequence[Event], sender: str) -> bytes:
    """One payload carrying ``events`` in order, from the process named ``sender``."""
    body = {"v": VERSION, "sender": sender, "events": [_encode_event(e) for e in events]}
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


def decode(data: bytes | str) -> Payload:
    """A payload's sender and events; ``BrokerError`` for an unknown version or a malformed one."""
    try:
        body = json.loads(data)
    except ValueError as exc:
        raise BrokerError(f"not JSON: {exc}") from None
    if not isinstance(body, dict) or body.get("v") != VERSION:
        version = body.get("v") if isinstance(body, dict) else None
        raise BrokerError(f"unknown event format version {version!r} (this process reads 1)")
    try:
        return Payload(str(body["sender"]), [_decode_event(item) for item in body["events"]])
    except (KeyError, TypeError, ValueError) as exc:
        raise BrokerError(f"malformed event: {exc!r}") from None


def _encode_event(event: Event) -> dict[str, Any]:
    if isinstance(event, TypingEvent):
        return {
            "kind": "typing",
            "room": event.room,
            "user": [event.user.id, event.user.name],
            "origin": event.origin,
        }
    m = event.message
    return {
        "kind": "message",
        "id": m.id,
        "room": m.room,
        "seq": m.seq,
        "user": [m.user.id, m.user.name],
        "text": m.text,
        "ts": m.created_at.isoformat(),
        "client_id": m.client_id,
        "origin": event.origin,
    }


def _decode_event(item: dict[str, Any]) -> Event:
    user = User(str(item["user"][0]), str(item["user"][1]))
    if item["kind"] == "typing":
        return TypingEvent(str(item["room"]), user, str(item["origin"]))
    if item["kind"] != "message":
        raise ValueError(f"unknown kind {item['kind']!r}")
    message = StoredMessage(
        id=int(item["id"]),
        room=str(item["room"]),
        seq=int(item["seq"]),
        user=user,
        text=str(item["text"]),
        created_at=datetime.fromisoformat(item["ts"]),
        client_id=item["client_id"],
    )
    return MessageEvent(message, str(item["origin"]))
