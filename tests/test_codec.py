"""Events between processes: what is encoded comes back equal; other versions are refused."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from chatapp.broker import codec
from chatapp.errors import BrokerError
from chatapp.model import MessageEvent, StoredMessage, TypingEvent, User

ANN = User("u-1", "Ann “quoted” ✓")
MESSAGE = MessageEvent(
    StoredMessage(7, "general", 3, ANN, "line\nbreak 🎉", datetime(2026, 12, 3, tzinfo=UTC), None),
    "abcd0123.7",
)
TYPING = TypingEvent("general", ANN, "abcd0123.8")


def test_events_come_back_equal_with_their_sender():
    payload = codec.decode(codec.encode([MESSAGE, TYPING], "abcd0123"))
    assert payload == codec.Payload("abcd0123", [MESSAGE, TYPING])


def test_every_payload_names_its_format_version():
    assert json.loads(codec.encode([TYPING], "p"))["v"] == codec.VERSION == 1


@pytest.mark.parametrize(
    "data",
    [
        b'{"v": 2, "sender": "p", "events": []}',
        b'{"sender": "p", "events": []}',
        b"[1, 2]",
        b"not json",
        b'{"v": 1, "sender": "p", "events": [{"kind": "poll", "room": "r"}]}',
        b'{"v": 1, "sender": "p", "events": [{"kind": "message", "room": "r"}]}',
    ],
    ids=["newer", "unversioned", "not-an-object", "not-json", "unknown-kind", "missing-fields"],
)
def test_what_this_version_cannot_read_is_refused(data):
    with pytest.raises(BrokerError):
        codec.decode(data)
