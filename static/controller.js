// The room controller: which room is open, what it shows, how far it was
// read. It opens and leaves rooms, fills gaps and older pages over HTTP,
// takes the reader to one message (a search hit or a /#room/seq link), and
// keeps the unread counts in the sidebar and the tab title current.

import { getJson } from "./api.js";
import { app } from "./app.js";
import { announce, notify, showUnread, toggleDrawer } from "./chrome.js";
import { $ } from "./dom.js";
import { isRoomName, limits, roomNameRefusal } from "./limits.js";

const GAP_REFILL_LIMIT = 1000; // missed more than this: show the newest, the rest by scrolling
const HIT_CONTEXT = 20; // messages loaded above a sought message, so that it is not at the top
const RETRY_LATER_MS = 3000;
const sought = { jumps: 0, awaited: null }; // the latest message asked for, and one waiting for its room

// --- showing messages ----------------------------------------------------------

/** Show what a room received: from scratch on its first history, else appended. */
export function display(room, shown, first = false, live = false) {
  const { rooms, view, outbox, sidebar, me } = app;
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
    if (live) announce(shown, me);
  }
  refreshRooms();
}

/** Fetch what is missing between the run and the held messages, oldest first. */
export async function fillGap(room) {
  if (room.filling) return;
  room.filling = true;
  try {
    for (let gap = room.gap(); gap && app.rooms.get(room.name) === room; gap = room.gap()) {
      let shown = [];
      if (gap.before - gap.after - 1 <= GAP_REFILL_LIMIT) {
        const before = Math.min(gap.before, gap.after + 1 + limits.max_history_limit);
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
 * sought message. Resolves when it is shown (at once if there is nothing to load); while
 * a page is on its way, asking again waits for that one.
 */
export function loadOlder(retry, limit = limits.default_history_limit) {
  const room = app.rooms?.active;
  if (!room?.synced || !room.hasOlder || (room.olderFailed && !retry)) return Promise.resolve();
  if (!room.loadingOlder) {
    room.olderFailed = false;
    room.loadingOlder = addOlderPage(room, limit); // addOlderPage clears it before showing
    app.view.renderStart();
  }
  return room.loadingOlder;
}

async function addOlderPage(room, limit) {
  let added = [];
  try {
    const page = await fetchPage(room.name, room.oldest, limit);
    added = room.addOlder(page.messages, page.has_more);
  } catch {
    room.olderFailed = true;
  } finally {
    room.loadingOlder = null;
  }
  if (room !== app.rooms.active) return;
  app.view.prepended(added);
  refreshRooms();
  app.view.wantOlder(); // a short page on a tall screen: keep going
}

function fetchPage(name, before, limit) {
  const query = new URLSearchParams({ before: String(before), limit: String(limit) });
  return getJson(`/api/rooms/${encodeURIComponent(name)}/messages?${query}`);
}

// --- one message: search hits and links -----------------------------------------

/** Open a message's room (joining it if need be), page back to it, and show it lit. */
export async function showMessage({ room: name, seq }) {
  const jump = ++sought.jumps; // a later choice ends the way to an earlier one
  if (app.rooms.active?.name !== name) openRoom(name);
  const room = app.rooms.get(name);
  if (!room) return;
  sought.awaited = room.synced ? null : { room: name, seq }; // historyArrived() comes back
  if (!room.synced) return;
  const current = () => jump === sought.jumps && app.rooms.active === room; // else the user moved on
  while (current() && room.oldest > seq && room.hasOlder) {
    await loadOlder(true, Math.min(limits.max_history_limit, room.oldest - seq + HIT_CONTEXT));
    if (room.olderFailed) break;
  }
  if (!current()) return;
  if (room.find(seq)) app.view.reveal(seq);
  else if (room.olderFailed) notify("Could not load older messages. Please try again.");
  else notify(`That message is no longer in #${room.name}.`);
}

/** A room's first history came: go on to the message sought there, if any. */
export function historyArrived(room) {
  if (sought.awaited?.room === room.name && room === app.rooms.active) showMessage(sought.awaited);
}

/** The room and message a URL's hash names: #room or #room/seq. */
export function placeFromHash() {
  const [room, seq] = decodeURIComponent(location.hash.slice(1)).split("/");
  if (!isRoomName(room ?? "")) return null;
  return { room, seq: /^[1-9]\d*$/.test(seq ?? "") ? Number(seq) : 0 };
}

export async function copyLink(seq) {
  const url = new URL(location.href);
  url.hash = `${app.rooms.active.name}/${seq}`;
  try {
    await navigator.clipboard.writeText(url.href);
    notify("Link to the message copied.");
  } catch {
    notify(`Link to the message: ${url.href}`); // no clipboard here: the user copies it
  }
}

// --- rooms ----------------------------------------------------------------------

export function openRoom(name, focusComposer = false) {
  const { rooms, connection, view, sidebar, composer, alerts, me } = app;
  if (!isRoomName(name)) {
    notify(roomNameRefusal(name));
    return;
  }
  let room = rooms.get(name);
  if (!room) {
    room = rooms.add(name);
    connection.send({ type: "join", room: name, limit: limits.default_history_limit }); // or at the next connect
  }
  if (rooms.active && rooms.active !== room) rooms.active.marker = 0;
  rooms.active = room;
  room.marker = room.synced ? room.firstUnread(me.id) : 0;
  rooms.save();
  if (location.hash !== `#${name}`) history.replaceState(null, "", `#${name}`);
  $("room-title").textContent = `#${name}`;
  composer.setRoom(name);
  alerts.showRoom(name);
  view.show(room);
  sidebar.presence(room, me);
  sidebar.typing(room, me);
  refreshRooms();
  toggleDrawer(false);
  if (focusComposer) composer.focus();
}

export function leaveRoom(name) {
  const { rooms, connection, outbox } = app;
  if (!rooms.get(name) || rooms.list().length < 2) return;
  connection.send({ type: "leave", room: name });
  for (const entry of outbox.sorted()) if (entry.room === name) outbox.discard(entry.clientId);
  const wasActive = rooms.active?.name === name;
  rooms.remove(name);
  rooms.save();
  if (wasActive) openRoom(rooms.active.name);
  else refreshRooms();
}

/** The user sees the newest messages of the open room: remember that, here and in other tabs. */
export function readActive() {
  const room = app.rooms?.active;
  if (!room?.synced || document.visibilityState !== "visible" || !room.markRead()) return;
  app.rooms.save();
  refreshRooms();
}

export function refreshRooms() {
  const { rooms, sidebar, view, me } = app;
  const list = rooms.list().map((room) => ({ name: room.name, unread: room.unread(me.id) }));
  const active = rooms.active?.name;
  sidebar.rooms(list, active);
  const total = list.reduce((sum, room) => sum + room.unread.count, 0);
  showUnread(total, active, list.some((room) => room.name !== active && room.unread.count));
  view.updateJump();
}
