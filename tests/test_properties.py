"""Property-based tests: no input, however odd, gets anything but a typed answer.

The frame parser turns any text or bytes into a typed frame or a
``RequestError`` with a known code. Every HTTP parameter and path segment of
the API (and every guest sign-in body) gets a 2xx or a 4xx with a JSON
``{"error", "reason"}``, never a 5xx, and nothing is logged at ERROR. The
HTTP properties run against a real server; their example counts are kept
modest so the suite stays fast.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import string
from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import quote

import pytest
from conftest import Client, open_client
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPResponse
from tornado.ioloop import IOLoop

from chatapp.core.protocol import ClientFrame, parse_client_frame
from chatapp.errors import ErrorCode, RequestError

#: The pure parser is cheap: many examples.
PARSER = settings(max_examples=200, deadline=None)
#: Each HTTP example is a real request (the server is shared by all of a test's examples).
HTTP = settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

#: One example's requests, run on the test server's loop.
Attempt = Callable[[], Coroutine[Any, Any, None]]

# --- inputs -------------------------------------------------------------------

#: Any character, lone surrogates included (JSON can carry them as \ud800 escapes).
any_char = st.one_of(st.characters(), st.integers(0xD800, 0xDFFF).map(chr))
any_text = st.text(any_char, max_size=40)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | any_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=12,
)
#: Strings that look like numbers to someone: Unicode digits, signs, huge, padded.
number_words = st.one_of(
    st.integers().map(str),
    st.sampled_from(["²", "¹", "٣", "1e3", "0x10", " 1", "+1", "-0", "", "1.0", "9" * 40]),
)
numberish = number_words | any_text
FRAME_TYPES = ["message", "join", "leave", "history", "typing"]
frame_fields = st.fixed_dictionaries(
    {"type": st.sampled_from(FRAME_TYPES)},
    optional={
        key: st.one_of(json_values, numberish, st.integers(-(2**40), 2**40))
        for key in ("room", "text", "client_id", "since", "before", "limit")
    },
)
#: Nesting deep enough to exhaust the JSON parser's stack, yet under the 64 KiB frame limit.
deep_json = st.builds(
    lambda opener, depth: opener * depth,
    st.sampled_from(["[", '{"a":', "[{}, "]),
    st.integers(1000, 60_000),
)
frames = st.one_of(
    any_text,
    json_values.map(json.dumps),
    frame_fields.map(json.dumps),
    deep_json,
)

#: Raw query-string pieces, percent-escapes good and bad (%FF is not UTF-8, %ZZ not hex).
_RAW_PIECES = ["%", "%ZZ", "%FF", "%C3", "%00", "%2F", "&", "=", "+", ";", "..", "%E2%82"]
_URL_SAFE = string.ascii_letters + string.digits + "-._~!$'()*,:@/"
raw_piece = st.one_of(st.sampled_from(_RAW_PIECES), st.text(_URL_SAFE, max_size=4))
#: A query value or path segment, percent-encoded from any text or put together raw.
url_text = st.one_of(
    st.text(st.characters(codec="utf-8"), max_size=30).map(lambda s: quote(s, safe="")),
    number_words.map(lambda s: quote(s, safe="")),
    st.lists(raw_piece, max_size=6).map("".join),
)


def query(**values: str | None) -> str:
    """A query string of the given (already encoded) values; None leaves a parameter out."""
    parts = [f"{key}={value}" for key, value in values.items() if value is not None]
    return "?" + "&".join(parts) if parts else ""


# --- the frame parser ------------------------------------------------------------


def assert_typed(raw: str | bytes) -> ClientFrame | None:
    """``raw`` parses to a frame the server can store and echo, or a known refusal."""
    try:
        frame = parse_client_frame(raw)
    except RequestError as exc:
        assert exc.code in set(ErrorCode), exc.code
        assert exc.reason
        return None
    for value in dataclasses.astuple(frame):
        if isinstance(value, str):
            value.encode()  # valid Unicode: storable, and sendable as UTF-8
    return frame


@PARSER
@given(frames)
@example('{"type": "message", "room": "r", "text": "x", "client_id": "\\ud800"}')  # found
@example('{"type": "message", "room": "r", "text": "cut \\ud83d"}')
def test_any_text_frame_parses_or_is_refused_with_a_known_code(raw):
    """Any text is a typed frame (with valid Unicode strings) or a RequestError, never else."""
    assert_typed(raw)


@PARSER
@given(st.binary(max_size=200))
def test_any_binary_frame_is_refused_as_bad_frame(raw):
    """Binary frames are refused with bad_frame, whatever they hold."""
    with pytest.raises(RequestError) as refused:
        parse_client_frame(raw)
    assert refused.value.code == ErrorCode.BAD_FRAME


@PARSER
@given(deep_json)
def test_deeply_nested_json_is_bad_json(raw):
    """Nesting that exhausts the JSON parser's stack is bad_json, not a RecursionError."""
    with pytest.raises(RequestError) as refused:
        parse_client_frame(raw)
    assert refused.value.code == ErrorCode.BAD_JSON


# --- HTTP ----------------------------------------------------------------------------


def check_answer(response: HTTPResponse) -> None:
    """A 2xx or 4xx, with a JSON body; a 4xx's body is ``{"error", "reason"}``."""
    assert 200 <= response.code < 500, (response.code, response.body[:300])
    assert response.headers["Content-Type"].startswith("application/json"), response.headers
    body = json.loads(response.body)
    if response.code >= 400:
        assert set(body) == {"error", "reason"} and body["error"] and body["reason"], body


def run(io_loop: IOLoop, caplog: pytest.LogCaptureFixture, attempt: Attempt) -> None:
    """Run one example's requests on the loop that serves the test's server; nothing may
    have been logged at ERROR meanwhile (a traceback, or a 5xx in the access log)."""
    io_loop.run_sync(attempt, timeout=30)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    caplog.clear()
    assert errors == []


def get_answers(io_loop: IOLoop, caplog: pytest.LogCaptureFixture, url: str) -> None:
    """``GET url`` gets an answer as ``check_answer`` wants it, and logs no error."""

    async def attempt() -> None:
        check_answer(await fetch(url))

    run(io_loop, caplog, attempt)


async def fetch(url: str, **kwargs: Any) -> HTTPResponse:
    return await AsyncHTTPClient().fetch(url, raise_error=False, **kwargs)


@HTTP
@given(room=url_text, before=st.none() | url_text, limit=st.none() | url_text)
@example(room="", before=None, limit=None)  # found: no route, an HTML 404
def test_scrollback_answers_any_room_and_parameters(http_url, io_loop, caplog, room, before, limit):
    """``/api/rooms/{room}/messages?before&limit``: a page or a JSON 4xx, for any input."""
    parameters = query(before=before, limit=limit)
    get_answers(io_loop, caplog, f"{http_url}/api/rooms/{room}/messages{parameters}")


@HTTP
@given(q=st.none() | url_text, room=st.none() | url_text, limit=st.none() | url_text)
def test_search_answers_any_parameters(http_url, io_loop, caplog, q, room, limit):
    """``/api/search?q&room&limit``: hits or a JSON 4xx, for any input."""
    get_answers(io_loop, caplog, f"{http_url}/api/search{query(q=q, room=room, limit=limit)}")


@HTTP
@given(room=st.none() | url_text, since=st.none() | url_text, limit=st.none() | url_text)
def test_the_websocket_endpoint_answers_any_parameters(ws_url, io_loop, caplog, room, since, limit):
    """``/ws?room&since&limit``: the upgrade and a hello, or a JSON 4xx before it."""

    async def attempt() -> None:
        try:
            conn = await open_client(f"{ws_url}/ws{query(room=room, since=since, limit=limit)}")
        except HTTPClientError as refused:
            assert refused.response is not None, refused
            check_answer(refused.response)
            return
        client = Client(conn)
        assert (await client.recv())["type"] == "hello"
        client.close()

    run(io_loop, caplog, attempt)


guest_bodies = st.one_of(
    st.binary(max_size=100),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries(
        {"name": any_text}, optional={"previous": st.none() | any_text | json_values}
    ).map(lambda v: json.dumps(v).encode()),
    deep_json.map(str.encode),
)


@HTTP
@given(body=guest_bodies)
@example(body=b'{"name": "cut \\ud83d"}')  # found: the name broke hello (UTF-8)
@example(body=b'{"name": "Ann", "previous": "\\udc84"}')  # found: 500 in PyJWT
def test_guest_sign_in_answers_any_body_with_a_token_that_works(
    http_url, ws_url, io_loop, caplog, body
):
    """``POST /api/guest``: a token or a JSON 4xx for any body; a token it gives opens /ws."""

    async def attempt() -> None:
        response = await fetch(f"{http_url}/api/guest", method="POST", body=body)
        check_answer(response)
        if response.code != 200:
            return
        token = json.loads(response.body)["token"]
        client = Client(await open_client(f"{ws_url}/ws?token={token}"))
        hello = await client.recv()
        assert hello["type"] == "hello", hello
        client.close()

    run(io_loop, caplog, attempt)
