// The open room's messages. Every user-supplied string goes in as text
// (textContent, or text nodes beside links built here), never as HTML.
// Consecutive messages by one author are grouped under one header; older
// pages are added above without moving what the user is looking at; when
// the user has scrolled up, new messages wait behind a "jump" button.

const GROUP_GAP_MS = 5 * 60 * 1000; // a pause this long starts a new group
const NEAR_TOP_PX = 600; // start fetching older messages this close to the top
const AT_BOTTOM_PX = 48;
const FOUND_MS = 3000; // how long a message reached from search stays highlighted
const URL_PATTERN = /\bhttps?:\/\/[^\s<>"']+[^\s<>"'.,;:!?)\]]/g;

export class MessageView {
  /**
   * @param {object} hooks
   *   me(): {id, name}; statusOf(message): "pending" | "sent" | ""
   *   nearTop(): older messages are wanted; atBottom(): the user sees the newest
   *   unread(): how many new messages are below; retry(clientId), discard(clientId)
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
      marker.scrollIntoView({ block: "start" });
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
    node.scrollIntoView({ block: "center" });
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
      if (entry.state === "failed") li.append(this.failure(entry));
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
      const retry = button("Retry", "link-button");
      this.start.replaceChildren("Could not load older messages. ", retry);
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
    if (this.scroller.scrollTop < NEAR_TOP_PX) this.hooks.nearTop(false);
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
    const li = element("li", "message");
    const when = new Date(message.ts);
    const newDay = !prev || dayKey(new Date(prev.ts)) !== dayKey(when);
    const marked = message.seq !== undefined && message.seq === this.room?.marker;
    const grouped = Boolean(prev) && !newDay && !marked && prev.user.id === message.user.id
      && when - new Date(prev.ts) < GROUP_GAP_MS;
    if (message.seq !== undefined) {
      li.dataset.seq = String(message.seq);
      this.nodes.set(message.seq, li);
    }
    li.dataset.user = message.user.id;
    if (message.client_id) li.dataset.clientId = message.client_id;
    if (status) li.dataset.status = status;
    if (message.user.id === this.hooks.me()?.id) li.classList.add("own");
    if (marked) li.append(divider("New messages", "new-marker"));
    if (newDay) li.append(divider(dayLabel(when), "day"));
    const time = element("time", "time", timeLabel(when));
    time.dateTime = when.toISOString();
    time.title = when.toLocaleString();
    if (grouped) {
      li.classList.add("grouped");
      // Screen readers still hear who wrote each message of a group.
      li.append(time, element("span", "visually-hidden", `${message.user.name}: `));
    } else {
      li.append(avatar(message.user), header(message.user, time));
    }
    const body = element("div", "body");
    const text = element("p", "text");
    text.dir = "auto";
    text.append(...linkified(message.text));
    body.append(text);
    if (status && status !== "failed") body.append(statusLabel(status)); // failures get a box
    li.append(body);
    return li;
  }

  failure(entry) {
    const box = element("div", "failure");
    box.append(element("span", "reason", `Not sent: ${entry.error}`));
    if (entry.retryable) {
      const retry = button("Retry", "link-button retry");
      retry.addEventListener("click", () => this.hooks.retry(entry.clientId));
      box.append(retry);
    }
    const discard = button("Discard", "link-button discard");
    discard.addEventListener("click", () => this.hooks.discard(entry.clientId));
    box.append(discard);
    return box;
  }
}

export function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function button(label, className) {
  const node = element("button", className, label);
  node.type = "button";
  return node;
}

/** A coloured circle with the author's initial; the colour follows the user id. */
export function avatar(user) {
  const node = element("span", "avatar", [...user.name.trim()][0]?.toUpperCase() ?? "?");
  node.setAttribute("aria-hidden", "true");
  let hash = 0;
  for (const char of user.id) hash = (hash * 31 + char.codePointAt(0)) % 360;
  node.style.setProperty("--hue", String(hash));
  return node;
}

function header(user, time) {
  const node = element("div", "meta");
  node.append(element("span", "author", user.name), " ", time);
  return node;
}

function divider(label, className) {
  const node = element("div", `divider ${className}`);
  node.setAttribute("role", "separator");
  node.append(element("span", "", label));
  return node;
}

function statusLabel(status) {
  const node = element("span", "status");
  node.dataset.status = status;
  if (status === "sent") {
    node.append(element("span", "", "✓"), element("span", "visually-hidden", "Sent"));
    node.firstChild.setAttribute("aria-hidden", "true");
    node.title = "Sent";
  } else {
    node.textContent = "Sending…";
  }
  return node;
}

/** Text with http(s) links turned into anchors, built node by node (no HTML parsing). */
function linkified(text) {
  const parts = [];
  let last = 0;
  for (const match of text.matchAll(URL_PATTERN)) {
    parts.push(text.slice(last, match.index));
    const link = element("a", "", match[0]);
    link.href = match[0];
    link.target = "_blank";
    link.rel = "noopener noreferrer nofollow";
    parts.push(link);
    last = match.index + match[0].length;
  }
  parts.push(text.slice(last));
  return parts.filter((part) => part !== "");
}

function dayKey(date) {
  return `${date.getFullYear()}-${date.getMonth()}-${date.getDate()}`;
}

function dayLabel(date) {
  const today = new Date();
  const yesterday = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 1);
  if (dayKey(date) === dayKey(today)) return "Today";
  if (dayKey(date) === dayKey(yesterday)) return "Yesterday";
  const options = { weekday: "long", month: "long", day: "numeric" };
  if (date.getFullYear() !== today.getFullYear()) options.year = "numeric";
  return date.toLocaleDateString(undefined, options);
}

function timeLabel(date) {
  return date.toLocaleTimeString([], { hour: "numeric", minute: "2-digit" });
}
