"""The chat page in a real Chromium: what a user sees and does, end to end.

Each test drives one or more browser tabs (one browser context per user)
against a real server: the in-process one on ``http_url``, or a
``python -m chatapp`` subprocess where the server must restart. Tests wait
for outcomes on the page, never for fixed times.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from chatpage import (
    NOTIFICATION_SPY,
    RECONNECT_WAIT_MS,
    ChatPage,
    launch_chromium,
    seed,
    skip_without_chromium,
    stored_texts,
)
from conftest import connect_json, post
from factories import SECRET, token
from playwright.async_api import Browser, Page, Route, WebSocketRoute, async_playwright, expect
from procs import restart
from tornado.ioloop import IOLoop
from tornado.web import RequestHandler

from chatapp.auth import tokens as auth
from chatapp.auth.tokens import mint_token

OpenChat = Callable[..., Awaitable[ChatPage]]
DOCS = Path(__file__).resolve().parent.parent / "docs"


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

    async def open_(
        url: str, name: str | None = None, tab_of: ChatPage | None = None, **options: Any
    ) -> ChatPage:
        """A tab in a browser context of its own, or another tab in ``tab_of``'s."""
        if tab_of is not None:
            chat = await ChatPage.open_tab(tab_of.page.context, url, name, **options)
        else:
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
    # Visible, not just the text (a hidden button has it too): the page has handled the
    # scroll, which it does on the next frame, before the new messages are sent.
    await expect(jump).to_be_visible()
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


async def screenshot(chat: ChatPage, name: str) -> None:
    """A picture of the page: written to docs/ only when CHATAPP_SCREENSHOTS=1 asks for it."""
    picture = await chat.page.screenshot()
    assert picture.startswith(b"\x89PNG")
    if os.environ.get("CHATAPP_SCREENSHOTS") == "1":
        DOCS.mkdir(exist_ok=True)
        (DOCS / name).write_bytes(picture)


async def test_readme_screenshots_show_a_real_conversation(http_url, open_chat):
    """The README's pictures: desktop in light mode, phone in dark mode (CHATAPP_SCREENSHOTS=1
    writes them to docs/)."""
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
    await maya.page.mouse.move(700, 560)  # no hover effects in the picture
    await screenshot(maya, "screenshot.png")

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
    await sam.page.mouse.move(200, 700)  # off the messages: no hover effects in the picture
    await screenshot(sam, "screenshot-phone.png")


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


# --- reading: scrolling, read positions, tabs ---------------------------------------


async def test_coming_back_to_unread_messages_scrolls_only_the_conversation(
    ws_url, http_url, open_chat
):
    """The page goes to the "New messages" line inside the conversation; the page itself,
    with its top bar and composer, never scrolls."""
    await seed(ws_url, [f"earlier {i}" for i in range(1, 41)])  # one author: grouped messages
    chat = await open_chat(f"{http_url}/", "Reader", viewport={"width": 900, "height": 600})
    await expect(chat.items.last).to_contain_text("earlier 40")
    await chat.join("elsewhere")
    await seed(ws_url, [f"unread {i}" for i in range(1, 31)])
    await expect(chat.unread_badge("general")).to_have_attribute("data-count", "30")

    await chat.open_room("general")
    await expect(chat.item("unread 1").locator(".new-marker")).to_be_in_viewport()
    assert await chat.page_scroll_top() == 0
    for part in (".topbar", "#composer", "#sidebar"):
        await expect(chat.page.locator(part)).to_be_in_viewport(ratio=1)


#: Four lines each: four of them do not fit under the "New messages" line at once.
_TALL = "\n".join(["line"] * 4)


async def test_how_far_a_room_was_read_is_kept_from_the_first_visit(ws_url, http_url, open_chat):
    """Read a room, close the page, four messages arrive: reopened, they are new and counted."""
    await seed(ws_url, ["already here"])
    chat = await open_chat(f"{http_url}/", "Reader", viewport={"width": 900, "height": 420})
    await chat.wait_for_texts(["already here"])
    context = chat.page.context
    await chat.page.close()
    await seed(ws_url, [f"new {i}\n{_TALL}" for i in range(1, 5)])

    again = await open_chat(f"{http_url}/", tab_of=chat)
    assert again.page.context is context
    await again.online()
    await expect(again.item("new 1").locator(".new-marker")).to_have_text("New messages")
    await expect(again.page.locator("#jump")).to_have_text("↓ 4 new messages")
    await expect(again.page).to_have_title("(4) #general · chatapp")
    assert await again.page_scroll_top() == 0

    await again.page.locator("#jump").click()  # scrolled to the bottom: read, and kept
    await expect(again.page).to_have_title("#general · chatapp")
    await again.page.reload()
    await again.online()
    await again.wait_for_texts(["already here", *(f"new {i}\n{_TALL}" for i in range(1, 5))])
    await expect(again.page.locator(".new-marker")).to_have_count(0)


async def test_reading_in_one_tab_clears_the_unread_count_in_the_other(http_url, open_chat):
    """Two tabs of one browser: what one of them reads is no longer unread in the other."""
    alice = await open_chat(f"{http_url}/", "Alice")
    await alice.join("team")
    await alice.open_room("general")
    second = await open_chat(f"{http_url}/", tab_of=alice)
    await second.online()
    await expect(second.page.locator("#room-title")).to_have_text("#general")
    bob = await open_chat(f"{http_url}/", "Bob")
    await bob.join("team")
    for text in ("one", "two", "three"):
        await bob.send(text)
    for tab in (alice, second):
        await expect(tab.unread_badge("team")).to_have_attribute("data-count", "3")

    await alice.open_room("team")
    await alice.wait_for_texts(["one", "two", "three"])
    await expect(second.unread_badge("team")).to_be_hidden()
    await expect(second.page).to_have_title("#general · chatapp")


# --- how messages and people are shown ------------------------------------------------


async def test_links_keep_balanced_parentheses_and_www_addresses_are_linked(
    ws_url, http_url, open_chat
):
    """A link runs to its closing parenthesis when it has the opening one, and stops before
    punctuation; www. addresses become https links."""
    texts = [
        "See https://en.wikipedia.org/wiki/Chat_(software).",
        "(docs at www.example.com/guide)",
        "both https://example.com/a_(b)_c, and https://example.com/x)",
    ]
    await seed(ws_url, texts)
    chat = await open_chat(f"{http_url}/", "Reader")
    await chat.wait_for_texts(texts)
    links = await chat.page.eval_on_selector_all(
        "#messages .text a", "(links) => links.map((a) => [a.textContent, a.href, a.rel])"
    )
    rel = "noopener noreferrer nofollow"
    assert links == [
        [
            "https://en.wikipedia.org/wiki/Chat_(software)",
            "https://en.wikipedia.org/wiki/Chat_(software)",
            rel,
        ],
        ["www.example.com/guide", "https://www.example.com/guide", rel],
        ["https://example.com/a_(b)_c", "https://example.com/a_(b)_c", rel],
        ["https://example.com/x", "https://example.com/x", rel],
    ]


async def test_guests_with_the_same_name_are_told_apart(http_url, open_chat):
    """Two guests called Ann carry different tags from their ids, and their ids on hover."""
    first = await open_chat(f"{http_url}/", "Ann")
    second = await open_chat(f"{http_url}/", "Ann")
    bob = await open_chat(f"{http_url}/", "Bob")
    await first.send("from the first Ann")
    await bob.wait_for_texts(["from the first Ann"])
    await second.send("from the second Ann")
    await bob.wait_for_texts(["from the first Ann", "from the second Ann"])

    headers = await bob.page.eval_on_selector_all(
        "#messages > li.message",
        """(items) => items.map((li) => ({
             user: li.dataset.user,
             name: li.querySelector(".author").textContent,
             title: li.querySelector(".author").title,
             tag: li.querySelector(".meta .guest-tag").textContent,
           }))""",
    )
    assert [h["name"] for h in headers] == ["Ann", "Ann"]
    assert headers[0]["user"] != headers[1]["user"]
    for header in headers:
        assert header["user"].startswith("guest:")
        assert header["title"] == header["user"]
        assert header["tag"] == f"guest·{header['user'].removeprefix('guest:')[:4]}"
    assert headers[0]["tag"] != headers[1]["tag"]
    people = bob.page.locator("#people .person")
    await expect(people).to_have_count(3)
    tags = await bob.page.locator("#people .person .guest-tag").all_text_contents()
    assert {headers[0]["tag"], headers[1]["tag"]} < set(tags) and len(set(tags)) == 3


async def test_right_to_left_text_is_aligned_right(ws_url, http_url, open_chat):
    """Hebrew or Arabic text runs right to left, aligned to the right edge."""
    await seed(ws_url, ["שלום לכולם, מה שלומכם?", "left to right"])
    chat = await open_chat(f"{http_url}/", "Reader")
    await chat.wait_for_texts(["שלום לכולם, מה שלומכם?", "left to right"])
    boxes = await chat.page.eval_on_selector_all(
        "#messages > li.message .body",
        """(bodies) => bodies.map((body) => {
             const outer = body.getBoundingClientRect();
             const text = body.querySelector(".text").getBoundingClientRect();
             return {dir: getComputedStyle(body).direction,
                     left: text.left - outer.left, right: outer.right - text.right};
           })""",
    )
    rtl, ltr = boxes
    assert rtl["dir"] == "rtl" and ltr["dir"] == "ltr"
    assert rtl["right"] == pytest.approx(0, abs=1) and rtl["left"] > 100
    assert ltr["left"] == pytest.approx(0, abs=1) and ltr["right"] > 100


_RENDER_JS = """async ([text, me]) => {
  const { renderText } = await import("/static/richtext.js");
  const box = document.createElement("div");
  box.append(renderText(text, me));
  return box.innerHTML;
}"""

_MARKDOWN = [
    (
        "**bold**, *em*, _em_ and `x < y`",
        "<strong>bold</strong>, <em>em</em>, <em>em</em> and <code>x &lt; y</code>",
    ),
    ("***both***", "<strong><em>both</em></strong>"),
    ("**a *b* c**", "<strong>a <em>b</em> c</strong>"),
    ("**unterminated and *open", "**unterminated and *open"),
    ("snake_case_name, 2 * 3 * 4, ** x **", "snake_case_name, 2 * 3 * 4, ** x **"),
    ("`**not bold**` and `` a ` b ``", "<code>**not bold**</code> and <code> a ` b </code>"),
    ("an ` alone", "an ` alone"),
    (
        "```\n<b>code</b> **as is**\n```\nafter",
        '<pre dir="ltr"><code>&lt;b&gt;code&lt;/b&gt; **as is**</code></pre>after',
    ),
    ("```js\nnever closed\n**x**", '<pre dir="ltr"><code>never closed\n**x**</code></pre>'),
    (
        "> quoted *text*\n> > nested\nafter",
        "<blockquote>quoted <em>text</em><blockquote>nested</blockquote></blockquote>after",
    ),
    ("<script>alert(1)</script>", "&lt;script&gt;alert(1)&lt;/script&gt;"),
    (
        '*<img src=x onerror="window.pwned=1">*',
        '<em>&lt;img src=x onerror="window.pwned=1"&gt;</em>',
    ),
    ("[x](javascript:alert(1))", "[x](javascript:alert(1))"),
    (
        "hi @Ann, @annie and ann@example.com",
        'hi <span class="mention me">@Ann</span>, <span class="mention">@annie</span>'
        " and ann@example.com",
    ),
    (
        "*see https://example.com/a_b_*",
        '<em>see <a href="https://example.com/a_b" target="_blank"'
        ' rel="noopener noreferrer nofollow">https://example.com/a_b</a>_</em>',
    ),
]


async def test_markdown_is_rendered_into_safe_nodes(http_url, open_chat):
    """Emphasis, code, code blocks, quotes and mentions become elements; everything else,
    hostile markup and unmatched markers included, stays text."""
    chat = await open_chat(f"{http_url}/", "Ann")
    for text, html in _MARKDOWN:
        assert await chat.page.evaluate(_RENDER_JS, [text, "Ann"]) == html, text
    for hostile in ("*" * 4000, "_a" * 2000, "> " * 2000 + "deep", "`" * 3999, "**a" * 1300):
        rendered = await chat.page.evaluate(_RENDER_JS, [hostile, "Ann"])
        assert "<script" not in rendered
    assert await chat.page.evaluate("() => window.pwned") is None

    await chat.send("**Deploy** is `done`\n> as *planned*")
    item = chat.item("Deploy")
    await expect(item.locator(".text strong")).to_have_text("Deploy")
    await expect(item.locator(".text code")).to_have_text("done")
    await expect(item.locator(".text blockquote em")).to_have_text("planned")


# --- search ------------------------------------------------------------------------------


async def test_search_runs_as_you_type_with_a_prefix_and_says_how_many_match(
    ws_url, http_url, open_chat
):
    """Typing "deploy" (no Enter) finds "deployment"; the status tells the hits from the total."""
    await seed(ws_url, [f"deployment step {i}" for i in range(1, 121)] + ["unrelated"])
    searched: list[str] = []

    async def watch(page: Page) -> None:
        page.on("request", lambda r: "/api/search" in r.url and searched.append(r.url))

    chat = await open_chat(f"{http_url}/", "Reader", prepare=watch)
    await expect(chat.items.last).to_contain_text("unrelated")
    await chat.page.locator("#search").press_sequentially("deploy")
    await expect(chat.page.locator("#search-status")).to_have_text("Top 100 of 120 for “deploy”")
    hits = chat.page.locator("#search-hits .hit")
    await expect(hits).to_have_count(100)
    await expect(hits.first.locator("mark")).to_have_text(["deployment"])
    assert parse_qs(urlsplit(searched[-1]).query)["q"] == ["deploy*"]

    await chat.page.locator("#search").fill("step 7 ")  # a space ends the word: exact words
    await expect(chat.page.locator("#search-status")).to_have_text("1 result for “step 7”")


# --- tokens: sign-in, cookies, URLs -----------------------------------------------------


async def test_a_refused_token_is_explained_cleared_and_where_tokens_come_from_is_said(
    serve, open_chat
):
    """On a token-only server an expired or foreign token gets a plain explanation in a box
    aligned with the field, which is emptied for the next token."""
    port = await serve(jwt_secret=SECRET)
    chat = await open_chat(f"http://127.0.0.1:{port}/")
    page = chat.page
    await expect(page.locator("#token-help")).to_contain_text("identity service")
    await expect(page.locator("#token-help")).to_contain_text("python -m chatapp token")
    message, field = page.locator("#sign-in-message"), page.locator("#token")

    expired = token(sub="alice", exp=int(time.time()) - 60)
    await chat.sign_in_with_token(expired)
    await expect(message).to_have_text("That token has expired. Please get a new one.")
    await expect(field).to_have_value("")
    await expect(field).to_be_focused()
    box, input_box = await message.bounding_box(), await field.bounding_box()
    assert box is not None and input_box is not None
    assert box["x"] == pytest.approx(input_box["x"], abs=1)
    assert box["width"] == pytest.approx(input_box["width"], abs=1)

    foreign = mint_token("another-secret-that-is-long-enough-for-hs256", "eve", "Eve", 60)
    await chat.sign_in_with_token(foreign)
    await expect(message).to_contain_text("The server did not accept that token")
    await expect(field).to_have_value("")

    await chat.sign_in_with_token(mint_token(SECRET, "alice", "Alice", 3600))
    await chat.online()


async def test_a_pasted_token_signs_in_through_an_http_only_cookie(serve, open_chat):
    """The token becomes an HttpOnly cookie: it carries the socket, survives a reload,
    and signing out removes it."""
    port = await serve(jwt_secret=SECRET)
    chat = await open_chat(f"http://127.0.0.1:{port}/")
    await chat.sign_in_with_token(mint_token(SECRET, "alice", "Alice", 3600))
    await chat.online()
    await chat.send("signed in by cookie")
    await expect(chat.item("signed in by cookie")).to_have_attribute("data-status", "sent")
    [cookie] = [c for c in await chat.page.context.cookies() if c["name"] == "chatapp_token"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/"
    assert "chatapp_token" not in await chat.page.evaluate("() => document.cookie")

    await chat.page.context.clear_cookies()  # as after a browser restart: the page sets it again
    await chat.page.reload()
    await chat.online()
    await expect(chat.page.locator("#sign-in")).to_be_hidden()
    await chat.wait_for_texts(["signed in by cookie"])

    await chat.page.get_by_role("button", name="Sign out").click()
    await expect(chat.page.locator("#sign-in")).to_be_visible()
    cookies = await chat.page.context.cookies()
    assert not [c for c in cookies if c["name"] == "chatapp_token"]


async def test_no_url_the_page_opens_carries_a_token(ws_url, http_url, open_chat, monkeypatch):
    """Sockets, scrollback, search and guest renewals: no address has ``token=`` in it."""
    monkeypatch.setattr(auth, "GUEST_TOKEN_TTL", 3)
    await seed(ws_url, [f"older {i}" for i in range(1, 121)])
    opened: list[str] = []

    async def watch(page: Page) -> None:
        page.on("request", lambda request: opened.append(request.url))
        page.on("websocket", lambda socket: opened.append(socket.url))

    chat = await open_chat(f"{http_url}/", "Gus", prepare=watch)
    await expect(chat.items.last).to_contain_text("older 120")
    await chat.page.evaluate(_SCROLL_TO_TOP_JS)  # an older page over HTTP
    await chat.page.wait_for_function(_FIRST_SEQ_BELOW_JS, arg=71)
    await chat.page.locator("#search").fill("older 7")
    await expect(chat.page.locator("#search-status")).to_contain_text("for “older 7”")
    await chat.page.wait_for_event("websocket")  # the token ran out: renewed, reconnected
    await chat.online()
    await chat.send("after the renewal")
    await expect(chat.item("after the renewal")).to_have_attribute("data-status", "sent")

    assert any("/ws?" in url for url in opened) and any("before=" in url for url in opened)
    assert any("/api/guest" in url for url in opened)
    assert [url for url in opened if "token=" in url] == []


# --- rooms: the directory, links to messages ----------------------------------------------


async def test_the_directory_lists_rooms_by_activity_and_joins_one(ws_url, http_url, open_chat):
    """Browse shows the rooms with recent activity first, and who is connected; a click joins."""
    await seed(ws_url, ["alpha news"], room="alpha")
    await seed(ws_url, ["beta news"], room="beta")
    chat = await open_chat(f"{http_url}/", "Reader")
    await chat.page.get_by_role("button", name="Browse all rooms").click()
    directory = chat.page.locator("#directory")
    await expect(directory).to_be_visible()
    rooms = directory.locator(".directory-room")
    await expect(rooms.locator(".name")).to_have_text(["#beta", "#alpha", "#general"])
    await expect(rooms.locator(".activity")).to_have_text(
        [re.compile("last message"), re.compile("last message"), "no messages yet"]
    )
    await expect(rooms.locator(".members")).to_have_text(
        ["0 connected", "0 connected", "1 connected"]
    )

    await rooms.filter(has_text="#alpha").click()
    await expect(directory).to_be_hidden()
    await expect(chat.page.locator("#room-title")).to_have_text("#alpha")
    await chat.wait_for_texts(["alpha news"])
    await expect(chat.page.locator('button.room[data-room="alpha"]')).to_be_visible()


async def test_a_link_to_a_message_opens_the_room_there(ws_url, http_url, open_chat):
    """ "Copy link" gives /#room/seq; opening it pages back to that message and lights it."""
    await seed(ws_url, [f"entry {i}" for i in range(1, 151)])
    alice = await open_chat(
        f"{http_url}/", "Alice", permissions=["clipboard-read", "clipboard-write"]
    )
    newest = alice.message(150)
    await expect(newest).to_be_visible()
    await newest.hover()
    await newest.get_by_role("button", name="Copy link to message").click()
    await expect(alice.page.locator("#notice")).to_have_text("Link to the message copied.")
    assert await alice.page.evaluate("() => navigator.clipboard.readText()") == (
        f"{http_url}/#general/150"
    )

    bob = await open_chat(f"{http_url}/#general/12", "Bob", viewport={"width": 900, "height": 600})
    found = bob.message(12)
    await expect(found).to_be_in_viewport()
    await expect(found).to_have_class(_FOUND)
    await expect(found).to_be_focused()
    assert await bob.page_scroll_top() == 0
    await bob.page.evaluate("() => { location.hash = '#general/140'; }")
    await expect(bob.message(140)).to_have_class(_FOUND)


# --- mentions and notifications ------------------------------------------------------------

_HIDE_TAB_JS = """(hidden) => {
  Object.defineProperty(document, "visibilityState",
                        {configurable: true, get: () => (hidden ? "hidden" : "visible")});
  document.dispatchEvent(new Event("visibilitychange"));
}"""


async def notified(chat: ChatPage) -> list[dict[str, str]]:
    shown: list[dict[str, str]] = await chat.page.evaluate("() => window.notified")
    return shown


async def test_mentions_are_lit_and_notified_unless_the_room_is_muted(http_url, open_chat):
    """A mention is highlighted and notified; other messages only while the tab is hidden."""

    async def spy(page: Page) -> None:
        await page.add_init_script(NOTIFICATION_SPY)

    alice = await open_chat(f"{http_url}/", "Alice", prepare=spy, permissions=["notifications"])
    await expect(alice.page.locator("#alerts-on")).to_be_hidden()
    await expect(alice.page.locator("#alerts-state")).to_contain_text("On for mentions")
    bob = await open_chat(f"{http_url}/", "Bob")

    await bob.send("@alice can you look?")
    await alice.wait_for_texts(["@alice can you look?"])
    bob_tag = await alice.item("can you look").locator(".guest-tag").text_content()
    await expect(alice.item("can you look").locator(".mention.me")).to_have_text("@alice")
    await expect(bob.item("can you look").locator(".mention")).not_to_have_class(
        re.compile(r"\bme\b")
    )
    await bob.send("nothing for Alice here")
    await alice.wait_for_texts(["@alice can you look?", "nothing for Alice here"])
    [note] = await notified(alice)
    assert note["body"] == "@alice can you look?"
    assert note["title"] == f"Bob ({bob_tag}) in #general"

    await alice.page.evaluate(_HIDE_TAB_JS, True)
    await bob.send("while you are away")
    await alice.wait_for_texts(
        ["@alice can you look?", "nothing for Alice here", "while you are away"]
    )
    assert [n["body"] for n in await notified(alice)][-1] == "while you are away"

    await alice.page.get_by_label("Mute #general").check()
    await bob.send("@alice muted now")
    await expect(alice.item("muted now").locator(".mention.me")).to_have_count(1)
    assert len(await notified(alice)) == 2
    await alice.page.reload()  # the mute is remembered
    await alice.online()
    await expect(alice.page.get_by_label("Mute #general")).to_be_checked()


async def test_notification_permission_is_asked_only_from_a_click(http_url, open_chat):
    """Loading the page never asks; the sidebar's button does, once clicked."""

    async def spy(page: Page) -> None:
        await page.add_init_script(NOTIFICATION_SPY)

    chat = await open_chat(f"{http_url}/", "Kim", prepare=spy)
    enable = chat.page.get_by_role("button", name="Turn on desktop notifications")
    await expect(enable).to_be_visible()
    assert await chat.page.evaluate("() => window.permissionAsked") == 0
    await enable.click()
    await chat.page.wait_for_function("() => window.permissionAsked === 1")


# --- the server's limits ---------------------------------------------------------------------


async def test_the_page_paces_its_frames_to_the_servers_rate_limit(serve, open_chat):
    """With --rate-limit 5, twenty quick messages (and their typing notices) all go through
    without one rate_limited error: the page paces itself by the published rate."""
    port = await serve(rate_limit=5)
    received: list[str] = []

    async def watch(page: Page) -> None:
        page.on("websocket", lambda ws: ws.on("framereceived", lambda f: received.append(f)))

    chat = await open_chat(f"http://127.0.0.1:{port}/", "Quick", prepare=watch)
    texts = [f"quick {i}" for i in range(20)]
    for text in texts:
        await chat.send(text)
    await chat.wait_for_texts(texts, timeout=RECONNECT_WAIT_MS)
    await expect(chat.item("quick 19")).to_have_attribute("data-status", "sent")
    assert not [frame for frame in received if "rate_limited" in str(frame)]


async def test_the_page_follows_the_published_room_pattern_and_text_limit(http_url, open_chat):
    """Room names and the length counter come from GET /api/auth, not from the page."""

    async def stricter(page: Page) -> None:
        async def change(route: Route) -> None:
            response = await route.fetch()
            body = await response.json()
            body["limits"].update(room_pattern="[a-z]{1,7}", max_text_chars=10)
            await route.fulfill(response=response, json=body)

        await page.route("**/api/auth", change)

    chat = await open_chat(f"{http_url}/", "Lee", prepare=stricter)
    page = chat.page
    await expect(page.locator("#counter")).to_have_text("0 / 10")
    await page.fill("#text", "eleven char")
    await expect(page.locator("#counter")).to_have_text("11 / 10: 1 too many")
    await expect(page.locator("#send")).to_be_disabled()

    await page.fill("#join-room", "far-too-long")  # the server itself would take it
    await page.press("#join-room", "Enter")
    message = await page.eval_on_selector("#join-room", "(field) => field.validationMessage")
    assert message == "“far-too-long” is not a room name this server accepts."
    await expect(page.locator("button.room")).to_have_count(1)
    await chat.join("short")
