// The connection's life as the page sees it: the URL to open (room and since;
// never a token: the HttpOnly cookie carries it), and what a drop or a close
// means: retry, renew the token first (api.js), or give up on a room.

import { reauthenticate } from "./api.js";
import { app } from "./app.js";
import { notify } from "./chrome.js";
import { leaveRoom } from "./controller.js";
import { limits } from "./limits.js";

export function socketUrl() {
  const url = new URL("/ws", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  const room = app.rooms.active;
  app.joinedByUrl = room.name;
  url.searchParams.set("room", room.name);
  if (room.synced) url.searchParams.set("since", String(room.top)); // resume: exactly what was missed
  url.searchParams.set("limit", String(limits.default_history_limit));
  return url.href;
}

export function dropped() {
  const { outbox, rooms, sidebar, me } = app;
  for (const entry of outbox.pending()) entry.sentAt = 0; // resent, and timed, after the reconnect
  for (const room of rooms.list()) {
    room.presence = null;
    room.typing.clear();
  }
  sidebar.presence(rooms.active, me);
  sidebar.typing(rooms.active, me);
}

/** After a close: reconnect now, later, or never (the connection asks before retrying). */
export async function decide({ code, opened }) {
  const expired = code === limits.close_codes.token_expired;
  const verdict = expired ? "auth" : opened ? "retry" : await probe();
  if (verdict === "auth") return (await reauthenticate()) ? "now" : "retry";
  if (verdict === "forbidden") {
    notify(`You have no access to #${app.joinedByUrl}.`);
    if (app.rooms.list().length < 2) return "stop";
    leaveRoom(app.joinedByUrl);
    return "now";
  }
  return "retry";
}

/** A refused handshake says nothing to the page; ask the HTTP API why. */
async function probe() {
  try {
    const room = encodeURIComponent(app.joinedByUrl);
    const response = await fetch(`/api/rooms/${room}/messages?limit=1`, { cache: "no-store" });
    if (response.status === 401) return "auth";
    if (response.status === 403) return "forbidden";
  } catch {
    // the server is unreachable: retrying is right
  }
  return "retry";
}
