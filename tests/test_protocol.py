"""What clients send, by PROTOCOL.md: parsing frames of the JSON protocol and parameters."""

from __future__ import annotations

import json

import pytest

from chatapp.core.protocol import (
    HistoryRequest,
    Join,
    Leave,
    PostMessage,
    Typing,
    clamp_limit,
    parse_client_frame,
)
from chatapp.errors import ErrorCode, RequestError
from chatapp.limits import MAX_CLIENT_ID_CHARS, MAX_HISTORY_LIMIT, MAX_TEXT_CHARS


def rejected(raw: str | bytes) -> RequestError:
    """The RequestError that parsing ``raw`` raises."""
    with pytest.raises(RequestError) as info:
        parse_client_frame(raw)
    return info.value


# --- well-formed frames -----------------------------------------------------


def test_message_frame_parses_to_post_message():
    """A message frame with room, text and client_id becomes a PostMessage with all three."""
    frame = parse_client_frame('{"type":"message","room":"general","text":"hi","client_id":"c1"}')
    assert frame == PostMessage(room="general", text="hi", client_id="c1")


def test_message_frame_without_client_id_has_none():
    """client_id is optional; without it the PostMessage carries None."""
    frame = parse_client_frame('{"type":"message","room":"general","text":"hi"}')
    assert frame == PostMessage(room="general", text="hi", client_id=None)


def test_message_frame_with_null_client_id_has_none():
    """An explicit null client_id counts as absent."""
    frame = parse_client_frame('{"type":"message","room":"r","text":"hi","client_id":null}')
    assert frame == PostMessage(room="r", text="hi", client_id=None)


def test_message_text_is_kept_verbatim_including_surrounding_whitespace():
    """Text is stored as sent: leading/trailing spaces and newlines are not stripped."""
    frame = parse_client_frame('{"type":"message","room":"r","text":"  two\\nlines "}')
    assert isinstance(frame, PostMessage)
    assert frame.text == "  two\nlines "


def test_message_text_of_exactly_max_chars_is_accepted():
    """Text of exactly MAX_TEXT_CHARS characters is within the limit."""
    text = "x" * MAX_TEXT_CHARS
    frame = parse_client_frame(json.dumps({"type": "message", "room": "r", "text": text}))
    assert isinstance(frame, PostMessage)
    assert frame.text == text


def test_message_text_limit_counts_characters_not_bytes():
    """MAX_TEXT_CHARS counts code points, so multi-byte text of that length is accepted."""
    text = "é" * MAX_TEXT_CHARS
    frame = parse_client_frame(json.dumps({"type": "message", "room": "r", "text": text}))
    assert isinstance(frame, PostMessage)
    assert len(frame.text) == MAX_TEXT_CHARS


def test_client_id_of_exactly_max_chars_is_accepted():
    """A client_id of exactly MAX_CLIENT_ID_CHARS characters is accepted."""
    cid = "k" * MAX_CLIENT_ID_CHARS
    frame = parse_client_frame(
        json.dumps({"type": "message", "room": "r", "text": "t", "client_id": cid})
    )
    assert isinstance(frame, PostMessage)
    assert frame.client_id == cid


def test_unknown_extra_fields_are_ignored():
    """Fields the server does not know are ignored, so clients can add their own."""
    frame = parse_client_frame('{"type":"leave","room":"r","x":1}')
    assert frame == Leave(room="r")


def test_join_frame_with_only_room_has_no_since_or_limit():
    """A join with just a room asks for the default page: since and limit are None."""
    assert parse_client_frame('{"type":"join","room":"lobby"}') == Join(
        room="lobby", since=None, limit=None
    )


def test_join_frame_carries_since_and_limit():
    """since and limit of a join are passed through as integers."""
    frame = parse_client_frame('{"type":"join","room":"lobby","since":7,"limit":20}')
    assert frame == Join(room="lobby", since=7, limit=20)


def test_join_since_zero_is_accepted():
    """since=0 means 'everything' and is valid."""
    frame = parse_client_frame('{"type":"join","room":"lobby","since":0}')
    assert frame == Join(room="lobby", since=0, limit=None)


def test_leave_frame_parses_to_leave():
    """A leave frame names the room to unsubscribe from."""
    assert parse_client_frame('{"type":"leave","room":"lobby"}') == Leave(room="lobby")


def test_history_frame_parses_before_and_limit():
    """A history frame carries the seq to page back from and an optional limit."""
    frame = parse_client_frame('{"type":"history","room":"lobby","before":51,"limit":10}')
    assert frame == HistoryRequest(room="lobby", before=51, limit=10)


def test_history_frame_without_limit_has_none():
    """limit is optional on a history frame."""
    frame = parse_client_frame('{"type":"history","room":"lobby","before":1}')
    assert frame == HistoryRequest(room="lobby", before=1, limit=None)


def test_typing_frame_parses_to_typing():
    """A typing frame names its room."""
    assert parse_client_frame('{"type":"typing","room":"lobby"}') == Typing(room="lobby")


def test_binary_frame_is_rejected_even_when_it_holds_json():
    """Binary frames are refused as bad_frame, whatever they contain."""
    error = rejected(b'{"type":"typing","room":"lobby"}')
    assert error.code is ErrorCode.BAD_FRAME
    assert error.ref is None


def test_parsed_frames_are_immutable():
    """Parsed frames are frozen: layers further in cannot alter a request."""
    frame = parse_client_frame('{"type":"typing","room":"lobby"}')
    with pytest.raises(AttributeError):
        frame.room = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    "room",
    ["a", "general", "Room_1", "0", "_x", "a.b-c_d", "a-", "a.", "R" * 64],
)
def test_valid_room_names_are_accepted(room):
    """Room names of 1-64 letters, digits, '_', '-', '.' not starting with '-' or '.' pass."""
    assert parse_client_frame(json.dumps({"type": "join", "room": room})) == Join(room, None, None)


# --- malformed frames -------------------------------------------------------


@pytest.mark.parametrize("raw", ["", "not json", "{", '{"type":"message"', "{'type':'join'}"])
def test_invalid_json_is_rejected_as_bad_json(raw):
    """A text frame that is not JSON gets bad_json."""
    error = rejected(raw)
    assert error.code is ErrorCode.BAD_JSON
    assert error.reason == "frame is not valid JSON"


@pytest.mark.parametrize("raw", ["[]", '["message"]', '"message"', "42", "null", "true"])
def test_json_that_is_not_an_object_is_rejected_as_bad_frame(raw):
    """Valid JSON that is not an object (array, string, number, null, bool) gets bad_frame."""
    assert rejected(raw).code is ErrorCode.BAD_FRAME


def test_binary_frame_is_rejected_as_bad_frame():
    """A binary frame gets bad_frame with a reason telling the client to send JSON text."""
    error = rejected(b"\x00\x01binary")
    assert error.code is ErrorCode.BAD_FRAME
    assert "JSON text" in error.reason


@pytest.mark.parametrize(
    "raw",
    [
        "{}",
        '{"room":"general","text":"hi"}',
        '{"type":"shout","room":"general"}',
        '{"type":"MESSAGE","room":"general","text":"hi"}',
        '{"type":null}',
        '{"type":1}',
        '{"type":["message"]}',
        '{"type":{"message":1}}',
        '{"type":""}',
    ],
)
def test_missing_or_unknown_type_is_rejected_as_unknown_type(raw):
    """A frame without a known string type gets unknown_type (types are case-sensitive)."""
    assert rejected(raw).code is ErrorCode.UNKNOWN_TYPE


def test_unknown_type_reason_names_the_type():
    """The reason for an unknown type quotes the offending value."""
    assert "'shout'" in rejected('{"type":"shout"}').reason


@pytest.mark.parametrize("kind", ["message", "join", "leave", "history", "typing"])
def test_missing_room_is_rejected_as_bad_field(kind):
    """Every frame type requires a room; without one the client gets bad_field."""
    raw = json.dumps({"type": kind, "text": "hi", "before": 5})
    error = rejected(raw)
    assert error.code is ErrorCode.BAD_FIELD
    assert "'room'" in error.reason


@pytest.mark.parametrize("room", [1, None, True, ["general"], {"name": "general"}, 1.5])
def test_room_that_is_not_a_string_is_rejected_as_bad_field(room):
    """A room given as a number, null, bool, list or object gets bad_field."""
    assert rejected(json.dumps({"type": "join", "room": room})).code is ErrorCode.BAD_FIELD


@pytest.mark.parametrize(
    "room",
    [
        "",
        "-general",
        ".hidden",
        "with space",
        "slash/room",
        "semi;colon",
        "R" * 65,
        "général",
        "general\n",
        "\ngeneral",
        "١٢٣",  # Arabic-Indic digits are not ASCII digits
        "room#1",
    ],
)
def test_bad_room_names_are_rejected_as_bad_room(room):
    """Room names outside the pattern (empty, too long, bad first char, bad chars) get bad_room."""
    for kind in ("join", "leave", "typing"):
        assert rejected(json.dumps({"type": kind, "room": room})).code is ErrorCode.BAD_ROOM


def test_message_without_text_is_rejected_as_bad_field():
    """A message frame without text gets bad_field."""
    error = rejected('{"type":"message","room":"general"}')
    assert error.code is ErrorCode.BAD_FIELD
    assert "'text'" in error.reason


@pytest.mark.parametrize("text", [None, 5, True, ["hi"], {"t": "hi"}])
def test_message_text_that_is_not_a_string_is_rejected_as_bad_field(text):
    """Text given as null, number, bool, list or object gets bad_field."""
    raw = json.dumps({"type": "message", "room": "general", "text": text})
    assert rejected(raw).code is ErrorCode.BAD_FIELD


@pytest.mark.parametrize("text", ["", " ", "\n", "\t \r\n", "\u3000", "\u00a0"])
def test_empty_or_whitespace_text_is_rejected_as_empty_text(text):
    """Text with no visible characters (empty, spaces, newlines, Unicode spaces) gets empty_text."""
    raw = json.dumps({"type": "message", "room": "general", "text": text})
    assert rejected(raw).code is ErrorCode.EMPTY_TEXT


def test_text_over_max_chars_is_rejected_as_too_long():
    """Text one character over MAX_TEXT_CHARS gets too_long, and the reason names the limit."""
    raw = json.dumps({"type": "message", "room": "general", "text": "x" * (MAX_TEXT_CHARS + 1)})
    error = rejected(raw)
    assert error.code is ErrorCode.TOO_LONG
    assert str(MAX_TEXT_CHARS) in error.reason


def test_client_id_over_max_chars_is_rejected_as_bad_field():
    """A client_id over MAX_CLIENT_ID_CHARS characters gets bad_field."""
    cid = "k" * (MAX_CLIENT_ID_CHARS + 1)
    raw = json.dumps({"type": "message", "room": "general", "text": "hi", "client_id": cid})
    error = rejected(raw)
    assert error.code is ErrorCode.BAD_FIELD
    assert "'client_id'" in error.reason


@pytest.mark.parametrize("cid", ["", 7, True, ["c1"], {"c": 1}])
def test_client_id_that_is_empty_or_not_a_string_is_rejected_as_bad_field(cid):
    """client_id must be a non-empty string; other values get bad_field."""
    raw = json.dumps({"type": "message", "room": "general", "text": "hi", "client_id": cid})
    assert rejected(raw).code is ErrorCode.BAD_FIELD


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"room": "general", "text": "   "}, ErrorCode.EMPTY_TEXT),
        ({"room": "general", "text": "x" * (MAX_TEXT_CHARS + 1)}, ErrorCode.TOO_LONG),
        ({"room": "-bad", "text": "hi"}, ErrorCode.BAD_ROOM),
        ({"room": 3, "text": "hi"}, ErrorCode.BAD_FIELD),
        ({"room": "general"}, ErrorCode.BAD_FIELD),
    ],
)
def test_rejected_message_error_refers_to_its_client_id(fields, code):
    """When a message with a client_id is refused, the error's ref is that client_id."""
    error = rejected(json.dumps({"type": "message", "client_id": "c-42", **fields}))
    assert error.code is code
    assert error.ref == "c-42"


def test_rejected_message_without_client_id_has_no_ref():
    """A refused message without client_id gets an error without ref."""
    assert rejected('{"type":"message","room":"general","text":""}').ref is None


def test_rejected_non_message_frame_has_no_ref():
    """Errors for frames other than message carry no ref, even if they have a client_id field."""
    assert rejected('{"type":"join","room":"-x","client_id":"c1"}').ref is None


@pytest.mark.parametrize("field", ["since", "limit"])
@pytest.mark.parametrize("value", [True, False, "5", 1.5, 2.0, [1], {"n": 1}])
def test_join_numbers_given_as_other_types_are_rejected(field, value):
    """since/limit must be JSON integers: bools, strings, floats (even 2.0), lists get bad_field."""
    raw = json.dumps({"type": "join", "room": "general", field: value})
    error = rejected(raw)
    assert error.code is ErrorCode.BAD_FIELD
    assert f"'{field}'" in error.reason


def test_join_negative_since_is_rejected():
    """since must be >= 0."""
    error = rejected('{"type":"join","room":"general","since":-1}')
    assert error.code is ErrorCode.BAD_FIELD
    assert "'since' must be an integer from 0" in error.reason


@pytest.mark.parametrize("limit", [0, -1, -50])
def test_join_limit_below_one_is_rejected(limit):
    """A page limit must be at least 1."""
    raw = json.dumps({"type": "join", "room": "general", "limit": limit})
    assert rejected(raw).code is ErrorCode.BAD_FIELD


def test_history_without_before_is_rejected():
    """A history frame must say which seq to page back from."""
    error = rejected('{"type":"history","room":"general"}')
    assert error.code is ErrorCode.BAD_FIELD
    assert "'before'" in error.reason


@pytest.mark.parametrize("before", [0, -3, True, "10", 10.0, None])
def test_history_before_that_is_not_a_positive_integer_is_rejected(before):
    """before must be an integer >= 1 (not 0, negative, bool, string, float or null)."""
    raw = json.dumps({"type": "history", "room": "general", "before": before})
    assert rejected(raw).code is ErrorCode.BAD_FIELD


@pytest.mark.parametrize("limit", [0, -1, True, "5"])
def test_history_bad_limit_is_rejected(limit):
    """A history limit must be an integer >= 1."""
    raw = json.dumps({"type": "history", "room": "general", "before": 5, "limit": limit})
    assert rejected(raw).code is ErrorCode.BAD_FIELD


def test_nan_and_infinity_are_not_integers():
    """JSON extensions NaN and Infinity are refused where an integer is required."""
    assert rejected('{"type":"join","room":"general","since":NaN}').code is ErrorCode.BAD_FIELD
    error = rejected('{"type":"history","room":"general","before":Infinity}')
    assert error.code is ErrorCode.BAD_FIELD


def test_protocol_error_message_is_its_reason():
    """str(RequestError) is the human-readable reason."""
    error = rejected('{"type":"join"}')
    assert str(error) == error.reason


# --- page size --------------------------------------------------------------


def test_clamp_limit_uses_default_when_none():
    """Without a requested limit the default page size is used."""
    assert clamp_limit(None, 50) == 50


def test_clamp_limit_keeps_a_small_request():
    """A requested limit under the cap is served as asked."""
    assert clamp_limit(7, 50) == 7


def test_clamp_limit_caps_at_max_history_limit():
    """A requested limit over MAX_HISTORY_LIMIT is capped."""
    assert clamp_limit(MAX_HISTORY_LIMIT + 1, 50) == MAX_HISTORY_LIMIT


def test_seq_fields_beyond_the_largest_seq_are_rejected():
    """before/since past MAX_SEQ (the 32-bit seq column) are bad fields, not crashes later."""
    from chatapp.limits import MAX_SEQ

    for raw in (
        f'{{"type":"history","room":"general","before":{MAX_SEQ + 1}}}',
        f'{{"type":"join","room":"general","since":{2**63}}}',
    ):
        assert rejected(raw).code is ErrorCode.BAD_FIELD
