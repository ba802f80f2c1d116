"""HTTP endpoints: REST scrollback, the room directory, published limits, health and metrics."""

from __future__ import annotations

import json
import re
import sqlite3
from contextlib import closing
from datetime import timedelta

import pytest
from conftest import connect_json, post, sample
from factories import SECRET, T0, TRICKLE, new
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from chatapp.auth.tokens import MAX_NAME_CHARS, mint_token
from chatapp.errors import CloseCode
from chatapp.limits import (
    DEFAULT_HISTORY_LIMIT,
    DEFAULT_SEARCH_LIMIT,
    GUEST_BURST,
    MAX_HISTORY_LIMIT,
    MAX_SEARCH_LIMIT,
    MAX_SEARCH_QUERY_CHARS,
    MAX_TEXT_CHARS,
    MIN_HTTP_BURST,
    MIN_RATE_BURST,
    ROOM_NAME_PATTERN,
)
from chatapp.model import RoomActivity


async def get_json(url: str, headers: dict[str, str] | None = None) -> dict:
    response = await AsyncHTTPClient().fetch(url, headers=headers)
    assert response.headers["Content-Type"].startswith("application/json")
    return json.loads(response.body)


async def test_scrollback_endpoint_pages_newest_last(ws_url, http_url):
    """``GET /api/rooms/R/messages`` returns a page oldest first with has_more, like ``history``."""
    client, _, _ = await connect_json(ws_url)
    for i in range(7):
        await post(client, f"t{i + 1}")
    latest = await get_json(f"{http_url}/api/rooms/general/messages?limit=3")
    assert [m["seq"] for m in latest["messages"]] == [5, 6, 7] and latest["has_more"] is True
    older = await get_json(f"{http_url}/api/rooms/general/messages?before=5&limit=10")
    assert [m["text"] for m in older["messages"]] == ["t1", "t2", "t3", "t4"]
    assert older["has_more"] is False and older["room"] == "general"


async def test_scrollback_of_an_unknown_room_is_empty(http_url):
    """A room nobody wrote in has no messages, which is not an error."""
    page = await get_json(f"{http_url}/api/rooms/nobody-here/messages")
    assert page == {"type": "history", "room": "nobody-here", "messages": [], "has_more": False}


@pytest.mark.parametrize(
    "path",
    [
        "/api/rooms/bad%20room/messages",
        "/api/rooms/general/messages?before=abc",
        "/api/rooms/general/messages?before=0",
        "/api/rooms/general/messages?limit=-3",
    ],
)
async def test_scrollback_bad_parameters_get_400_with_a_reason(http_url, path):
    """Bad room names and parameters are a 400 with a JSON reason."""
    with pytest.raises(HTTPClientError) as caught:
        await AsyncHTTPClient().fetch(f"{http_url}{path}")
    assert caught.value.code == 400
    body = json.loads(caught.value.response.body)
    assert body["error"] and body["reason"]


async def test_healthz_reports_the_process_alive(http_url):
    """``/healthz`` is 200 with status ok while the server runs."""
    assert (await get_json(f"{http_url}/healthz"))["status"] == "ok"


async def test_readyz_reports_ready_when_the_database_is_current(http_url):
    """``/readyz`` is 200 when the database answers and is at the newest migration."""
    assert (await get_json(f"{http_url}/readyz"))["status"] == "ready"


async def test_readyz_is_503_when_the_schema_is_not_current(http_url, settings):
    """A database whose schema is not at the newest migration makes the server not ready."""
    with closing(sqlite3.connect(settings.data_dir / "chat.db")) as db:
        db.execute("UPDATE alembic_version SET version_num = 'elsewhere'")
        db.commit()
    with pytest.raises(HTTPClientError) as caught:
        await AsyncHTTPClient().fetch(f"{http_url}/readyz")
    assert caught.value.code == 503
    assert "migration" in json.loads(caught.value.response.body)["reason"]


async def test_metrics_count_traffic_errors_batches_and_latency(ws_url, http_url):
    """``/metrics`` is Prometheus text whose counters and histograms move with traffic."""
    client, _, _ = await connect_json(ws_url)
    other, _, _ = await connect_json(ws_url)
    first = await post(client, "counted", client_id="m-1")
    await other.expect("message")
    assert await post(client, "counted", client_id="m-1") == first  # a retry: the same ack
    await client.send("not json")
    await client.expect("error")
    response = await AsyncHTTPClient().fetch(f"{http_url}/metrics")
    assert response.headers["Content-Type"].startswith("text/plain")
    lines = response.body.decode().splitlines()
    assert sample(lines, "chatapp_messages_received_total") == 2
    assert sample(lines, "chatapp_messages_stored_total") == 1
    assert sample(lines, "chatapp_messages_duplicate_total") == 1
    assert sample(lines, "chatapp_messages_delivered_total") == 2
    assert sample(lines, 'chatapp_errors_total{code="bad_json"}') == 1
    assert sample(lines, "chatapp_connections") == 2
    assert sample(lines, "chatapp_write_batch_size_count") == 2
    assert sample(lines, "chatapp_commit_seconds_count") == 2
    assert sample(lines, "chatapp_fanout_seconds_count") >= 1
    assert sample(lines, "chatapp_slow_consumers_total") == 0


# --- the room directory ------------------------------------------------------


async def test_room_activity_lists_rooms_by_newest_message(store):
    """One query gives each room's newest seq and time, the most recently active first."""
    await store.append(
        [new("a", room="old", at=T0), new("b", room="old", at=T0 + timedelta(minutes=1))]
    )
    await store.append([new("c", room="new", at=T0 + timedelta(hours=1))])
    await store.append([new("d", room="gone", at=T0 + timedelta(hours=2))])
    assert await store.prune("gone", T0 + timedelta(days=1), 10) == 1
    assert await store.room_activity() == [
        RoomActivity("new", 1, T0 + timedelta(hours=1)),
        RoomActivity("old", 2, T0 + timedelta(minutes=1)),
        RoomActivity("gone", 1, None),
    ]


async def newest_ts(http_url: str, room: str) -> str:
    page = await get_json(f"{http_url}/api/rooms/{room}/messages?limit=1")
    ts: str = page["messages"][-1]["ts"]
    return ts


async def test_rooms_endpoint_lists_activity_and_members_present(serve, db_url):
    """``GET /api/rooms``: rooms by last activity with members here now, on both databases."""
    port = await serve(db_url=db_url)
    ws_url, http_url = f"ws://127.0.0.1:{port}", f"http://127.0.0.1:{port}"
    writer, _, _ = await connect_json(ws_url, "?room=quiet")
    await post(writer, "first", room="quiet")
    await writer.send({"type": "join", "room": "busy"})
    await writer.expect("history")
    await connect_json(ws_url, "?room=busy")
    await post(writer, "one", room="busy")
    await post(writer, "two", room="busy")
    await connect_json(ws_url, "?room=waiting")  # present, but nobody wrote there yet

    body = await get_json(f"{http_url}/api/rooms")
    assert body == {
        "rooms": [
            {
                "name": "busy",
                "last_activity": await newest_ts(http_url, "busy"),
                "last_seq": 2,
                "members": 2,
            },
            {
                "name": "quiet",
                "last_activity": await newest_ts(http_url, "quiet"),
                "last_seq": 1,
                "members": 1,
            },
            {"name": "waiting", "last_activity": None, "last_seq": 0, "members": 1},
        ]
    }


async def test_rooms_endpoint_keeps_to_the_rooms_a_token_allows(serve):
    """A token's ``rooms`` claim filters the directory; no token where one is required: 401."""
    port = await serve(jwt_secret=SECRET)
    ws_url, http_url = f"ws://127.0.0.1:{port}", f"http://127.0.0.1:{port}"
    everywhere = {"Authorization": f"Bearer {mint_token(SECRET, 'u-admin', 'Admin', 60)}"}
    writer, _, _ = await connect_json(ws_url, "?room=team-a", everywhere)
    for room in ("team-b", "ops"):
        await writer.send({"type": "join", "room": room})
        await writer.expect("history")
    for room in ("team-a", "team-b", "ops"):
        await post(writer, f"hello {room}", room=room)

    limited = mint_token(SECRET, "u-1", "Ada", 60, rooms=["team-*"])
    body = await get_json(f"{http_url}/api/rooms", {"Authorization": f"Bearer {limited}"})
    assert sorted(room["name"] for room in body["rooms"]) == ["team-a", "team-b"]
    with pytest.raises(HTTPClientError) as caught:
        await get_json(f"{http_url}/api/rooms")
    assert caught.value.code == 401


# --- published limits ---------------------------------------------------------


async def test_auth_options_publish_the_servers_limits(serve):
    """``GET /api/auth`` carries the limits clients must respect, from the server's own values."""
    port = await serve(rate_limit=3)
    body = await get_json(f"http://127.0.0.1:{port}/api/auth")
    assert body["guests"] is True and body["tokens"] is False
    limits = body["limits"]
    assert limits == {
        "room_pattern": ROOM_NAME_PATTERN,
        "max_text_chars": MAX_TEXT_CHARS,
        "max_name_chars": MAX_NAME_CHARS,
        "default_history_limit": DEFAULT_HISTORY_LIMIT,
        "max_history_limit": MAX_HISTORY_LIMIT,
        "default_search_limit": DEFAULT_SEARCH_LIMIT,
        "max_search_limit": MAX_SEARCH_LIMIT,
        "max_search_query_chars": MAX_SEARCH_QUERY_CHARS,
        "rate_limit": 3,
        "rate_burst": MIN_RATE_BURST,
        "close_codes": {code.name.lower(): code.value for code in CloseCode},
    }
    assert limits["close_codes"]["token_expired"] == 4001
    assert re.fullmatch(limits["room_pattern"], "team-1.x")
    assert not re.fullmatch(limits["room_pattern"], ".hidden")


@pytest.mark.parametrize(
    ("path", "method", "body", "setting", "allowed"),
    [
        ("/api/rooms/general/messages", "GET", None, {"http_rate_limit": TRICKLE}, MIN_HTTP_BURST),
        ("/api/search?q=hello", "GET", None, {"http_rate_limit": TRICKLE}, MIN_HTTP_BURST),
        ("/api/guest", "POST", b'{"name": "Ann"}', {"guest_rate_limit": TRICKLE}, GUEST_BURST),
    ],
)
async def test_an_address_past_its_rate_gets_429_with_retry_after(
    serve, path, method, body, setting, allowed
):
    """Scrollback, search and guest sign-in are limited per address: past the burst, 429
    with a JSON reason and Retry-After, while the requests within it all succeeded."""
    port = await serve(**setting)
    client = AsyncHTTPClient()
    for _ in range(allowed):
        response = await client.fetch(f"http://127.0.0.1:{port}{path}", method=method, body=body)
        assert response.code == 200
    with pytest.raises(HTTPClientError) as refused:
        await client.fetch(f"http://127.0.0.1:{port}{path}", method=method, body=body)
    assert refused.value.code == 429
    assert int(refused.value.response.headers["Retry-After"]) >= 1
    assert json.loads(refused.value.response.body)["error"] == "rate_limited"
