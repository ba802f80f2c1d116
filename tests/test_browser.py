"""The chat page in a real Chromium: what a user sees and does, end to end.

Each test drives one or more browser tabs (one browser context per user)
against a real server: the in-process one on ``http_url``, or a
``python -m chatapp`` subprocess where the server must restart. Tests wait
for outcomes on the page, never for fixed times.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from chatpage import (
    RECONNECT_WAIT_MS,
    ChatPage,
    launch_chromium,
    seed,
    skip_without_chromium,
    stored_texts,
)
from conftest import connect_json, post
from playwright.async_api import Browser, Page, WebSocketRoute, async_playwright, expect
from procs import Server, spawn_chatapp, wait_ready
from tornado.ioloop import IOLoop
from tornado.web import RequestHandler

from chatapp.auth import tokens as auth
from chatapp.auth.tokens import mint_token

OpenChat = Callable[..., Awaitable[ChatPage]]
DOCS = Path(__file__).resolve().parent.parent / "docs"
SECRET = "a-test-secret-that-is-long-enough-for-hs256"


@pytest.fixture
def browser(io_loop: IOLoop) -> Iterator[Browser]:
    """Debian's Chromium through Playwright's async API, in the test's loop.

    Request it after ``http_url`` so that the browser closes before the server.
    """
    skip_without_chromium()
    playwright = io_loop.run_sync(lambda: async_playwright().start())
    try:
        browser = io_loop.run_sync(lambda: launch_chromium(playwright))
        yield browser
        io_loop.run_sync(browser.close)
    finally:
        io_loop.run_sync(playwright.stop)


@pytest.fixture
def open_chat(browser: Browser) -> Iterator[OpenChat]:
    """Opens chat tabs; afterwards none of them may have thrown a JavaScript error."""
    opened: list[ChatPage] = []

    async def open_(url: str, name: str | None = None, **options: Any) -> ChatPage:
        chat = await ChatPage.open(browser, url, name, **options)
        opened.append(chat)
        return chat

    yield open_
    errors = [error for chat in opened for error in chat.errors]
    assert not errors, f"JavaScript errors on the page: {errors}"


async def test_two_users_chat_live(http_url, open_chat):
    """Messages, presence and typing travel live; Enter sends, Shift+Enter breaks the line."""
    alice = await open_chat(f"{http_url}/", "Alice")
    bob = await open_chat(f"{http_url}/", "Bob")
    for chat in (alice, bob):
        await expect(chat.page.locator("#people .person .name")).to_have_text(["Alice", "Bob"])

    await alice.send("Hi Bob!")
    await bob.wait_for_texts(["Hi Bob!"])
    composer = bob.page.locator("#text")
    await composer.press_sequentially("Hello")
    await expect(alice.page.locator("#typing")).to_have_text("Bob is typing…")
    await composer.press_sequentially(" Alice")
    await composer.press("Enter")
    await alice.wait_for_texts(["Hi Bob!", "Hello Alice"])
    await expect(alice.page.locator("#typing")).to_have_text("")

    composer = alice.page.locator("#text")
    await composer.press_sequentially("line one")
    await composer.press("Shift+Enter")
    await composer.press_sequentially("line two")
    await composer.press("Enter")
    expected = [("Alice", "Hi Bob!"), ("Bob", "Hello Alice"), ("Alice", "line one\nline two")]
    for chat in (alice, bob):
        await chat.wait_for_texts([text for _, text in expected])
        assert [(m["author"], m["text"]) for m in await chat.messages()] == expected
    await expect(alice.item("line one")).to_have_attribute("data-status", "sent")
    await expect(composer).to_have_value("")


async def test_a_third_user_sees_the_history_grouped_in_local_time(http_url, open_chat):
    """A newcomer gets the conversation so far: in order, grouped by author, in their time zone."""
    alice = await open_chat(f"{http_url}/", "Alice")
    bob = await open_chat(f"{http_url}/", "Bob")
    await alice.send("Morning all")
    await alice.wait_for_texts(["Morning all"])
    await alice.send("Coffee is ready")
    await bob.wait_for_texts(["Morning all", "Coffee is ready"])
    await bob.send("On my way")
    texts = ["Morning all", "Coffee is ready", "On my way"]
    await alice.wait_for_texts(texts)

    carol = await open_chat(f"{http_url}/", "Carol", timezone_id="Asia/Kolkata")
    await carol.wait_for_texts(texts)
    messages = await carol.messages()
    assert [m["seq"] for m in messages] == [1, 2, 3]
    assert [(m["author"], m["grouped"]) for m in messages] == [
        ("Alice", False),
        ("Alice", True),
        ("Bob", False),
    ]
    india = timezone(timedelta(hours=5, minutes=30))
    for message in messages:
        local = datetime.fromisoformat(message["datetime"]).astimezone(india)
        assert message["time"] == local.strftime("%I:%M %p").lstrip("0")
    await expect(carol.page.locator("#people .person")).to_have_count(3)
    await expect(carol.page.locator("#people-count")).to_have_text("(3)")


_SCROLL_TO_TOP_JS = """() => {
  document.getElementById("scroller").scrollTop = 0;
  const first = document.querySelector("#messages > li.message");
  const top = first.querySelector(".text").getBoundingClientRect().top;
  return {seq: Number(first.dataset.seq), top};
}"""
_TEXT_TOP_JS = """(seq) => document.querySelector(`#messages > li[data-seq="${seq}"] .text`)
  .getBoundingClientRect().top"""
_FIRST_SEQ_BELOW_JS = """(seq) =>
  Number(document.querySelector("#messages > li.message").dataset.seq) < seq"""


async def test_scrolling_up_loads_every_page_in_order_without_jumping(ws_url, http_url, open_chat):
    """Scrolling up pages back to the room's first message: no gap, no duplicate, no jump."""
    total = 320
    await seed(ws_url, [f"message {i}" for i in range(1, total + 1)])
    chat = await open_chat(f"{http_url}/", "Reader", viewport={"width": 900, "height": 600})
    await expect(chat.items.last).to_contain_text(f"message {total}")
    assert await chat.items.count() < total  # only the newest page at first

    start = chat.page.locator("#history-start")
    loads = 0
    while True:
        await expect(start).not_to_have_attribute("data-state", "loading")
        if await start.get_attribute("data-state") == "beginning":
            break
        anchor = await chat.page.evaluate(_SCROLL_TO_TOP_JS)
        await chat.page.wait_for_function(_FIRST_SEQ_BELOW_JS, arg=anchor["seq"])
        # The message the user was looking at stays where it was on the screen.
        top = await chat.page.evaluate(_TEXT_TOP_JS, anchor["seq"])
        assert top == pytest.approx(anchor["top"], abs=1)
        loads += 1

    messages = await chat.messages()
    assert [m["seq"] for m in messages] == list(range(1, total + 1))
    assert [m["text"] for m in messages] == [f"message {i}" for i in range(1, total + 1)]
    assert loads >= 1
    await expect(start).to_have_text("This is the beginning of #general.")


async def test_new_messages_while_scrolled_up_get_a_marker_and_a_jump_button(
    ws_url, http_url, open_chat
):
    """Scrolled up, new messages wait below a "New messages" line; the jump button brings them."""
    await seed(ws_url, [f"older {i}" for i in range(1, 81)])
    chat = await open_chat(f"{http_url}/", "Reader", viewport={"width": 900, "height": 600})
    await expect(chat.items.last).to_contain_text("older 80")
    jump = chat.page.locator("#jump")
    await expect(jump).to_be_hidden()

    await chat.page.evaluate("() => { document.getElementById('scroller').scrollTop -= 400; }")
    await expect(jump).to_have_text("↓ Jump to latest")
    await seed(ws_url, ["fresh one", "fresh two"])
    await expect(jump).to_have_text("↓ 2 new messages")
    await expect(chat.page.locator("#messages .new-marker")).to_have_count(1)
    await expect(chat.item("fresh one").locator(".new-marker")).to_have_text("New messages")
    await expect(chat.item("fresh two")).not_to_be_in_viewport()
    announcer = chat.page.locator("#announcer")
    await expect(announcer).to_have_attribute("aria-live", "polite")
    await expect(announcer).to_contain_text("fresh two")

    await jump.click()
    await expect(jump).to_be_hidden()
    await expect(chat.item("fresh two")).to_be_in_viewport()


async def restart(server: Server) -> Server:
    """The same server again: same port, same data directory."""
    with server.log.open("ab") as log:
        proc = await spawn_chatapp(
            *("--port", str(server.port), "--data-dir", str(server.data_dir)),
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
        )
    again = Server(proc, server.port, server.data_dir, server.log)
    await wait_ready(again)
    return again


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["graceful", "crash"])
async def test_a_server_restart_mid_conversation_loses_and_duplicates_nothing(
    launch, open_chat, how
):
    """The pages reconnect, resume with since and resend what was pending: each message once."""
    server = await launch()
    try:
        alice = await open_chat(f"{server.http_url}/", "Alice")
        bob = await open_chat(f"{server.http_url}/", "Bob")
        await alice.send("before the restart")
        await bob.wait_for_texts(["before the restart"])
        await bob.send("same here")
        await alice.wait_for_texts(["before the restart", "same here"])
        expected = ["before the restart", "same here"]
        if how == signal.SIGKILL:
            await alice.send("racing the crash")  # stored or not when it dies: never twice
            expected.append("racing the crash")

        await server.stop(how)
        for chat in (alice, bob):
            await expect(chat.page.locator("#connection")).not_to_have_attribute(
                "data-state", "online"
            )
        await alice.send("sent while the server was down")
        waiting = alice.page.locator("#outbox li", has_text="sent while the server was down")
        await expect(waiting).to_have_attribute("data-status", "pending")

        server = await restart(server)
        writer, _, _ = await connect_json(server.ws_url)
        for text in ("missed one", "missed two", "missed three"):
            await post(writer, text)
        expected += ["sent while the server was down", "missed one", "missed two", "missed three"]

        await expect(alice.item("sent while the server was down")).to_have_attribute(
            "data-status", "sent", timeout=RECONNECT_WAIT_MS
        )
        stored = await stored_texts(server.http_url)
        assert sorted(stored) == sorted(expected)  # each exactly once
        for chat in (alice, bob):
            await chat.wait_for_texts(stored, timeout=RECONNECT_WAIT_MS)
            assert [m["seq"] for m in await chat.messages()] == list(range(1, len(stored) + 1))
            await chat.online()

        await bob.send("back to normal")
        await alice.wait_for_texts([*stored, "back to normal"])
    finally:
        await server.stop()


class NetworkSwitch:
    """Routes the page's sockets through the test, which can cut them and refuse new ones."""

    def __init__(self) -> None:
        self.down = False
        self.routes: list[WebSocketRoute] = []

    async def install(self, page: Page) -> None:
        await page.route_web_socket(re.compile(r"/ws\b"), self.route)

    async def route(self, ws: WebSocketRoute) -> None:
        if self.down:
            await ws.close(code=1001)
            return
        ws.connect_to_server()
        self.routes.append(ws)

    async def cut(self) -> None:
        self.down = True
        for ws in self.routes:
            await ws.close(code=1001)


async def test_missing_more_than_the_server_replays_is_filled_in_order(ws_url, http_url, open_chat):
    """Offline through 1010 messages: the resume has a gap, which the page fills, in order."""
    switch = NetworkSwitch()
    pages: list[str] = []

    async def prepare(page: Page) -> None:
        await switch.install(page)
        page.on("request", lambda request: pages.append(request.url))

    chat = await open_chat(f"{http_url}/", "Away", prepare=prepare)
    await seed(ws_url, ["before the gap"])
    await chat.wait_for_texts(["before the gap"])
    await switch.cut()
    await expect(chat.page.locator("#connection")).not_to_have_attribute("data-state", "online")
    missed = [f"missed {i}" for i in range(1, 1011)]  # more than the server replays (1000)
    await seed(ws_url, missed)

    await expect(chat.page.get_by_role("button", name="Reconnect now")).to_be_visible()

    switch.down = False
    await chat.online(timeout=RECONNECT_WAIT_MS)
    await chat.wait_for_texts(["before the gap", *missed])
    seqs = [m["seq"] for m in await chat.messages()]
    assert seqs == list(range(1, len(missed) + 2))
    assert any("before=" in url for url in pages), "the gap was filled from the HTTP API"


_MARKUP = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script><b>bold?</b>'
_NAME = "<i>Mallory</i><img src=x onerror=window.pwned=3>"


async def test_markup_in_names_and_messages_is_shown_as_text(http_url, open_chat):
    """User strings are text everywhere: messages, names, presence, typing."""
    mallory = await open_chat(f"{http_url}/", _NAME)
    bob = await open_chat(f"{http_url}/", "Bob")
    await mallory.page.locator("#text").press_sequentially("<u>")
    await expect(bob.page.locator("#typing")).to_have_text(f"{_NAME} is typing…")
    await mallory.page.fill("#text", "")
    await mallory.send(_MARKUP)
    await bob.wait_for_texts([_MARKUP])
    [message] = await bob.messages()
    assert message["author"] == _NAME
    await expect(bob.page.locator("#people")).to_contain_text(_NAME)
    for chat in (bob, mallory):
        tags = await chat.page.evaluate(
            "() => document.body.querySelectorAll('img, script, b, i, u').length"
        )
        assert tags == 0
        assert await chat.page.evaluate("() => window.pwned") is None


class AckGate:
    """Routes the page's socket through the test, holding back ``ack`` frames until opened."""

    def __init__(self) -> None:
        self.held: list[str] = []
        self.page_side: WebSocketRoute | None = None
        self.open = False

    async def install(self, page: Page) -> None:
        await page.route_web_socket(re.compile(r"/ws\b"), self.route)

    def route(self, ws: WebSocketRoute) -> None:
        self.page_side = ws
        ws.connect_to_server().on_message(self.from_server)

    def from_server(self, message: str | bytes) -> None:
        assert self.page_side is not None
        if not self.open and json.loads(message)["type"] == "ack":
            self.held.append(str(message))
        else:
            self.page_side.send(message)

    def release(self) -> None:
        assert self.page_side is not None
        self.open = True
        for message in self.held:
            self.page_side.send(message)


async def test_a_pending_message_turns_sent_on_its_ack(http_url, open_chat):
    """A message shows "Sending…" until the server's ack for it, then as sent."""
    gate = AckGate()
    chat = await open_chat(f"{http_url}/", "Alice", prepare=gate.install)
    await chat.send("are you there?")
    message = chat.item("are you there?")
    # The echo has put it in the conversation, but without its ack it is still pending.
    await expect(message).to_have_attribute("data-status", "pending")
    await expect(message.locator(".status")).to_have_text("Sending…")
    gate.release()
    await expect(message).to_have_attribute("data-status", "sent")
    await expect(message.locator(".status")).to_have_text("✓Sent")
    assert gate.held, "the ack went through the gate"


class FlakyStorage:
    """Routes the page's socket: the first message is stored, but the page is told it failed."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.sabotaged: set[str] = set()
        self.page_side: WebSocketRoute | None = None
        self.server_side: WebSocketRoute | None = None

    async def install(self, page: Page) -> None:
        await page.route_web_socket(re.compile(r"/ws\b"), self.route)

    def route(self, ws: WebSocketRoute) -> None:
        self.page_side, self.server_side = ws, ws.connect_to_server()
        ws.on_message(self.from_page)
        self.server_side.on_message(self.from_server)

    def from_page(self, message: str | bytes) -> None:
        assert self.server_side is not None
        frame = json.loads(message)
        if frame["type"] == "message":
            self.sent.append(frame)
            if len(self.sent) == 1:
                self.sabotaged.add(frame["client_id"])
        self.server_side.send(message)

    def from_server(self, message: str | bytes) -> None:
        assert self.page_side is not None
        frame = json.loads(message)
        client_id = frame.get("client_id")
        if client_id in self.sabotaged and frame["type"] in ("message", "ack"):
            if frame["type"] == "ack":
                self.sabotaged.discard(client_id)  # later acks for it pass
                error = {
                    "type": "error",
                    "code": "unavailable",
                    "reason": "storage is unavailable",
                    "ref": client_id,
                }
                self.page_side.send(json.dumps(error))
            return
        self.page_side.send(message)


async def test_a_failed_send_is_retried_with_the_same_client_id_and_stored_once(
    http_url, open_chat
):
    """Retry resends the same client_id: the server answers with the original ack, one copy."""
    storage = FlakyStorage()
    alice = await open_chat(f"{http_url}/", "Alice", prepare=storage.install)
    bob = await open_chat(f"{http_url}/", "Bob")
    await alice.send("important news")
    failed = alice.page.locator("#outbox li", has_text="important news")
    await expect(failed).to_have_attribute("data-status", "failed")
    await expect(failed).to_contain_text("Not sent: storage is unavailable")
    await bob.wait_for_texts(["important news"])  # it was stored after all

    await failed.get_by_role("button", name="Retry").click()
    await expect(alice.item("important news")).to_have_attribute("data-status", "sent")
    await expect(alice.page.locator("#outbox li")).to_have_count(0)
    assert len(storage.sent) == 2
    assert storage.sent[0]["client_id"] == storage.sent[1]["client_id"]
    assert await stored_texts(http_url) == ["important news"]

    await bob.send("got it")
    await alice.wait_for_texts(["important news", "got it"])
    await bob.wait_for_texts(["important news", "got it"])


_TUTORIAL_PAGE = """<!DOCTYPE html>
<html>
<head><title>Chat</title></head>
<body>
  <ul id="messages"></ul>
  <input id="input" autocomplete="off"><button id="send" onclick="sendMessage()">Send</button>
  <script>
    const ws = new WebSocket("ws://127.0.0.1:PORT");
    ws.onmessage = (event) => {
      const li = document.createElement("li");
      li.textContent = event.data;
      document.getElementById("messages").appendChild(li);
    };
    function sendMessage() {
      const input = document.getElementById("input");
      ws.send(input.value);
      input.value = "";
    }
  </script>
</body>
</html>"""


class TutorialPage(RequestHandler):
    """Serves the tutorial's page from the chat server's origin, as the tutorial's server did."""

    def get(self) -> None:
        self.write(_TUTORIAL_PAGE.replace("PORT", str(self.request.host.rsplit(":", 1)[1])))


async def open_tutorial(browser: Browser, http_url: str) -> Page:
    page = await (await browser.new_context()).new_page()
    await page.goto(f"{http_url}/tutorial.html")
    await page.wait_for_function("() => ws.readyState === WebSocket.OPEN")
    return page


async def tutorial_send(page: Page, text: str) -> None:
    await page.fill("#input", text)
    await page.click("#send")


async def test_tutorial_clients_and_the_chat_page_see_each_other(app, http_url, browser, open_chat):
    """Two tabs of the tutorial's plain client talk through text mode; the page sees it all."""
    app.add_handlers(r".*", [(r"/tutorial\.html", TutorialPage)])
    alice = await open_chat(f"{http_url}/", "Alice")
    one = await open_tutorial(browser, http_url)
    two = await open_tutorial(browser, http_url)

    await tutorial_send(one, "hello from tab one")
    await expect(two.locator("li")).to_have_text([re.compile(r"^guest-\w+: hello from tab one$")])
    await tutorial_send(two, "tab two here")
    await expect(one.locator("li")).to_have_text([re.compile(r"^guest-\w+: tab two here$")])
    await alice.wait_for_texts(["hello from tab one", "tab two here"])
    authors = [m["author"] for m in await alice.messages()]
    assert all(author.startswith("guest-") for author in authors)
    assert authors[0] != authors[1]

    await alice.send("hi tutorial tabs")
    await expect(one.locator("li").last).to_have_text("Alice: hi tutorial tabs")
    await expect(two.locator("li").last).to_have_text("Alice: hi tutorial tabs")


async def test_rooms_can_be_created_switched_and_show_unread_counts(http_url, open_chat):
    """Rooms are joined or created by name; others' messages elsewhere count as unread."""
    alice = await open_chat(f"{http_url}/", "Alice")
    bob = await open_chat(f"{http_url}/", "Bob")
    for chat, name in ((bob, "random"), (alice, "#random")):
        await chat.page.fill("#join-room", name)
        await chat.page.press("#join-room", "Enter")
        await expect(chat.page.locator("#room-title")).to_have_text("#random")
        assert chat.page.url.endswith("/#random")
    await expect(alice.page.locator("#people .person")).to_have_count(2)

    await alice.page.locator('button.room[data-room="general"]').click()
    await expect(alice.page.locator("#room-title")).to_have_text("#general")
    await bob.send("anyone in random?")
    await bob.send("hello?")
    badge = alice.page.locator('button.room[data-room="random"] .badge')
    await expect(badge).to_have_attribute("data-count", "2")
    await expect(badge).to_be_visible()
    await expect(alice.page).to_have_title("(2) #general · chatapp")

    await alice.page.locator('button.room[data-room="random"]').click()
    await alice.wait_for_texts(["anyone in random?", "hello?"])
    await expect(alice.item("anyone in random?").locator(".new-marker")).to_have_count(1)
    await expect(badge).to_be_hidden()
    await expect(alice.page).to_have_title("#random · chatapp")

    await alice.page.reload()  # rooms, the open one and what was read survive a reload
    await alice.online()
    await expect(alice.page.locator("button.room")).to_have_count(2)
    await expect(alice.page.locator("#room-title")).to_have_text("#random")
    await alice.wait_for_texts(["anyone in random?", "hello?"])
    await expect(alice.page.locator(".badge:visible")).to_have_count(0)

    await alice.page.hover('#rooms li[data-room="random"]')
    await alice.page.get_by_role("button", name="Leave #random").click()
    await expect(alice.page.locator("button.room")).to_have_count(1)
    await expect(alice.page.locator("#room-title")).to_have_text("#general")


async def test_an_expired_token_asks_to_sign_in_again_and_resumes(serve, open_chat):
    """When a token expires the page asks for a new one, then shows what was missed, once."""
    port = await serve(jwt_secret=SECRET)
    chat = await open_chat(f"http://127.0.0.1:{port}/")
    await expect(chat.page.locator("#guest-fields")).to_be_hidden()
    await chat.sign_in_with_token(mint_token(SECRET, "alice", "Alice", ttl_seconds=3))
    await chat.online()
    bob_token = mint_token(SECRET, "bob", "Bob", ttl_seconds=3600)
    bob, _, _ = await connect_json(
        f"ws://127.0.0.1:{port}", headers={"Authorization": f"Bearer {bob_token}"}
    )
    await post(bob, "before it expired")
    await chat.wait_for_texts(["before it expired"])

    dialog = chat.page.locator("#sign-in")
    await expect(dialog).to_be_visible()
    await expect(chat.page.locator("#sign-in-message")).to_contain_text("expired")
    await post(bob, "while you were signed out")
    await chat.sign_in_with_token(mint_token(SECRET, "alice", "Alice", ttl_seconds=3600))
    await expect(dialog).to_be_hidden()
    await chat.online()
    await chat.wait_for_texts(["before it expired", "while you were signed out"])
    await chat.send("back again")
    await expect(chat.item("back again")).to_have_attribute("data-status", "sent")


async def test_an_expiring_guest_session_is_renewed_without_asking(
    http_url, open_chat, monkeypatch
):
    """Guest tokens are renewed with the previous one: same user, no dialog, nothing lost."""
    monkeypatch.setattr(auth, "GUEST_TOKEN_TTL", 3)
    sockets: list[Any] = []

    async def watch_sockets(page: Page) -> None:
        page.on("websocket", lambda socket: sockets.append(socket))

    chat = await open_chat(f"{http_url}/", "Gus", prepare=watch_sockets)
    await chat.send("first")
    await expect(chat.item("first")).to_have_attribute("data-status", "sent")
    await chat.page.wait_for_event("websocket")  # the old token ran out: a new connection
    await chat.online()
    await chat.send("second")
    await expect(chat.item("second")).to_have_attribute("data-status", "sent")
    await expect(chat.page.locator("#sign-in")).to_be_hidden()
    assert len(sockets) >= 2
    assert len({m["user"] for m in await chat.messages()}) == 1
    assert await chat.texts() == ["first", "second"]


async def tab_to(page: Page, selector: str, key: str = "Tab") -> None:
    """Press Tab until ``selector`` has the focus (at most 40 times)."""
    for _ in range(40):
        if await page.evaluate("(s) => document.activeElement.matches(s)", selector):
            return
        await page.keyboard.press(key)
    raise AssertionError(f"{selector} cannot be reached with {key}")


async def test_the_page_works_with_the_keyboard_alone(http_url, open_chat):
    """Sign in, write, create and switch rooms with the keyboard; the focus stays visible."""
    chat = await open_chat(f"{http_url}/")
    keyboard = chat.page.keyboard
    await expect(chat.page.locator("#guest-name")).to_be_focused()
    await keyboard.type("Kim")
    await keyboard.press("Enter")
    await chat.online()
    await expect(chat.page.locator("#text")).to_be_focused()
    await keyboard.type("first line")
    await keyboard.press("Shift+Enter")
    await keyboard.type("second line")
    await keyboard.press("Enter")
    await chat.wait_for_texts(["first line\nsecond line"])

    await tab_to(chat.page, "#join-room")
    await keyboard.type("team")
    await keyboard.press("Enter")
    await expect(chat.page.locator("#room-title")).to_have_text("#team")
    await expect(chat.page.locator("#text")).to_be_focused()
    await keyboard.type("hello team")
    await keyboard.press("Enter")
    await chat.wait_for_texts(["hello team"])

    await tab_to(chat.page, 'button.room[data-room="general"]', "Shift+Tab")
    outline = await chat.page.evaluate(
        "() => getComputedStyle(document.activeElement).outlineStyle"
    )
    assert outline != "none"
    await keyboard.press("Enter")
    await expect(chat.page.locator("#room-title")).to_have_text("#general")
    await chat.wait_for_texts(["first line\nsecond line"])


#: Browser context options of a phone in dark mode (the viewport is each test's).
DARK_PHONE: dict[str, Any] = {"color_scheme": "dark", "is_mobile": True, "has_touch": True}


def _luminance(css_color: str) -> float:
    red, green, blue = (int(v) for v in re.findall(r"\d+", css_color)[:3])
    return (0.2126 * red + 0.7152 * green + 0.0722 * blue) / 255


async def test_phone_width_and_dark_mode(http_url, open_chat):
    """At phone width nothing overflows and the sidebar is a drawer; dark mode is followed."""
    chat = await open_chat(
        f"{http_url}/",
        "Pat",
        viewport={"width": 375, "height": 740},
        **DARK_PHONE,
    )
    long_word = "unbreakable-" * 30
    await chat.send(long_word)
    await chat.wait_for_texts([long_word])
    scroll_width, width = await chat.page.evaluate(
        "() => [document.documentElement.scrollWidth, window.innerWidth]"
    )
    assert scroll_width <= width
    await expect(chat.page.locator("#text")).to_be_in_viewport()
    sidebar = chat.page.locator("#sidebar")
    await expect(sidebar).to_be_hidden()
    await chat.page.click("#menu-toggle")
    await expect(sidebar).to_be_visible()
    await expect(chat.page.locator("#menu-toggle")).to_have_attribute("aria-expanded", "true")
    await chat.page.keyboard.press("Escape")
    await expect(sidebar).to_be_hidden()
    background = await chat.page.evaluate("() => getComputedStyle(document.body).backgroundColor")
    text = await chat.page.evaluate("() => getComputedStyle(document.body).color")
    assert _luminance(background) < 0.2
    assert _luminance(text) > 0.8


async def test_readme_screenshots_show_a_real_conversation(http_url, open_chat):
    """Writes docs/screenshot.png (desktop, light) and docs/screenshot-phone.png (phone, dark)."""
    maya = await open_chat(f"{http_url}/", "Maya Chen")
    jonas = await open_chat(f"{http_url}/", "Jonas Berg")
    priya = await open_chat(f"{http_url}/", "Priya Raman")
    conversation = [
        (maya, "Morning! Did the 1.4 release go out last night?"),
        (jonas, "It did, live since 23:10."),
        (jonas, "Migrations took 40 seconds, no errors in the logs."),
        (priya, "Nice. Scrollback feels much faster on my phone now."),
        (maya, "Great work, both of you."),
        (maya, "Changelog draft: https://example.com/chatapp/1.4"),
        (jonas, "Looks good to me. I'll post it in #announcements after lunch."),
    ]
    shown: list[str] = []
    for chat, text in conversation:
        await chat.send(text)
        shown.append(text)
        await maya.wait_for_texts(shown)
    for chat in (maya, jonas):
        await chat.page.fill("#join-room", "planning")
        await chat.page.press("#join-room", "Enter")
        await chat.wait_for_texts([])
    await maya.page.locator('button.room[data-room="general"]').click()
    await jonas.send("Retro moved to 3 pm")
    await jonas.send("Bring your notes")
    await expect(maya.page.locator('button.room[data-room="planning"] .badge')).to_be_visible()
    await priya.page.locator("#text").press_sequentially("Sounds")
    await expect(maya.page.locator("#typing")).to_have_text("Priya Raman is typing…")
    DOCS.mkdir(exist_ok=True)
    await maya.page.mouse.move(700, 560)  # no hover effects in the picture
    await maya.page.screenshot(path=DOCS / "screenshot.png")

    sam = await open_chat(
        f"{http_url}/",
        "Sam",
        viewport={"width": 390, "height": 760},
        device_scale_factor=2,
        **DARK_PHONE,
    )
    await sam.wait_for_texts(shown)
    await sam.send("Just landed, catching up now!")
    await expect(sam.item("catching up")).to_have_attribute("data-status", "sent")
    await sam.page.screenshot(path=DOCS / "screenshot-phone.png")
    for name in ("screenshot.png", "screenshot-phone.png"):
        assert (DOCS / name).read_bytes().startswith(b"\x89PNG")


# --- search ----------------------------------------------------------------

_MESSAGES_AROUND_JS = """(seq) => {
  const scroller = document.getElementById("scroller").getBoundingClientRect();
  const seqs = [...document.querySelectorAll("#messages > li.message")]
    .map((li) => Number(li.dataset.seq));
  const visible = [seq - 1, seq, seq + 1].every((s) => {
    const box = document.querySelector(`#messages > li[data-seq="${s}"]`).getBoundingClientRect();
    return box.top >= scroller.top && box.bottom <= scroller.bottom;
  });
  return {seqs, visible};
}"""


_FOUND = re.compile(r"\bfound\b")


def _archive(index: int) -> str:
    return f"archive note {index}" + (": remember the quokka sighting?" if index == 40 else "")


async def test_choosing_a_hit_opens_its_room_at_that_message(ws_url, http_url, open_chat):
    """A hit 260 messages back in a room not joined yet: joined, paged back, shown, lit."""
    total = 300
    hello = await seed(ws_url, [_archive(i) for i in range(1, total + 1)], room="archive")
    await seed(ws_url, ["a recent message in general"])
    chat = await open_chat(
        f"{http_url}/",
        "Reader",
        viewport={"width": 900, "height": 600},
        timezone_id="Asia/Kolkata",
    )
    await chat.wait_for_texts(["a recent message in general"])
    page, keyboard = chat.page, chat.page.keyboard

    await page.get_by_role("searchbox", name="Search messages").focus()
    await keyboard.type("Quokka")
    await keyboard.press("Enter")
    results = page.locator("#search-results")
    await expect(page.locator("#search-status")).to_have_text("1 result for “Quokka”")
    hit = page.locator("#search-hits .hit")
    await expect(hit).to_have_count(1)
    await expect(hit.locator(".hit-room")).to_have_text("#archive")
    await expect(hit.locator(".author")).to_have_text(hello["user"]["name"])
    await expect(hit.locator(".hit-text")).to_have_text(_archive(40))
    await expect(hit.locator("mark")).to_have_text(["quokka"])
    when = datetime.fromisoformat(await hit.locator("time").get_attribute("datetime") or "")
    local = when.astimezone(timezone(timedelta(hours=5, minutes=30)))
    shown = (await hit.locator("time").text_content() or "").replace("\u202f", " ")
    hour = local.strftime("%I").lstrip("0")
    assert shown == f"{local:%b} {local.day}, {local.year}, {hour}:{local:%M %p}"

    await keyboard.press("ArrowDown")
    await expect(hit).to_be_focused()
    await keyboard.press("Enter")
    await expect(results).to_be_hidden()
    await expect(page.locator("#room-title")).to_have_text("#archive")
    await expect(page.locator('button.room[data-room="archive"]')).to_be_visible()
    found = chat.item("remember the quokka sighting")
    await expect(found).to_be_in_viewport()
    await expect(found).to_have_class(_FOUND)
    await expect(found).to_be_focused()
    await expect(found).to_have_attribute("data-seq", "40")

    around = await page.evaluate(_MESSAGES_AROUND_JS, 40)
    assert around["visible"], "the messages just before and after the hit are in view too"
    seqs = around["seqs"]
    assert seqs == list(range(seqs[0], total + 1))  # in order: no gap, no duplicate
    assert seqs[0] < 40
    assert await chat.texts() == [_archive(i) for i in seqs]

    # The rest of the room still pages in above it, gapless, down to its first message.
    start = page.locator("#history-start")
    while True:
        await expect(start).not_to_have_attribute("data-state", "loading")
        if await start.get_attribute("data-state") == "beginning":
            break
        anchor = await page.evaluate(_SCROLL_TO_TOP_JS)
        await page.wait_for_function(_FIRST_SEQ_BELOW_JS, arg=anchor["seq"])
    await chat.wait_for_texts([_archive(i) for i in range(1, total + 1)])


_HIT_MARKUP = '<img src=x onerror="window.pwned=1"> "quoted" & <b>bold</b> it\'s'
_HIT_QUERY = '"quoted" <b>bold</b>'


async def test_markup_and_quotes_in_queries_and_hits_are_shown_as_text(ws_url, http_url, open_chat):
    """The query and the hit are text: only <mark> elements are made, around the words."""
    await seed(ws_url, [_HIT_MARKUP, "something else entirely"])
    chat = await open_chat(f"{http_url}/", "Reader")
    await chat.wait_for_texts([_HIT_MARKUP, "something else entirely"])
    await chat.page.fill("#search", _HIT_QUERY)
    await chat.page.press("#search", "Enter")
    await expect(chat.page.locator("#search-status")).to_have_text(f"1 result for “{_HIT_QUERY}”")
    hit = chat.page.locator("#search-hits .hit")
    await expect(hit.locator(".hit-text")).to_have_text(_HIT_MARKUP)
    await expect(hit.locator("mark")).to_have_text(["quoted", "b", "bold", "b"])
    tags = await chat.page.evaluate("() => document.body.querySelectorAll('img, script, b').length")
    assert tags == 0
    assert await chat.page.evaluate("() => window.pwned") is None

    await hit.click()  # a hit in the open room: it is shown where it is
    await expect(chat.page.locator("#search-results")).to_be_hidden()
    await expect(chat.item("quoted")).to_have_class(_FOUND)
    await expect(chat.page.locator("#room-title")).to_have_text("#general")
    await chat.wait_for_texts([_HIT_MARKUP, "something else entirely"])


async def test_no_hits_is_said_and_escape_closes_at_phone_width_in_dark_mode(
    ws_url, http_url, open_chat
):
    """No hits: the box says so, quoting the query as typed; Escape closes it, keeping the query."""
    await seed(ws_url, ["nothing to see here"])
    chat = await open_chat(
        f"{http_url}/",
        "Pat",
        viewport={"width": 375, "height": 740},
        **DARK_PHONE,
    )
    page = chat.page
    box = page.get_by_role("searchbox", name="Search messages")
    await expect(box).to_be_in_viewport()
    for query in ("zebra", "<script>window.pwned=1</script>"):
        await box.fill(query)
        await box.press("Enter")
        status = page.locator("#search-status")
        await expect(status).to_have_text(f"No messages match “{query}”.")
        await expect(page.locator("#search-hits li")).to_have_count(0)
    assert await page.evaluate("() => window.pwned") is None

    results = page.locator("#search-results")
    await expect(results).to_be_in_viewport(ratio=1)
    scroll_width, width = await page.evaluate(
        "() => [document.documentElement.scrollWidth, window.innerWidth]"
    )
    assert scroll_width <= width
    panel, body = await page.evaluate(
        """() => [document.getElementById("search-results"), document.body]
                   .map((node) => getComputedStyle(node).backgroundColor)"""
    )
    assert panel == body
    assert _luminance(panel) < 0.2  # dark, like the rest of the page

    await box.press("Escape")
    await expect(results).to_be_hidden()
    await expect(box).to_be_focused()
    await expect(box).to_have_value("<script>window.pwned=1</script>")
    await expect(page.locator("#text")).to_be_in_viewport()
