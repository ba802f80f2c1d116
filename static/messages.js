// The open room's messages (each built by message-item.js). Older pages are
// added above without moving what the user is looking at; when the user has
// scrolled up, new messages wait behind a "jump" button. Only the conversation
// scrolls, never the page around it.

import { button, scrollWithin } from "./dom.js";
import { failureBox, messageItem } from "./message-item.js";

const NEAR_TOP_PX = 600; // start fetching older messages this close to the top
const AT_BOTTOM_PX = 48;
const FOUND_MS = 3000; // how long a message reached from search or a link stays highlighted

export class MessageView {
  /**
   * @param {object} hooks
   *   me(): {id, name}; statusOf(message): "pending" | "sent" | ""
   *   nearTop(retry): older messages are wanted; atBottom(): the user sees the newest
   *   unread(): how many new messages are below; retry(clientId), discard(clientId)
   *   copyLink(seq): the user asked for a link to a message of the open room
   */
  constructor(hooks) {
    this.hooks = hooks;
    this.scroller = document.getElementById("scroller");
    this.list = document.getElementById("messages");
    this.outbox = document.getElementById("outbox");
    this.start = document.getElementById("history-start");
    this.jump = document.getElementById("jump");
    this.room = null;
    this.nodes = new Map(); // seq -> <li>
    this.following = true; // at the bottom: new messages scroll into view
    this.scroller.addEventListener("scroll", () => this.scrolled(), { passive: true });
    this.jump.addEventListener("click", () => this.toBottom());
    this.start.addEventListener("click", (event) => {
      if (event.target.closest("button")) this.hooks.nearTop(true);
    });
    // Keep the newest message in view when the layout changes (phone keyboard, resize).
    new ResizeObserver(() => this.following && this.stick()).observe(this.scroller);
  }

  /** Render a room from scratch: at its "New messages" line if any, else at the bottom. */
  show(room) {
    this.room = room;
    this.nodes.clear();
    this.list.setAttribute("aria-label", `Messages in #${room.name}`);
    const items = room.messages.map((m, i) => this.item(m, room.messages[i - 1]));
    this.list.replaceChildren(...items);
    this.renderStart();
    this.renderOutbox([]);
    const marker = room.marker && this.nodes.get(room.marker);
    if (marker) {
      scrollWithin(this.scroller, marker);
      this.following = this.isAtBottom();
      if (this.following) this.hooks.atBottom(); // everything new is in sight
    } else {
      this.toBottom();
    }
    this.updateJump();
    this.wantOlder();
  }

  /** Newer messages were appended to the room. */
  added(messages) {
    const wasFollowing = this.following;
    let prev = this.room.find(messages[0].seq - 1);
    for (const message of messages) {
      this.list.append(this.item(message, prev));
      prev = message;
    }
    if (wasFollowing) this.stick();
    this.updateJump();
  }

  /** Older messages were put before the first one; what the user looks at must not move. */
  prepended(messages) {
    // Anchor on the text of the topmost visible message: it stays put even when
    // its own header goes away because it now continues a group from above.
    const anchor = this.topVisible();
    const before = anchor && this.textTop(anchor);
    if (messages.length) {
      const items = messages.map((m, i) => this.item(m, messages[i - 1]));
      this.list.prepend(...items);
      this.refresh(messages[messages.length - 1].seq + 1); // it may join the group above now
    }
    this.renderStart();
    if (anchor) this.scroller.scrollTop += this.textTop(anchor) - before;
  }

  /** Bring a loaded message to the middle of the view, highlighted for a moment and focused. */
  reveal(seq) {
    const node = this.nodes.get(seq);
    scrollWithin(this.scroller, node, "center");
    this.following = this.isAtBottom();
    this.updateJump();
    node.classList.add("found");
    setTimeout(() => node.classList.remove("found"), FOUND_MS);
    node.tabIndex = -1; // focusable from here, so screen readers land on it
    node.focus({ preventScroll: true });
  }

  /** The seq of the first message whose bottom is inside the viewport. */
  topVisible() {
    const top = this.scroller.getBoundingClientRect().top;
    for (const node of this.list.children) {
      if (node.getBoundingClientRect().bottom > top) return Number(node.dataset.seq);
    }
    return 0;
  }

  textTop(seq) {
    return this.nodes.get(seq).querySelector(".text").getBoundingClientRect().top;
  }

  /** Re-render one message (its status, grouping or marker changed). */
  refresh(seq) {
    const old = this.nodes.get(seq);
    const message = this.room?.find(seq);
    if (old && message) old.replaceWith(this.item(message, this.room.find(seq - 1)));
  }

  /** Messages sent from here that have no seq yet: pending or failed, below the rest. */
  renderOutbox(entries) {
    const me = this.hooks.me();
    let prev = this.room?.messages[this.room.messages.length - 1];
    const items = entries.map((entry) => {
      const message = { user: me, ts: new Date(entry.createdAt).toISOString(), text: entry.text };
      const li = this.item(message, prev, entry.state);
      li.dataset.clientId = entry.clientId;
      if (entry.state === "failed") li.append(failureBox(entry, this.hooks));
      prev = message;
      return li;
    });
    this.outbox.replaceChildren(...items);
    if (this.following) this.stick();
  }

  /** The line above the first message: loading, retry, or the beginning of the room. */
  renderStart() {
    const room = this.room;
    let state = "more";
    if (!room?.synced) state = "loading";
    else if (room.loadingOlder) state = "loading";
    else if (room.olderFailed) state = "error";
    else if (!room.hasOlder) state = "beginning";
    this.start.dataset.state = state;
    if (state === "beginning") {
      this.start.textContent = `This is the beginning of #${room.name}.`;
    } else if (state === "error") {
      this.start.replaceChildren("Could not load older messages. ", button("Retry", "link-button"));
    } else if (state === "loading") {
      this.start.textContent = "Loading messages…";
    } else {
      this.start.textContent = "Scroll up for older messages";
    }
  }

  scrolled() {
    this.following = this.isAtBottom();
    if (this.following) this.hooks.atBottom();
    this.updateJump();
    this.wantOlder();
  }

  /** Ask for older messages while the top of the list is in (or near) sight. */
  wantOlder() {
    if (this.scroller.scrollTop < NEAR_TOP_PX) this.hooks.nearTop(false);
  }

  isAtBottom() {
    const s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight <= AT_BOTTOM_PX;
  }

  stick() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
  }

  toBottom() {
    this.stick();
    this.following = true;
    this.updateJump();
    this.hooks.atBottom();
  }

  updateJump() {
    const count = this.hooks.unread();
    this.jump.hidden = this.following;
    this.jump.textContent = count
      ? `↓ ${count} new message${count === 1 ? "" : "s"}`
      : "↓ Jump to latest";
  }

  item(message, prev, status = this.hooks.statusOf(message)) {
    const li = messageItem(message, prev, {
      me: this.hooks.me(),
      marker: this.room?.marker,
      status,
      copyLink: this.hooks.copyLink,
    });
    if (message.seq !== undefined) this.nodes.set(message.seq, li);
    return li;
  }
}
