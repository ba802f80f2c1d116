"""HS256 tokens when a key is configured; identity comes only from the token."""

from __future__ import annotations

import dataclasses
import json
import logging
import time

import jwt
import pytest
from conftest import connect_json, open_client, post
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

SECRET = "test-secret-that-is-long-enough-for-hs256"


def token(sub: str = "u-1", name: str = "Ada", ttl: int = 60, key: str = SECRET) -> str:
    claims = {"sub": sub, "name": name, "exp": int(time.time()) + ttl}
    return jwt.encode(claims, key, algorithm="HS256")


@pytest.fixture
def settings(settings):
    return dataclasses.replace(settings, jwt_secret=SECRET)


async def test_without_a_token_the_upgrade_is_refused_with_401(ws_url):
    """With a key configured, a connection needs a token."""
    with pytest.raises(HTTPClientError) as caught:
        await open_client(f"{ws_url}/ws")
    assert caught.value.code == 401
    assert json.loads(caught.value.response.body)["error"] == "unauthorized"


@pytest.mark.parametrize(
    "bad", ["garbage", token(key="another-secret-another-secret-12345"), token(ttl=-120)]
)
async def test_invalid_tokens_are_refused_with_401(ws_url, bad):
    """Garbage, a wrong signature and an expired token are all refused."""
    with pytest.raises(HTTPClientError) as caught:
        await open_client(f"{ws_url}/ws?token={bad}")
    assert caught.value.code == 401


async def test_token_is_accepted_from_header_query_and_cookie(ws_url):
    """Bearer header, ``token`` query parameter and cookie all identify the user."""
    value = token()
    for query, headers in (
        ("", {"Authorization": f"Bearer {value}"}),
        (f"?token={value}", {}),
        ("", {"Cookie": f"chatapp_token={value}"}),
    ):
        _, hello, _ = await connect_json(ws_url, query, headers)
        assert hello["user"] == {"id": "u-1", "name": "Ada"}


async def test_user_fields_in_frames_are_ignored(ws_url):
    """A client cannot speak as someone else by putting a user into its frames."""
    client, _, _ = await connect_json(ws_url, f"?token={token()}")
    spoof = {"id": "admin", "name": "Admin"}
    frame = {"type": "message", "room": "general", "text": "hi", "user": spoof, "name": "Admin"}
    await client.send(frame)
    echo = await client.expect("message")
    assert echo["user"] == {"id": "u-1", "name": "Ada"}


async def test_scrollback_endpoint_requires_a_token(http_url):
    """The REST endpoint answers 401 without a token and 200 with one."""
    with pytest.raises(HTTPClientError) as caught:
        await AsyncHTTPClient().fetch(f"{http_url}/api/rooms/general/messages")
    assert caught.value.code == 401
    response = await AsyncHTTPClient().fetch(
        f"{http_url}/api/rooms/general/messages",
        headers={"Authorization": f"Bearer {token()}"},
    )
    assert response.code == 200


async def test_tokens_never_appear_in_logs(ws_url, caplog):
    """Access and error logs carry the path only, never the query string's token."""
    caplog.set_level(logging.DEBUG)
    value = token()
    client, _, _ = await connect_json(ws_url, f"?token={value}")
    await post(client, "logged?")
    with pytest.raises(HTTPClientError):
        await open_client(f"{ws_url}/ws?token={value}x")
    assert "/ws" in caplog.text
    assert value not in caplog.text
