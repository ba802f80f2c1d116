"""Driving the browser page in tests: Playwright's async API on Debian's Chromium.

The async API runs in the test's own event loop, beside the Tornado server
under test (the sync API would leave a loop marked running and break every
asyncio test after it). ``ChatPage`` is one user's tab.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import connect_json
from factories import TICK
from playwright.async_api import Browser, BrowserContext, Locator, Page, Playwright, expect
from tornado.httpclient import AsyncHTTPClient

CHROMIUM = Path("/usr/bin/chromium")
#: Flags checked on these machines (shared TESTING.md); Playwright makes the profile.
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Upper bound of any wait for the page; a healthy run needs a fraction of it.
WAIT_MS = round(150 * TICK * 1000)
#: Reconnecting after a restart includes a randomised backoff of a few seconds.
RECONNECT_WAIT_MS = round(600 * TICK * 1000)

expect.set_options(timeout=WAIT_MS)

#: Every message on the page, with the author of its group, as plain data.
_MESSAGES_JS = """() => {
  let author = null;
  return [...document.querySelectorAll("#messages > li.message")].map((li) => {
    const header = li.querySelector(".author");
    if (header) author = header.textContent;
    const time = li.querySelector("time");
    return {
      seq: Number(li.dataset.seq),
      author,
      user: li.dataset.user,
      text: li.querySelector(".text").textContent,
      status: li.dataset.status ?? "",
      client_id: li.dataset.clientId ?? "",
      grouped: li.classList.contains("grouped"),
      time: time.textContent,
      datetime: time.dateTime,
    };
  });
}"""


#: An init script that replaces the Notification API with a recorder: what the page shows
#: lands in ``window.notified``, and ``window.permissionAsked`` counts permission requests.
NOTIFICATION_SPY = """(() => {
  const Real = window.Notification;
  window.notified = [];
  window.permissionAsked = 0;
  class Recorded extends EventTarget {
    constructor(title, options = {}) {
      super();
      window.notified.push({ title, body: options.body ?? "" });
    }
    close() {}
    static get permission() { return Real.permission; }
    static requestPermission() {
      window.permissionAsked += 1;
      return Real.requestPermission();
    }
  }
  window.Notification = Recorded;
})();"""


def skip_without_chromium() -> None:
    """Skip when Chromium is not installed, except in CI, where it must be."""
    if not CHROMIUM.exists() and not os.environ.get("CI"):
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")


async def launch_chromium(playwright: Playwright) -> Browser:
    return await playwright.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS)


class ChatPage:
    """One user's browser tab on the chat page, in a context of its own."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[Exception] = []
        page.on("pageerror", self._record_error)

    def _record_error(self, error: Exception) -> None:
        self.errors.append(error)

    @classmethod
    async def open(
        cls,
        browser: Browser,
        url: str,
        name: str | None = None,
        prepare: Callable[[Page], Awaitable[None]] | None = None,
        **context: Any,
    ) -> ChatPage:
        """Open ``url`` in a fresh browser context and, given a name, sign in as that guest.

        ``prepare`` runs before the page loads (routes, event listeners).
        """
        options = {"locale": "en-US", "viewport": {"width": 1100, "height": 720}, **context}
        return await cls.open_tab(await browser.new_context(**options), url, name, prepare)

    @classmethod
    async def open_tab(
        cls,
        context: BrowserContext,
        url: str,
        name: str | None = None,
        prepare: Callable[[Page], Awaitable[None]] | None = None,
    ) -> ChatPage:
        """Open ``url`` in another tab of ``context`` (same cookies and storage: same user)."""
        chat = cls(await context.new_page())
        if prepare is not None:
            await prepare(chat.page)
        await chat.page.goto(url)
        if name is not None:
            await chat.sign_in_as_guest(name)
        return chat

    async def sign_in_as_guest(self, name: str) -> None:
        await self.page.fill("#guest-name", name)
        await self.page.click("#sign-in-button")
        await self.online()

    async def sign_in_with_token(self, token: str) -> None:
        await self.page.fill("#token", token)
        await self.page.click("#sign-in-button")

    async def online(self, timeout: float = WAIT_MS) -> None:
        await expect(self.page.locator("#connection")).to_have_attribute(
            "data-state", "online", timeout=timeout
        )

    async def join(self, room: str) -> None:
        """Join (or create) a room through the sidebar's form; it opens."""
        await self.page.fill("#join-room", room)
        await self.page.press("#join-room", "Enter")
        await expect(self.page.locator("#room-title")).to_have_text(f"#{room}")

    async def open_room(self, room: str) -> None:
        """Switch to a room already in the sidebar."""
        await self.page.locator(f'button.room[data-room="{room}"]').click()
        await expect(self.page.locator("#room-title")).to_have_text(f"#{room}")

    def unread_badge(self, room: str) -> Locator:
        """The unread count of a room in the sidebar (hidden when there is none)."""
        return self.page.locator(f'button.room[data-room="{room}"] .badge')

    def message(self, seq: int) -> Locator:
        return self.page.locator(f'#messages > li[data-seq="{seq}"]')

    async def page_scroll_top(self) -> float:
        """How far the document itself is scrolled (only the conversation should scroll)."""
        top: float = await self.page.evaluate("() => document.scrollingElement.scrollTop")
        return top

    async def send(self, text: str) -> None:
        """Type into the composer and press Enter."""
        await self.page.fill("#text", text)
        await self.page.press("#text", "Enter")

    @property
    def items(self) -> Locator:
        return self.page.locator("#messages > li.message")

    def item(self, text: str) -> Locator:
        """The message whose text contains ``text``."""
        return self.items.filter(has=self.page.locator(".text", has_text=text))

    async def messages(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self.page.evaluate(_MESSAGES_JS)
        return result

    async def texts(self) -> list[str]:
        return [m["text"] for m in await self.messages()]

    async def wait_for_texts(self, expected: list[str], timeout: float = WAIT_MS) -> None:
        """Wait until the page shows exactly these messages, in this order."""
        await self.page.wait_for_function(
            """(expected) => JSON.stringify(
                 [...document.querySelectorAll("#messages > li.message .text")]
                   .map((node) => node.textContent)) === JSON.stringify(expected)""",
            arg=expected,
            timeout=timeout,
        )


async def seed(ws_url: str, texts: list[str], room: str = "general") -> dict[str, Any]:
    """Post messages as one JSON client (pipelined), wait for every ack; its hello."""
    client, hello, _ = await connect_json(ws_url, f"?room={room}")
    for index, text in enumerate(texts):
        frame = {"type": "message", "room": room, "text": text, "client_id": f"seed-{index}"}
        await client.send(frame)
    acks = 0
    while acks < len(texts):
        acks += (await client.recv())["type"] == "ack"
    client.close()
    return hello


async def stored_texts(http_url: str, room: str = "general", token: str | None = None) -> list[str]:
    """Every stored message text of a room, oldest first, read page by page over HTTP."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    texts: list[str] = []
    before = ""
    while True:
        response = await AsyncHTTPClient().fetch(
            f"{http_url}/api/rooms/{room}/messages?limit=200{before}", headers=headers
        )
        page = json.loads(response.body)
        texts[:0] = [m["text"] for m in page["messages"]]
        if not page["has_more"]:
            return texts
        before = f"&before={page['messages'][0]['seq']}"
