// chatapp in the browser. This module speaks the JSON protocol over the
// WebSocket that connection.js keeps open, and wires the parts together:
// session.js (sign-in), rooms.js (each room's messages, gapless by seq),
// outbox.js (sends that survive drops), messages.js, sidebar.js,
// composer.js and search.js (views).

import { Composer } from "./composer.js";
import { CLOSE_TOKEN_EXPIRED, Connection } from "./connection.js";
import { MessageView, element } from "./messages.js";
import { Outbox } from "./outbox.js";
import { ROOM_PATTERN, Rooms } from "./rooms.js";
import { Search } from "./search.js";
import { Session } from "./session.js";
import { Sidebar } from "./sidebar.js";
import { signIn } from "./signin.js";

const PAGE_SIZE = 50;
const GAP_PAGE_SIZE = 200; // the server's largest page
const GAP_REFILL_LIMIT = 1000; // missed more than this: show the newest, the rest by scrolling
const SEARCH_LIMIT = 50;
const HIT_CONTEXT = 20; // messages loaded above a search hit, so that it is not at the very top
const TYPING_SHOWN_MS = 5000;
const ACK_TIMEOUT_MS = 15000; // no ack this long on an open socket: it is probably dead
const RATE_LIMITED_RETRY_MS = 1500;
const RETRY_LATER_MS = 3000;
const NOTICE_MS = 8000;
const ANNOUNCEMENTS_KEPT = 5;
const RETRYABLE = new Set(["unavailable", "not_joined", "rate_limited"]);

const $ = (id) => document.getElementById(id);
const session = new Session();
let me = null; // {id, name}
let rooms = null; // Rooms, once signed in
let outbox = null; // Outbox, once signed in
let urlRoom = ""; // the room the current connection joined through its URL
let jumps = 0; // counts the search hits chosen: a later choice ends the way to an earlier one
let awaitedHit = null; // a chosen hit whose room waits for its first history

const sidebar = new Sidebar({
  open: (name) => openRoom(name, true),
  leave: leaveRoom,
  reconnect: () => connection.reconnectNow(),
});
const view = new MessageView({
  me: () => me,
  statusOf: (message) => (message.user.id === me?.id ? outbox.statusOf(message) : ""),
  nearTop: (retry) => loadOlder(retry),
  atBottom: () => readActive(),
  unread: () => rooms?.active?.unread(me.id).count ?? 0,
  retry: retrySend,
  discard: discardSend,
});
const composer = new Composer({ send: sendMessage, typing: sendTyping });
const search = new Search({ find: findMessages, choose: showHit });
const connection = new Connection({
  url: socketUrl,
  opened: () => {},
  frame: onFrame,
  dropped,
  decide,
  status: (state, retryAt) => sidebar.status(state, retryAt),
});

// --- the connection ----------------------------------------------------------

function socketUrl() {
  const url = new URL("/ws", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  const room = rooms.active;
  urlRoom = room.name;
  url.searchParams.set("room", room.name);
  if (room.synced) url.searchParams.set("since", String(room.top)); // resume: exactly what was missed
  url.searchParams.set("limit", String(PAGE_SIZE));
  if (session.token) url.searchParams.set("token", session.token);
  return url.href;
}

function onFrame(frame) {
  switch (frame.type) {
    case "hello": return greeted(frame);
    case "history": return received(frame.room, frame.messages, false, frame.has_more);
    case "message": return received(frame.room, [frame], true);
    case "ack": return acknowledged(frame);
    case "presence": return presenceChanged(frame);
    case "typing": return typingSeen(frame);
    case "error": return refused(frame);
    default: return undefined; // a newer server's frame this page does not know
  }
}

function greeted(frame) {
  if (frame.user.id !== me.id) {
    location.reload(); // signed in as someone else elsewhere: this page's state is not theirs
    return;
  }
  me = frame.user;
  $("me").textContent = me.name;
  // The URL joined one room; join the others, resuming each where it stopped.
  for (const room of rooms.list()) {
    if (room.name === urlRoom) continue;
    const join = { type: "join", room: room.name, limit: PAGE_SIZE };
    if (room.synced) join.since = room.top;
    connection.send(join);
  }
  for (const entry of outbox.pending()) transmit(entry);
}

function dropped() {
  for (const entry of outbox.pending()) entry.sentAt = 0; // resent, and timed, after the reconnect
  for (const room of rooms.list()) {
    room.presence = null;
    room.typing.clear();
  }
  sidebar.presence(rooms.active, me);
  sidebar.typing(rooms.active, me);
}

/** After a close: reconnect now, later, or never (the connection asks before retrying). */
async function decide({ code, opened }) {
  const verdict = code === CLOSE_TOKEN_EXPIRED ? "auth" : opened ? "retry" : await probe();
  if (verdict === "auth") return (await reauthenticate()) ? "now" : "retry";
  if (verdict === "forbidden") {
    notify(`You have no access to #${urlRoom}.`);
    if (rooms.list().length < 2) return "stop";
    leaveRoom(urlRoom);
    return "now";
  }
  return "retry";
}

/** A refused handshake says nothing to the page; ask the HTTP API why. */
async function probe() {
  try {
    const response = await fetch(`/api/rooms/${encodeURIComponent(urlRoom)}/messages?limit=1`, {
      headers: session.headers(),
      cache: "no-store",
    });
    if (response.status === 401) return "auth";
    if (response.status === 403) return "forbidden";
  } catch {
    // the server is unreachable: retrying is right
  }
  return "retry";
}

let reauthenticating = null; // one renewal or dialog at a time, however many ask

/** Get a fresh token: silently for guests, through the dialog otherwise. */
function reauthenticate() {
  reauthenticating ??= renewOrAsk().finally(() => {
    reauthenticating = null;
  });
  return reauthenticating;
}

async function renewOrAsk() {
  try {
    if (await session.renew()) return true;
  } catch {
    return false; // offline: the next attempt tries again
  }
  sidebar.status("signed-out");
  await signIn(session, "Your session has expired. Please sign in again to continue.");
  if (session.user.id !== me.id) location.reload();
  session.scheduleRenewal();
  return true;
}

// --- messages in -------------------------------------------------------------

function received(name, messages, live, hasMore = false) {
  const room = rooms.get(name);
  if (!room) return; // left meanwhile
  const first = !room.synced;
  const shown = room.addNewer(messages);
  if (first) {
    room.hasOlder = hasMore;
    if (room.lastRead === null) room.markRead(); // a first visit starts with nothing unread
    room.marker = room.firstUnread(me.id);
  }
  for (const message of messages) {
    const entry = message.user.id === me.id && outbox.get(message.client_id);
    if (!entry) continue;
    // History holds only stored messages: that send is done. A live echo waits for its ack.
    if (live) entry.seq = message.seq;
    else outbox.confirm(message.client_id);
  }
  display(room, shown, first, live);
  if (room.held.size) fillGap(room);
  if (first && awaitedHit?.room === name && room === rooms.active) showHit(awaitedHit);
}

function display(room, shown, first = false, live = false) {
  for (const message of shown) room.typing.delete(message.user.id);
  if (room === rooms.active) {
    if (first) {
      view.show(room);
    } else if (shown.length) {
      const reading = view.following && document.visibilityState === "visible";
      if (!reading && !room.marker) room.marker = shown.find((m) => m.user.id !== me.id)?.seq ?? 0;
      view.added(shown);
    }
    view.renderOutbox(outbox.waiting(room.name));
    sidebar.typing(room, me);
    if (view.following) readActive();
    if (live) announce(shown);
  }
  refreshRooms();
}

/** Fetch what is missing between the run and the held messages, oldest first. */
async function fillGap(room) {
  if (room.filling) return;
  room.filling = true;
  try {
    for (let gap = room.gap(); gap && rooms.get(room.name) === room; gap = room.gap()) {
      let shown = [];
      if (gap.before - gap.after - 1 <= GAP_REFILL_LIMIT) {
        const before = Math.min(gap.before, gap.after + 1 + GAP_PAGE_SIZE);
        const page = await fetchPage(room.name, before, before - gap.after - 1);
        shown = room.addNewer(page.messages);
      }
      if (!shown.length) {
        room.restartFromHeld();
        display(room, [], true);
        break;
      }
      display(room, shown);
    }
  } catch {
    setTimeout(() => fillGap(room), RETRY_LATER_MS);
  } finally {
    room.filling = false;
  }
}

/**
 * One older page above the first message, while the user scrolls up or on the way to a
 * search hit. Resolves when it is shown (at once if there is nothing to load); while a
 * page is on its way, asking again waits for that one.
 */
function loadOlder(retry, limit = PAGE_SIZE) {
  const room = rooms?.active;
  if (!room?.synced || !room.hasOlder || (room.olderFailed && !retry)) return Promise.resolve();
  if (!room.loadingOlder) {
    room.olderFailed = false;
    room.loadingOlder = addOlderPage(room, limit); // addOlderPage clears it before showing
    view.renderStart();
  }
  return room.loadingOlder;
}

async function addOlderPage(room, limit) {
  let added = [];
  try {
    const page = await fetchPage(room.name, room.oldest, limit);
    added = room.addOlder(page.messages, page.has_more);
  } catch (error) {
    room.olderFailed = !(error.status === 401 && (await reauthenticate()));
  } finally {
    room.loadingOlder = null;
  }
  if (room !== rooms.active) return;
  view.prepended(added);
  refreshRooms();
  view.wantOlder(); // a short page on a tall screen: keep going
}

function fetchPage(name, before, limit) {
  const query = new URLSearchParams({ before: String(before), limit: String(limit) });
  return getJson(`/api/rooms/${encodeURIComponent(name)}/messages?${query}`);
}

async function getJson(url) {
  const response = await fetch(url, { headers: session.headers(), cache: "no-store" });
  if (!response.ok) throw Object.assign(new Error(`HTTP ${response.status}`), { status: response.status });
  return response.json();
}

function acknowledged(frame) {
  const entry = outbox.confirm(frame.client_id);
  const room = rooms.get(frame.room);
  if (!room) return;
  if (entry && room.synced && frame.seq > room.top && !room.held.has(frame.seq)) {
    // The echo never reached this page (dropped with a connection): the ack says enough.
    const message = {
      type: "message", room: room.name, seq: frame.seq, id: frame.id, user: me,
      text: entry.text, ts: new Date(entry.createdAt).toISOString(), client_id: frame.client_id,
    };
    received(room.name, [message], false);
  }
  if (room === rooms.active) {
    view.refresh(frame.seq);
    view.renderOutbox(outbox.waiting(room.name));
  }
}

function presenceChanged(frame) {
  const room = rooms.get(frame.room);
  if (!room) return;
  room.presence = { users: frame.users, count: frame.count ?? frame.users.length };
  if (room === rooms.active) sidebar.presence(room, me);
}

function typingSeen(frame) {
  const room = rooms.get(frame.room);
  if (!room || frame.user.id === me.id) return;
  room.typing.set(frame.user.id, { name: frame.user.name, until: Date.now() + TYPING_SHOWN_MS });
  if (room !== rooms.active) return;
  sidebar.typing(room, me);
  setTimeout(() => sidebar.typing(rooms.active, me), TYPING_SHOWN_MS + 100);
}

function refused(frame) {
  const entry = frame.ref ? outbox.get(frame.ref) : null;
  if (!entry) {
    if (frame.code !== "rate_limited") notify(frame.reason); // a dropped typing notice is no news
    return;
  }
  if (frame.code === "rate_limited") {
    setTimeout(() => outbox.get(entry.clientId)?.state === "pending" && transmit(entry), RATE_LIMITED_RETRY_MS);
    return;
  }
  outbox.fail(entry.clientId, frame.reason, RETRYABLE.has(frame.code));
  if (entry.room === rooms.active?.name) view.renderOutbox(outbox.waiting(entry.room));
}

// --- messages out ------------------------------------------------------------

function sendMessage(text) {
  const room = rooms.active;
  const entry = outbox.add(room.name, text);
  if (room.marker) {
    const marker = room.marker;
    room.marker = 0; // replying means the new messages were read
    view.refresh(marker);
  }
  view.renderOutbox(outbox.waiting(room.name));
  view.toBottom();
  transmit(entry);
}

function transmit(entry) {
  const frame = { type: "message", room: entry.room, text: entry.text, client_id: entry.clientId };
  entry.sentAt = connection.send(frame) ? Date.now() : 0; // else it goes out after the reconnect
}

function retrySend(clientId) {
  const entry = outbox.retry(clientId); // same client_id: the server stores it at most once
  if (entry) transmit(entry);
  view.renderOutbox(outbox.waiting(rooms.active.name));
  composer.focus(); // the button that had the focus is gone
}

function discardSend(clientId) {
  outbox.discard(clientId);
  view.renderOutbox(outbox.waiting(rooms.active.name));
  composer.focus();
}

/** Sends that got no ack in time: show them failed, and replace the (probably dead) socket. */
function checkAcks() {
  if (!connection.isOpen || !outbox) return;
  const late = outbox.pending().filter((e) => e.sentAt && Date.now() - e.sentAt > ACK_TIMEOUT_MS);
  if (!late.length) return;
  for (const entry of late) outbox.fail(entry.clientId, "no reply from the server", true);
  view.renderOutbox(outbox.waiting(rooms.active.name));
  connection.restart();
}

function sendTyping() {
  const room = rooms?.active;
  return Boolean(room?.synced) && connection.send({ type: "typing", room: room.name });
}

// --- search ------------------------------------------------------------------

/** The best matches for a query in every room this user may read, as GET /api/search answers. */
async function findMessages(q) {
  const url = `/api/search?${new URLSearchParams({ q, limit: String(SEARCH_LIMIT) })}`;
  try {
    return await getJson(url);
  } catch (error) {
    if (error.status === 401 && (await reauthenticate())) return getJson(url);
    throw error;
  }
}

/** Open a hit's room (joining it if need be), page back to the hit, and show it. */
async function showHit(hit) {
  const jump = ++jumps;
  if (rooms.active?.name !== hit.room) openRoom(hit.room);
  const room = rooms.get(hit.room);
  if (!room) return;
  awaitedHit = room.synced ? null : hit; // received() comes back here with the first history
  if (!room.synced) return;
  const current = () => jump === jumps && rooms.active === room; // else the user moved on
  while (current() && room.oldest > hit.seq && room.hasOlder) {
    await loadOlder(true, Math.min(GAP_PAGE_SIZE, room.oldest - hit.seq + HIT_CONTEXT));
    if (room.olderFailed) break;
  }
  if (!current()) return;
  if (room.find(hit.seq)) view.reveal(hit.seq);
  else if (room.olderFailed) notify("Could not load older messages. Please try again.");
  else notify(`That message is no longer in #${room.name}.`);
}

// --- rooms -------------------------------------------------------------------

function openRoom(name, focusComposer = false) {
  if (!ROOM_PATTERN.test(name)) {
    notify("Room names are 1–64 letters, digits, '_', '-' or '.', not starting with '-' or '.'.");
    return;
  }
  let room = rooms.get(name);
  if (!room) {
    room = rooms.add(name);
    connection.send({ type: "join", room: name, limit: PAGE_SIZE }); // or at the next connect
  }
  if (rooms.active && rooms.active !== room) rooms.active.marker = 0;
  rooms.active = room;
  room.marker = room.synced ? room.firstUnread(me.id) : 0;
  rooms.save();
  if (location.hash !== `#${name}`) history.replaceState(null, "", `#${name}`);
  $("room-title").textContent = `#${name}`;
  composer.setRoom(name);
  view.show(room);
  sidebar.presence(room, me);
  sidebar.typing(room, me);
  refreshRooms();
  toggleDrawer(false);
  if (focusComposer) composer.focus();
}

function leaveRoom(name) {
  if (!rooms.get(name) || rooms.list().length < 2) return;
  connection.send({ type: "leave", room: name });
  for (const entry of outbox.sorted()) if (entry.room === name) outbox.discard(entry.clientId);
  const wasActive = rooms.active?.name === name;
  rooms.remove(name);
  rooms.save();
  if (wasActive) openRoom(rooms.active.name);
  else refreshRooms();
}

function readActive() {
  const room = rooms?.active;
  if (!room?.synced || document.visibilityState !== "visible" || room.lastRead === room.top) return;
  room.markRead();
  rooms.save();
  refreshRooms();
}

function refreshRooms() {
  const list = rooms.list().map((room) => ({ name: room.name, unread: room.unread(me.id) }));
  sidebar.rooms(list, rooms.active?.name);
  const total = list.reduce((sum, room) => sum + room.unread.count, 0);
  document.title = `${total ? `(${total}) ` : ""}#${rooms.active?.name ?? ""} · chatapp`;
  const elsewhere = list.filter((room) => room.name !== rooms.active?.name);
  $("menu-badge").hidden = !elsewhere.some((room) => room.unread.count);
  view.updateJump();
}

function roomFromHash() {
  const name = decodeURIComponent(location.hash.slice(1));
  return ROOM_PATTERN.test(name) ? name : null;
}

// --- page chrome -------------------------------------------------------------

/** Polite announcements for screen readers: new messages in the open room. */
function announce(messages) {
  const region = $("announcer");
  for (const message of messages) {
    if (message.user.id === me.id) continue;
    const text = message.text.length > 300 ? `${message.text.slice(0, 300)}…` : message.text;
    region.append(element("p", "", `${message.user.name}: ${text}`));
  }
  while (region.childElementCount > ANNOUNCEMENTS_KEPT) region.firstElementChild.remove();
}

let noticeTimer = 0;
function notify(text) {
  const notice = $("notice");
  notice.textContent = text;
  notice.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { notice.hidden = true; }, NOTICE_MS);
}

function toggleDrawer(open) {
  const wasOpen = document.body.classList.contains("drawer-open");
  document.body.classList.toggle("drawer-open", open);
  $("menu-toggle").setAttribute("aria-expanded", String(open));
  // On phones the sidebar is a drawer: take the focus into it, and back out.
  if (open && !wasOpen) $("sidebar").querySelector("[aria-current]")?.focus();
}

function wireUp() {
  $("join-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const field = $("join-room");
    const name = field.value.trim().replace(/^#/, "");
    if (!ROOM_PATTERN.test(name)) {
      field.setCustomValidity("1–64 letters, digits, '_', '-' or '.', not starting with '-' or '.'");
      field.reportValidity();
      return;
    }
    field.value = "";
    openRoom(name, true);
  });
  $("join-room").addEventListener("input", (event) => event.target.setCustomValidity(""));
  $("menu-toggle").addEventListener("click", () => {
    toggleDrawer(!document.body.classList.contains("drawer-open"));
  });
  $("backdrop").addEventListener("click", () => toggleDrawer(false));
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && document.body.classList.contains("drawer-open")) {
      toggleDrawer(false);
      $("menu-toggle").focus();
    }
  });
  $("sign-out").addEventListener("click", () => {
    if (outbox.pending().length && !confirm("Some messages are not sent yet. Sign out anyway?")) return;
    connection.stop();
    session.forget();
    sessionStorage.removeItem(outbox.key);
    location.reload();
  });
  window.addEventListener("hashchange", () => {
    const name = roomFromHash();
    if (name && name !== rooms.active?.name) openRoom(name);
  });
  document.addEventListener("visibilitychange", () => {
    if (view.following) readActive();
  });
  setInterval(checkAcks, 2000);
}

async function main() {
  sidebar.status("connecting");
  for (let wait = 1000; ; wait = Math.min(wait * 2, 30000)) {
    try {
      await session.loadOptions();
      break;
    } catch {
      sidebar.status("waiting", Date.now() + wait);
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }
  sidebar.status("signed-out");
  if (!session.user || (session.kind === "token" && session.expired())) {
    await signIn(session, session.user ? "Your session has expired. Please sign in again." : "");
  } else if (session.kind === "guest" && session.expired()) {
    try {
      if (!(await session.renew())) await signIn(session, "Please sign in again.");
    } catch {
      // offline: the connection keeps trying and renews once the server answers
    }
  }
  me = session.user;
  $("account").hidden = false;
  search.form.hidden = false;
  rooms = new Rooms(me.id);
  outbox = new Outbox(me.id);
  const wanted = roomFromHash();
  if (wanted) rooms.active = rooms.add(wanted);
  $("me").textContent = me.name;
  wireUp();
  openRoom(rooms.active.name, true);
  session.scheduleRenewal();
  connection.start();
}

main();
