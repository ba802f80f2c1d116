"""What the server sends, by PROTOCOL.md: the exact JSON of each server event."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

from factories import ALICE, BOB, T0, stored
from hypothesis import given
from hypothesis import strategies as st

from chatapp.errors import ErrorCode
from chatapp.model import StoredMessage, User
from chatapp.web.wire import (
    encode_ack,
    encode_error,
    encode_hello,
    encode_history,
    encode_message,
    encode_typing,
    encode_user,
    iso_utc,
    message_dict,
    presence_with,
    text_line,
)


def test_message_encodes_exact_fields_with_client_id():
    """A message frame has type, room, seq, id, user, text, ts and the client_id it came with."""
    assert encode_message(stored(3, user=ALICE, text="hello", client_id="c1")) == (
        '{"type":"message","room":"general","seq":3,"id":13,'
        '"user":{"id":"u-alice","name":"Alice"},"text":"hello",'
        '"ts":"2026-11-26T12:00:03.123456Z","client_id":"c1"}'
    )


def test_message_without_client_id_omits_the_field():
    """A message sent without client_id is encoded without a client_id key."""
    frame = json.loads(encode_message(stored(1, text="hi")))
    assert frame == {
        "type": "message",
        "room": "general",
        "seq": 1,
        "id": 11,
        "user": {"id": "u-bob", "name": "Bob"},
        "text": "hi",
        "ts": "2026-11-26T12:00:01.123456Z",
    }


def test_message_text_is_encoded_as_utf8_not_escaped():
    """Non-ASCII text goes out as itself, and JSON special characters are escaped."""
    encoded = encode_message(stored(1, text='héllo "ü" \n <b>'))
    assert 'héllo \\"ü\\" \\n <b>' in encoded
    assert json.loads(encoded)["text"] == 'héllo "ü" \n <b>'


def test_ts_is_iso8601_utc_with_z_suffix():
    """Timestamps are ISO-8601 in UTC, microseconds, ending in Z."""
    assert iso_utc(T0) == "2026-11-26T12:00:00.123456Z"


def test_ts_converts_other_timezones_to_utc():
    """A time with another offset is converted to UTC before formatting."""
    plus_two = timezone(timedelta(hours=2))
    assert iso_utc(datetime(2026, 1, 1, 1, 30, tzinfo=plus_two)) == "2025-12-31T23:30:00.000000Z"


def test_ts_parses_back_to_the_same_instant():
    """The ts string parses (as ISO-8601) back to the stored instant."""
    message = stored(1)
    ts = json.loads(encode_message(message))["ts"]
    assert ts.endswith("Z")
    assert datetime.fromisoformat(ts) == message.created_at


def test_ack_has_exact_fields():
    """An ack carries client_id, room, seq and id of the stored message."""
    assert encode_ack(stored(4, client_id="c9")) == (
        '{"type":"ack","client_id":"c9","room":"general","seq":4,"id":14}'
    )


def test_history_has_room_messages_oldest_first_and_has_more():
    """A history frame lists full message objects in the given (oldest-first) order."""
    frame = json.loads(encode_history("general", [stored(1), stored(2, client_id="x")], True))
    assert frame["type"] == "history"
    assert frame["room"] == "general"
    assert frame["has_more"] is True
    assert [m["seq"] for m in frame["messages"]] == [1, 2]
    assert frame["messages"][0] == json.loads(encode_message(stored(1)))
    assert frame["messages"][1]["client_id"] == "x"
    assert set(frame) == {"type", "room", "messages", "has_more"}


def test_empty_history_encodes_exactly():
    """A history frame of an empty room is an empty list with has_more false."""
    assert encode_history("lobby", [], False) == (
        '{"type":"history","room":"lobby","messages":[],"has_more":false}'
    )


def test_presence_lists_users_and_count():
    """A presence frame has the room, the users as {id, name} and the total count."""
    users_json = ",".join([encode_user(ALICE), encode_user(BOB)])
    assert presence_with("general", users_json, 2) == (
        '{"type":"presence","room":"general",'
        '"users":[{"id":"u-alice","name":"Alice"},{"id":"u-bob","name":"Bob"}],"count":2}'
    )


def test_typing_names_room_and_user():
    """A typing frame has the room and the typing user."""
    assert encode_typing("general", BOB) == (
        '{"type":"typing","room":"general","user":{"id":"u-bob","name":"Bob"}}'
    )


def test_hello_names_user_and_server():
    """The hello frame tells the client who it is and the server version."""
    assert encode_hello(ALICE, "chatapp/0.1.0") == (
        '{"type":"hello","user":{"id":"u-alice","name":"Alice"},"server":"chatapp/0.1.0"}'
    )


def test_error_with_ref_has_code_reason_and_ref():
    """An error about a message carries the offending client_id as ref."""
    assert encode_error(ErrorCode.NOT_JOINED, "join room 'x' first", "c7") == (
        '{"type":"error","code":"not_joined","reason":"join room \'x\' first","ref":"c7"}'
    )


def test_error_without_ref_omits_the_field():
    """An error with no client_id has only type, code and reason."""
    assert encode_error(ErrorCode.BAD_JSON, "frame is not valid JSON") == (
        '{"type":"error","code":"bad_json","reason":"frame is not valid JSON"}'
    )


def test_text_line_is_name_colon_text():
    """Text-mode clients see '<name>: <text>'."""
    assert text_line(stored(1, text="hello there", user=BOB)) == "Bob: hello there"


@given(
    room=st.text(max_size=20),
    seq=st.integers(1, 2**53),
    message_id=st.integers(1, 2**53),
    user_id=st.text(max_size=20),
    name=st.text(max_size=20),
    text=st.text(st.characters(), max_size=60),
    client_id=st.none() | st.text(max_size=20),
    at=st.datetimes(timezones=st.just(UTC)),
)
def test_a_message_frame_is_its_dict_as_json(
    room, seq, message_id, user_id, name, text, client_id, at
) -> None:
    """The frame assembled from encoded parts is exactly the dict's compact JSON, for any
    strings (quotes, controls, any script) and with or without a client_id."""
    message = StoredMessage(message_id, room, seq, User(user_id, name), text, at, client_id)
    expected = json.dumps(message_dict(message), ensure_ascii=False, separators=(",", ":"))
    assert encode_message(message) == expected
