"""The tutorial's plain-text WebSocket at ``/`` (room ``general``), beside JSON clients."""

from __future__ import annotations

from conftest import Client, connect_json, open_client, post
from tornado.httpclient import AsyncHTTPClient

from chatapp.limits import MAX_TEXT_CHARS


async def text_client(ws_url: str) -> Client:
    return Client(await open_client(f"{ws_url}/"))


async def test_text_clients_exchange_lines_without_echo(ws_url):
    """Plain text in, ``name: text`` out to the others; the sender gets no echo."""
    alice = await text_client(ws_url)
    bob = await text_client(ws_url)
    await alice.conn.write_message("hello from the tutorial")
    line = await bob.raw()
    assert isinstance(line, str) and line.endswith(": hello from the tutorial")
    assert line.startswith("guest-")
    await alice.conn.write_message("second")
    assert (await bob.raw()).endswith(": second")
    await bob.conn.write_message("reply")
    assert (await alice.raw()).endswith(": reply")  # not "second": no echo


async def test_json_and_text_clients_see_each_other(ws_url):
    """Text-mode messages reach JSON clients as messages, and the other way round."""
    json_client, hello, _ = await connect_json(ws_url)
    plain = await text_client(ws_url)
    await plain.conn.write_message("from text")
    message = await json_client.expect("message")
    assert message["text"] == "from text" and message["room"] == "general"
    await post(json_client, "from json")
    assert await plain.raw() == f"{hello['user']['name']}: from json"


async def test_text_client_receives_recent_history_as_lines(ws_url):
    """On connect a text client gets the recent messages as lines, oldest first."""
    writer, hello, _ = await connect_json(ws_url)
    await post(writer, "one")
    await post(writer, "two")
    plain = await text_client(ws_url)
    name = hello["user"]["name"]
    assert [await plain.raw(), await plain.raw()] == [f"{name}: one", f"{name}: two"]


async def test_text_client_problems_are_reported_as_a_line(ws_url):
    """Bad input in text mode gets a ``[chatapp]`` line and the connection goes on."""
    plain = await text_client(ws_url)
    await plain.conn.write_message("x" * (MAX_TEXT_CHARS + 1))
    assert (await plain.raw()).startswith("[chatapp] ")
    await plain.conn.write_message(b"\x01\x02", binary=True)
    assert (await plain.raw()).startswith("[chatapp] ")
    listener = await text_client(ws_url)
    await plain.conn.write_message("ok now")
    assert (await listener.raw()).endswith(": ok now")


async def test_root_without_upgrade_serves_the_chat_page(http_url):
    """``GET /`` from a browser is the HTML page, on the same path as the text socket."""
    response = await AsyncHTTPClient().fetch(f"{http_url}/")
    assert response.headers["Content-Type"].startswith("text/html")
    assert b"<html" in response.body and b"/static/chat.js" in response.body
    script = await AsyncHTTPClient().fetch(f"{http_url}/static/chat.js")
    assert script.code == 200
