// Messages out: the composer's text goes to the outbox, then to the socket;
// Retry resends with the same client_id (the server stores it at most once);
// a send that gets no ack in time marks the socket as dead.

import { app } from "./app.js";

const ACK_TIMEOUT_MS = 15000; // no ack this long on an open socket: it is probably dead

export function sendMessage(text) {
  const { rooms, outbox, view } = app;
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

export function transmit(entry) {
  const frame = { type: "message", room: entry.room, text: entry.text, client_id: entry.clientId };
  entry.sentAt = 0; // the ack is timed from when the frame leaves (pacing may hold it)
  app.connection.send(frame, () => { entry.sentAt = Date.now(); }); // or after the reconnect
}

export function retrySend(clientId) {
  const entry = app.outbox.retry(clientId); // same client_id: the server stores it at most once
  if (entry) transmit(entry);
  app.view.renderOutbox(app.outbox.waiting(app.rooms.active.name));
  app.composer.focus(); // the button that had the focus is gone
}

export function discardSend(clientId) {
  app.outbox.discard(clientId);
  app.view.renderOutbox(app.outbox.waiting(app.rooms.active.name));
  app.composer.focus();
}

/** Sends that got no ack in time: show them failed, and replace the (probably dead) socket. */
export function checkAcks() {
  const { connection, outbox } = app;
  if (!connection.isOpen) return;
  const late = outbox.pending().filter((e) => e.sentAt && Date.now() - e.sentAt > ACK_TIMEOUT_MS);
  if (!late.length) return;
  for (const entry of late) outbox.fail(entry.clientId, "no reply from the server", true);
  app.view.renderOutbox(outbox.waiting(app.rooms.active.name));
  connection.restart();
}

export function sendTyping() {
  const room = app.rooms?.active;
  return Boolean(room?.synced) && app.connection.send({ type: "typing", room: room.name });
}
