"""Identity: JWT verification, guests, room access, connection caps and origin checks."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import logging
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import jwt
import pytest
from conftest import Client, connect_json, open_client, post, sign_in
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from factories import ALICE, PATIENCE, SECRET, token
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPResponse

from chatapp.errors import ConfigError
from chatapp.server import build
from chatapp.settings import Settings


def forged(header: dict, claims: dict, key: bytes = b"") -> str:
    """A token built by hand, for attacks PyJWT refuses to produce."""

    def part(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    signing_input = f"{part(header)}.{part(claims)}"
    signature = b""
    if key:
        signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


async def refused(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    with pytest.raises(HTTPClientError) as caught:
        await open_client(url, headers)
    return caught.value.code, json.loads(caught.value.response.body)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, jwt_secret=SECRET)


# --- verification ----------------------------------------------------------


async def test_without_a_token_the_upgrade_is_refused_with_401(ws_url):
    """With a key configured (guests off by default), a connection needs a token."""
    code, body = await refused(f"{ws_url}/ws")
    assert code == 401 and body == {"error": "unauthorized", "reason": "a token is required"}


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("garbage", "invalid token"),
        (token(key="another-secret-that-is-also-long-enough"), "invalid token"),
        (token(exp=int(time.time()) - 120), "token expired"),
        (token(nbf=int(time.time()) + 600), "token not valid yet"),
        (token(exp=None), "lacks the 'exp' claim"),
        (token(sub=None), "lacks the 'sub' claim"),
        (forged({"alg": "none", "typ": "JWT"}, {"sub": "x", "exp": 2**31}), "algorithm"),
    ],
)
async def test_invalid_tokens_are_refused_with_401_and_a_reason(ws_url, bad, reason):
    """Garbage, bad signature, expired, not yet valid, missing claims, ``alg: none``."""
    code, body = await refused(f"{ws_url}/ws?token={bad}")
    assert code == 401 and reason in body["reason"]
    assert bad not in body["reason"]


async def test_token_is_accepted_from_header_query_and_cookie(ws_url):
    """Bearer header, ``token`` query parameter and cookie all identify the user."""
    value = token()
    for query, headers in (
        ("", {"Authorization": f"Bearer {value}"}),
        (f"?token={value}", {}),
        ("", {"Cookie": f"chatapp_token={value}"}),
    ):
        _, hello, _ = await connect_json(ws_url, query, headers)
        assert hello["user"] == {"id": ALICE.id, "name": ALICE.name}


async def test_name_falls_back_to_sub(ws_url):
    """A token without ``name`` shows its ``sub`` as the display name."""
    _, hello, _ = await connect_json(ws_url, f"?token={token(name=None, sub='bot-7')}")
    assert hello["user"] == {"id": "bot-7", "name": "bot-7"}


async def test_a_token_may_not_claim_a_guest_id(ws_url):
    """Configured-key tokens cannot pose as guests."""
    code, _ = await refused(f"{ws_url}/ws?token={token(sub='guest:abc')}")
    assert code == 401


async def test_issuer_and_audience_are_enforced_when_configured(serve):
    """With --jwt-issuer/--jwt-audience, tokens must carry exactly those claims."""
    port = await serve(jwt_issuer="https://id.example", jwt_audience="chat")
    url = f"ws://127.0.0.1:{port}/ws?token="
    good = token(iss="https://id.example", aud="chat")
    _, hello, _ = await connect_json(f"ws://127.0.0.1:{port}", f"?token={good}")
    assert hello["user"]["id"] == ALICE.id
    for bad, reason in (
        (token(iss="https://evil.example", aud="chat"), "issuer"),
        (token(iss="https://id.example", aud="other"), "audience"),
        (token(aud="chat"), "iss"),
    ):
        code, body = await refused(url + bad)
        assert code == 401 and reason in body["reason"]


def rsa_pair() -> tuple[rsa.RSAPrivateKey, bytes]:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, pem


async def test_rs256_tokens_verify_with_a_public_key_and_hs256_confusion_is_refused(
    serve, tmp_path
):
    """With a PEM public key, RS256 tokens pass and an HS256 token keyed with that PEM fails."""
    private, pem = rsa_pair()
    key_file = tmp_path / "public.pem"
    key_file.write_bytes(pem)
    port = await serve(jwt_secret=None, jwt_public_key=key_file)
    base = f"ws://127.0.0.1:{port}"
    _, hello, _ = await connect_json(base, f"?token={token(private, 'RS256')}")
    assert hello["user"]["id"] == ALICE.id
    confused = forged({"alg": "HS256", "typ": "JWT"}, {"sub": ALICE.id, "exp": 2**31}, pem)
    code, body = await refused(f"{base}/ws?token={confused}")
    assert code == 401 and "algorithm" in body["reason"]


async def test_es256_tokens_verify_with_an_ec_public_key(serve, tmp_path):
    """An EC P-256 public key verifies ES256 tokens."""
    private = ec.generate_private_key(ec.SECP256R1())
    key_file = tmp_path / "ec.pem"
    key_file.write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    port = await serve(jwt_secret=None, jwt_public_key=key_file)
    _, hello, _ = await connect_json(f"ws://127.0.0.1:{port}", f"?token={token(private, 'ES256')}")
    assert hello["user"]["name"] == ALICE.name


async def test_a_weak_secret_is_refused_at_startup(tmp_path):
    """An HS256 secret under 32 bytes stops the server with a clear message."""
    with pytest.raises(ConfigError, match="too weak"):
        await build(Settings(data_dir=tmp_path, jwt_secret="short"))


async def test_a_connection_is_closed_when_its_token_expires(ws_url):
    """When ``exp`` passes the server closes the socket with 4001."""
    client, _, _ = await connect_json(ws_url, f"?token={token(exp=int(time.time()) + 2)}")
    code, reason = await client.closed(timeout=2 + PATIENCE)  # exp is 2 s away
    assert code == 4001 and reason == "token expired"


async def test_user_fields_in_frames_are_ignored(ws_url):
    """A client cannot speak as someone else by putting a user into its frames."""
    client, _, _ = await connect_json(ws_url, f"?token={token()}")
    spoof = {"id": "admin", "name": "Admin"}
    await client.send({"type": "message", "room": "general", "text": "hi", "user": spoof})
    assert (await client.expect("message"))["user"] == {"id": ALICE.id, "name": ALICE.name}


async def test_tokens_never_appear_in_logs(ws_url, caplog):
    """Access and error logs carry the path only, never the query string's token."""
    caplog.set_level(logging.DEBUG)
    value = token()
    client, _, _ = await connect_json(ws_url, f"?token={value}")
    await post(client, "logged?")
    await refused(f"{ws_url}/ws?token={value}x")
    assert "/ws" in caplog.text and value not in caplog.text


# --- room access and caps ----------------------------------------------------


async def test_rooms_claim_limits_joining_posting_and_reading(ws_url, http_url):
    """A token with ``rooms`` may use only matching rooms: 403 or ``forbidden`` elsewhere."""
    limited = token(rooms=["team-*", "help"])
    code, body = await refused(f"{ws_url}/ws?token={limited}")  # auto-joins general
    assert code == 403 and body["error"] == "forbidden"
    client, _, _ = await connect_json(ws_url, f"?room=team-a&token={limited}")
    assert (await post(client, "ok", room="team-a"))["seq"] == 1
    await client.send({"type": "join", "room": "general"})
    assert (await client.expect("error"))["code"] == "forbidden"
    await client.send({"type": "history", "room": "general", "before": 5})
    assert (await client.expect("error"))["code"] == "forbidden"
    with pytest.raises(HTTPClientError) as caught:
        await AsyncHTTPClient().fetch(
            f"{http_url}/api/rooms/general/messages",
            headers={"Authorization": f"Bearer {limited}"},
        )
    assert caught.value.code == 403


async def test_connections_per_user_are_capped(serve):
    """Past --max-connections-per-user, a new connection gets 429 with a reason."""
    port = await serve(max_connections_per_user=2)
    url = f"ws://127.0.0.1:{port}"
    for _ in range(2):
        await connect_json(url, f"?token={token()}")
    code, body = await refused(f"{url}/ws?token={token()}")
    assert code == 429 and body["error"] == "too_many_connections"
    await connect_json(url, f"?token={token(sub='someone-else')}")


async def test_connections_per_address_are_capped_behind_a_trusted_proxy(serve):
    """The per-address cap counts the forwarded client address; loopback itself is exempt."""
    port = await serve(max_connections_per_address=2, trusted_proxy=True)
    url = f"ws://127.0.0.1:{port}"
    remote = {"X-Forwarded-For": "203.0.113.7"}
    for i in range(2):
        await connect_json(url, f"?token={token(sub=f'u{i}')}", remote)
    code, _ = await refused(f"{url}/ws?token={token(sub='u9')}", remote)
    assert code == 429
    for i in range(3):  # local connections are not capped by address
        await connect_json(url, f"?token={token(sub=f'local{i}')}")


# --- guests --------------------------------------------------------------------


async def test_guest_sign_in_mints_a_token_that_names_the_guest(serve):
    """By default (no key) the page gets a guest token for a chosen display name."""
    port = await serve(jwt_secret=None)
    http_url = f"http://127.0.0.1:{port}"
    options = json.loads((await AsyncHTTPClient().fetch(f"{http_url}/api/auth")).body)
    assert (options["guests"], options["tokens"]) == (True, False)
    session = await sign_in(http_url, {"name": "  Grace   Hopper "})
    assert session["user"]["name"] == "Grace Hopper"
    assert session["user"]["id"].startswith("guest:")
    _, hello, _ = await connect_json(f"ws://127.0.0.1:{port}", f"?token={session['token']}")
    assert hello["user"] == session["user"]


async def test_renewing_a_guest_token_keeps_the_guest_id(serve):
    """Renewal with the previous token keeps the id, so client_id retries still deduplicate."""
    port = await serve(jwt_secret=None)
    http_url = f"http://127.0.0.1:{port}"
    first = await sign_in(http_url, {"name": "Ann"})
    renewed = await sign_in(http_url, {"name": "Ann", "previous": first["token"]})
    assert renewed["user"]["id"] == first["user"]["id"]
    fresh = await sign_in(http_url, {"name": "Ann"})
    assert fresh["user"]["id"] != first["user"]["id"]


def cookie_of(response: HTTPResponse) -> dict[str, str]:
    """The ``chatapp_token`` Set-Cookie of a response: its value and attributes, lower-cased."""
    [header] = [
        h for h in response.headers.get_list("Set-Cookie") if h.startswith("chatapp_token=")
    ]
    name_value, *attributes = (part.strip() for part in header.split(";"))
    cookie = {"value": name_value.partition("=")[2]}
    for attribute in attributes:
        key, _, value = attribute.partition("=")
        cookie[key.lower()] = value
    return cookie


async def test_guest_sign_in_also_sets_an_http_only_strict_cookie(serve):
    """The guest token comes back as an HttpOnly, SameSite=Strict cookie a socket accepts."""
    port = await serve(jwt_secret=None)
    response = await AsyncHTTPClient().fetch(
        f"http://127.0.0.1:{port}/api/guest", method="POST", body=json.dumps({"name": "Ann"})
    )
    cookie = cookie_of(response)
    assert cookie["value"] == json.loads(response.body)["token"]
    assert (cookie["path"], cookie["samesite"]) == ("/", "Strict")
    assert "httponly" in cookie and "secure" not in cookie  # plain http: a Secure one is lost
    headers = {"Cookie": f"chatapp_token={cookie['value']}"}
    _, hello, _ = await connect_json(f"ws://127.0.0.1:{port}", "", headers)
    assert hello["user"]["name"] == "Ann"


async def test_the_cookie_is_secure_when_the_client_used_https(serve):
    """Behind a trusted proxy that says the client used https, the cookie is Secure."""
    port = await serve(jwt_secret=None, trusted_proxy=True)
    response = await AsyncHTTPClient().fetch(
        f"http://127.0.0.1:{port}/api/guest",
        method="POST",
        body=json.dumps({"name": "Ann"}),
        headers={"X-Forwarded-Proto": "https"},
    )
    assert "secure" in cookie_of(response)


async def test_a_session_is_opened_with_a_valid_token_and_closed_again(http_url, ws_url):
    """``POST /api/session`` checks a token and sets the cookie; ``DELETE`` clears it."""
    client, pasted = AsyncHTTPClient(), token()
    response = await client.fetch(
        f"{http_url}/api/session", method="POST", body=json.dumps({"token": f" {pasted} "})
    )
    assert json.loads(response.body)["user"] == {"id": ALICE.id, "name": ALICE.name}
    cookie = cookie_of(response)
    assert cookie["value"] == pasted and "httponly" in cookie and cookie["samesite"] == "Strict"
    _, hello, _ = await connect_json(ws_url, "", {"Cookie": f"chatapp_token={cookie['value']}"})
    assert hello["user"]["id"] == ALICE.id

    response = await client.fetch(f"{http_url}/api/session", method="DELETE")
    assert response.code == 204
    cleared = cookie_of(response)
    assert cleared["value"] in ("", '""')
    assert parsedate_to_datetime(cleared["expires"]) < datetime.now(UTC)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"token": token(exp=int(time.time()) - 120)}, 401, "unauthorized"),
        ({"token": "not-a-token"}, 401, "unauthorized"),
        ({"token": ""}, 400, "bad_field"),
        ({}, 400, "bad_field"),
        ([1, 2], 400, "bad_json"),
    ],
)
async def test_a_session_is_refused_with_a_reason_and_no_cookie(http_url, body, status, code):
    """A bad, expired or missing token: a JSON reason and no cookie."""
    with pytest.raises(HTTPClientError) as caught:
        await AsyncHTTPClient().fetch(
            f"{http_url}/api/session", method="POST", body=json.dumps(body)
        )
    assert caught.value.code == status
    assert json.loads(caught.value.response.body)["error"] == code
    assert not caught.value.response.headers.get_list("Set-Cookie")


async def test_another_site_cannot_set_the_session_cookie(http_url):
    """A page from another origin cannot sign the browser in (login CSRF)."""
    with pytest.raises(HTTPClientError) as caught:
        await AsyncHTTPClient().fetch(
            f"{http_url}/api/session",
            method="POST",
            body=json.dumps({"token": token()}),
            headers={"Origin": "https://evil.example"},
        )
    assert caught.value.code == 403


async def test_guest_sign_in_rejects_an_empty_name(serve):
    """A display name is required."""
    port = await serve(jwt_secret=None)
    with pytest.raises(HTTPClientError) as caught:
        await sign_in(f"http://127.0.0.1:{port}", {"name": "   "})
    assert caught.value.code == 400


async def test_with_a_key_guests_are_off_unless_allowed(serve, ws_url, http_url):
    """A key turns guests off; --allow-guests turns them back on beside tokens."""
    with pytest.raises(HTTPClientError) as caught:
        await sign_in(http_url, {"name": "Eve"})
    assert caught.value.code == 403
    port = await serve(allow_guests=True)
    _, hello, _ = await connect_json(f"ws://127.0.0.1:{port}")
    assert hello["user"]["id"].startswith("guest:")
    session = await sign_in(f"http://127.0.0.1:{port}", {"name": "Eve"})
    _, hello, _ = await connect_json(f"ws://127.0.0.1:{port}", f"?token={session['token']}")
    assert hello["user"]["name"] == "Eve"


async def test_no_guests_refuses_token_less_clients_even_without_a_key(serve):
    """--no-guests with no key configured refuses everyone without a token."""
    port = await serve(jwt_secret=None, allow_guests=False)
    code, _ = await refused(f"ws://127.0.0.1:{port}/")
    assert code == 401


async def test_the_tutorial_text_client_works_as_a_guest_without_a_token(serve):
    """No key, no token: the plain-text client is let in as a guest."""
    port = await serve(jwt_secret=None)
    plain = Client(await open_client(f"ws://127.0.0.1:{port}/"))
    listener = Client(await open_client(f"ws://127.0.0.1:{port}/"))
    await plain.conn.write_message("hi")
    assert (await listener.raw()).startswith("guest-")


# --- origins ---------------------------------------------------------------------


async def test_a_hostile_origin_gets_403(ws_url):
    """A page from another site cannot open a socket (cross-site WebSocket hijacking)."""
    code, body = await refused(f"{ws_url}/ws?token={token()}", {"Origin": "https://evil.example"})
    assert code == 403 and body["error"] == "forbidden_origin"


async def test_same_origin_and_listed_origins_are_allowed(ws_url, port, serve):
    """The server's own origin always works; others only when listed."""
    await connect_json(ws_url, f"?token={token()}", {"Origin": f"http://127.0.0.1:{port}"})
    other = await serve(allowed_origins=("https://app.example",))
    base = f"ws://127.0.0.1:{other}"
    await connect_json(base, f"?token={token()}", {"Origin": "https://app.example"})
    code, _ = await refused(f"{base}/ws?token={token()}", {"Origin": "https://app.example.evil"})
    assert code == 403


async def test_null_origin_only_when_allowed(ws_url, serve):
    """A page opened from disk (Origin ``null``) needs --allowed-origins null."""
    code, _ = await refused(f"{ws_url}/ws?token={token()}", {"Origin": "null"})
    assert code == 403
    port = await serve(allowed_origins=("null",))
    await connect_json(f"ws://127.0.0.1:{port}", f"?token={token()}", {"Origin": "null"})


async def test_forwarded_host_and_proto_are_honoured_behind_a_trusted_proxy(serve):
    """Behind a proxy that rewrites Host, the forwarded host and scheme define same-origin."""
    proxied = {
        "Origin": "https://chat.example.com",
        "X-Forwarded-Host": "chat.example.com",
        "X-Forwarded-Proto": "https",
    }
    trusting = await serve(trusted_proxy=True)
    await connect_json(f"ws://127.0.0.1:{trusting}", f"?token={token()}", proxied)
    direct = await serve()
    code, _ = await refused(f"ws://127.0.0.1:{direct}/ws?token={token()}", proxied)
    assert code == 403


# --- the token command -------------------------------------------------------------


async def test_token_command_mints_a_token_the_server_accepts(ws_url):
    """``python -m chatapp token`` prints a token for the configured secret, rooms included."""
    minted = subprocess.run(
        [
            sys.executable,
            "-m",
            "chatapp",
            "token",
            "--sub",
            "bot",
            "--name",
            "Bot",
            "--ttl",
            "5m",
            "--rooms",
            "general",
        ],
        env={**os.environ, "CHATAPP_JWT_SECRET": SECRET},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    _, hello, _ = await connect_json(ws_url, f"?token={minted}")
    assert hello["user"] == {"id": "bot", "name": "Bot"}
    claims = jwt.decode(minted, SECRET, algorithms=["HS256"])
    assert claims["rooms"] == ["general"] and 0 < claims["exp"] - time.time() <= 300


def test_token_command_without_a_secret_fails_clearly():
    """Without a secret the token command explains itself and exits non-zero."""
    env = {k: v for k, v in os.environ.items() if k != "CHATAPP_JWT_SECRET"}
    result = subprocess.run(
        [sys.executable, "-m", "chatapp", "token", "--sub", "bot"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2 and result.stderr.startswith("chatapp token: error:")


async def test_a_token_past_its_exp_is_refused_even_within_the_leeway(ws_url):
    """exp is strict, so a reconnect with an expired token is refused, not accepted and closed."""
    code, body = await refused(f"{ws_url}/ws?token={token(exp=int(time.time()) - 5)}")
    assert code == 401 and body["reason"] == "token expired"
