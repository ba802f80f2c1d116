// chatapp in the browser: the entry point. It asks the server how one signs in
// here (and its limits), signs the user in, builds the parts and connects.
// The parts: session.js and signin.js (who), connection.js and link.js (the
// socket), frames.js (what the server says), controller.js (the rooms),
// sending.js (messages out), the views (messages.js, sidebar.js, composer.js,
// search.js, directory.js, alerts.js) and chrome.js (the page around them);
// app.js holds what they share.

import { Alerts } from "./alerts.js";
import { getJson } from "./api.js";
import { app } from "./app.js";
import { wireDrawer } from "./chrome.js";
import { Composer } from "./composer.js";
import { Connection } from "./connection.js";
import {
  copyLink,
  leaveRoom,
  loadOlder,
  openRoom,
  placeFromHash,
  readActive,
  refreshRooms,
  showMessage,
} from "./controller.js";
import { Directory } from "./directory.js";
import { $ } from "./dom.js";
import { onFrame } from "./frames.js";
import { isRoomName, limits, roomNameRefusal } from "./limits.js";
import { decide, dropped, socketUrl } from "./link.js";
import { MessageView } from "./messages.js";
import { Outbox } from "./outbox.js";
import { Rooms } from "./rooms.js";
import { Search } from "./search.js";
import { Session } from "./session.js";
import { checkAcks, discardSend, retrySend, sendMessage, sendTyping } from "./sending.js";
import { Sidebar } from "./sidebar.js";
import { signIn } from "./signin.js";

const OPTIONS_RETRY_MS = 1000; // first wait when the server does not answer; doubles up to the cap
const OPTIONS_RETRY_CAP_MS = 30000;
const ACK_CHECK_MS = 2000;

async function main() {
  app.session = new Session();
  app.sidebar = new Sidebar({
    open: (name) => openRoom(name, true),
    leave: leaveRoom,
    reconnect: () => app.connection.reconnectNow(),
  });
  await loadOptions();
  app.sidebar.status("signed-out");
  await signInOrResume(app.session);
  app.me = app.session.user;
  app.rooms = new Rooms(app.me.id, refreshRooms);
  app.outbox = new Outbox(app.me.id);
  build();
  const wanted = placeFromHash();
  if (wanted) app.rooms.active = app.rooms.add(wanted.room);
  $("me").textContent = app.me.name;
  $("account").hidden = false;
  wire();
  openRoom(app.rooms.active.name, true);
  if (wanted?.seq) showMessage(wanted);
  app.session.scheduleRenewal();
  app.connection.start();
}

/** GET /api/auth until the server answers (it may be starting). */
async function loadOptions() {
  app.sidebar.status("connecting");
  for (let wait = OPTIONS_RETRY_MS; ; wait = Math.min(wait * 2, OPTIONS_RETRY_CAP_MS)) {
    try {
      await app.session.loadOptions();
      return;
    } catch {
      app.sidebar.status("waiting", Date.now() + wait);
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }
}

/** Sign in, or carry on with the stored session (its cookie set again, or renewed). */
async function signInOrResume(session) {
  if (!session.user) {
    await signIn(session);
    return;
  }
  try {
    const valid = !session.expired() && (await session.resume());
    if (!valid && !(await session.renew())) {
      await signIn(session, "Your session has expired. Please sign in again.");
    }
  } catch {
    // offline: the connection keeps trying, and renews once the server answers
  }
}

function build() {
  app.view = new MessageView({
    me: () => app.me,
    statusOf: (message) => (message.user.id === app.me.id ? app.outbox.statusOf(message) : ""),
    nearTop: (retry) => loadOlder(retry),
    atBottom: readActive,
    unread: () => app.rooms.active?.unread(app.me.id).count ?? 0,
    retry: retrySend,
    discard: discardSend,
    copyLink,
  });
  app.composer = new Composer({ send: sendMessage, typing: sendTyping });
  app.alerts = new Alerts(app.me.id, { open: (name) => openRoom(name) });
  const search = new Search({
    find: (q) => getJson(`/api/search?${new URLSearchParams({ q, limit: String(limits.max_search_limit) })}`),
    choose: showMessage,
  });
  search.form.hidden = false;
  new Directory({ load: () => getJson("/api/rooms"), join: (name) => openRoom(name, true) });
  app.connection = new Connection({
    url: socketUrl,
    frame: onFrame,
    dropped,
    decide,
    status: (state, retryAt) => app.sidebar.status(state, retryAt),
  });
}

function wire() {
  wireDrawer();
  $("join-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const field = $("join-room");
    const name = field.value.trim().replace(/^#/, "");
    if (!isRoomName(name)) {
      field.setCustomValidity(roomNameRefusal(name));
      field.reportValidity();
      return;
    }
    field.value = "";
    openRoom(name, true);
  });
  $("join-room").addEventListener("input", (event) => event.target.setCustomValidity(""));
  $("sign-out").addEventListener("click", async () => {
    if (app.outbox.pending().length && !confirm("Some messages are not sent yet. Sign out anyway?")) return;
    app.connection.stop();
    sessionStorage.removeItem(app.outbox.key);
    await app.session.signOut();
    location.reload();
  });
  window.addEventListener("hashchange", () => {
    const place = placeFromHash();
    if (place?.seq) showMessage(place);
    else if (place && place.room !== app.rooms.active?.name) openRoom(place.room);
  });
  document.addEventListener("visibilitychange", () => {
    if (app.view.following) readActive();
  });
  setInterval(checkAcks, ACK_CHECK_MS);
}

main();
