"""HTTP endpoints: REST scrollback, health and metrics."""

from __future__ import annotations

import json

import pytest
from conftest import connect_json, post
from tornado.httpclient import AsyncHTTPClient, HTTPClientError


async def get_json(url: str) -> dict:
    response = await AsyncHTTPClient().fetch(url)
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


async def test_healthz_reports_ok_when_the_database_answers(http_url):
    """``/healthz`` is 200 with status ok on a working server."""
    assert (await get_json(f"{http_url}/healthz"))["status"] == "ok"


async def test_metrics_count_messages_errors_and_connections(ws_url, http_url):
    """``/metrics`` is Prometheus text with the counters moving as traffic flows."""
    client, _, _ = await connect_json(ws_url)
    await post(client, "counted")
    await client.send("not json")
    await client.expect("error")
    response = await AsyncHTTPClient().fetch(f"{http_url}/metrics")
    assert response.headers["Content-Type"].startswith("text/plain")
    lines = response.body.decode().splitlines()
    assert "chatapp_messages_stored_total 1" in lines
    assert 'chatapp_errors_total{code="bad_json"} 1' in lines
    assert "chatapp_connections 1" in lines
    assert "# TYPE chatapp_messages_received_total counter" in lines
