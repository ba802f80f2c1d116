// What the server says, frame by frame: hello, history, message, ack,
// presence, typing and error. Each handler updates the rooms and the outbox,
// then asks the room controller (controller.js) to show the outcome.

import { app } from "./app.js";
import { notify } from "./chrome.js";
import { display, fillGap, historyArrived } from "./controller.js";
import { $ } from "./dom.js";
import { limits } from "./limits.js";
import { transmit } from "./sending.js";

const TYPING_SHOWN_MS = 5000;
const RATE_LIMITED_RETRY_MS = 1500;
const RETRYABLE = new Set(["unavailable", "not_joined", "rate_limited"]);

export function onFrame(frame) {
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
  if (frame.user.id !== app.me.id) {
    location.reload(); // signed in as someone else elsewhere: this page's state is not theirs
    return;
  }
  app.me = frame.user;
  $("me").textContent = app.me.name;
  // The URL joined one room; join the others, resuming each where it stopped.
  for (const room of app.rooms.list()) {
    if (room.name === app.joinedByUrl) continue;
    const join = { type: "join", room: room.name, limit: limits.default_history_limit };
    if (room.synced) join.since = room.top;
    app.connection.send(join);
  }
  for (const entry of app.outbox.pending()) transmit(entry);
}

function received(name, messages, live, hasMore = false) {
  const { rooms, outbox, me } = app;
  const room = rooms.get(name);
  if (!room) return; // left meanwhile
  const first = !room.synced;
  const shown = room.addNewer(messages);
  if (first) {
    room.hasOlder = hasMore;
    // A first visit starts with nothing unread, and says so to the next visit.
    if (room.lastRead === null && room.markRead()) rooms.save();
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
  if (live) for (const message of shown) app.alerts.consider(message, me);
  if (room.held.size) fillGap(room);
  if (first) historyArrived(room);
}

function acknowledged(frame) {
  const { rooms, outbox, view, me } = app;
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
  const room = app.rooms.get(frame.room);
  if (!room) return;
  room.presence = { users: frame.users, count: frame.count ?? frame.users.length };
  if (room === app.rooms.active) app.sidebar.presence(room, app.me);
}

function typingSeen(frame) {
  const { rooms, sidebar, me } = app;
  const room = rooms.get(frame.room);
  if (!room || frame.user.id === me.id) return;
  room.typing.set(frame.user.id, { name: frame.user.name, until: Date.now() + TYPING_SHOWN_MS });
  if (room !== rooms.active) return;
  sidebar.typing(room, me);
  setTimeout(() => sidebar.typing(rooms.active, me), TYPING_SHOWN_MS + 100);
}

function refused(frame) {
  const { outbox, rooms, view } = app;
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
