"""HTTP endpoints: REST scrollback, health and metrics."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing

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


def sample(lines: list[str], name: str) -> float:
    """The value of one sample line of the Prometheus text format."""
    [line] = [line for line in lines if line.split(" ")[0] == name]
    return float(line.split(" ")[1])


async def test_metrics_count_traffic_errors_batches_and_latency(ws_url, http_url):
    """``/metrics`` is Prometheus text whose counters and histograms move with traffic."""
    client, _, _ = await connect_json(ws_url)
    other, _, _ = await connect_json(ws_url)
    await post(client, "counted")
    await other.expect("message")
    await client.send("not json")
    await client.expect("error")
    response = await AsyncHTTPClient().fetch(f"{http_url}/metrics")
    assert response.headers["Content-Type"].startswith("text/plain")
    lines = response.body.decode().splitlines()
    assert sample(lines, "chatapp_messages_received_total") == 1
    assert sample(lines, "chatapp_messages_stored_total") == 1
    assert sample(lines, "chatapp_messages_delivered_total") == 2
    assert sample(lines, 'chatapp_errors_total{code="bad_json"}') == 1
    assert sample(lines, "chatapp_connections") == 2
    assert sample(lines, "chatapp_write_batch_size_count") == 1
    assert sample(lines, "chatapp_commit_seconds_count") == 1
    assert sample(lines, "chatapp_fanout_seconds_count") >= 1
    assert sample(lines, "chatapp_slow_consumers_total") == 0
