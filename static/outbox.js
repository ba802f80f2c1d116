// Messages the user sent that the server has not acknowledged yet. Each
// keeps its client_id for life, so however often it is resent (after a
// reconnect, or by the Retry button) the server stores it once. Kept in
// sessionStorage: a reload of the tab resends what was still pending.

import { readJson, writeJson } from "./storage.js";

export class Outbox {
  constructor(userId) {
    this.key = `chatapp.outbox.${userId}`;
    const saved = readJson(this.key, sessionStorage);
    // entry: {clientId, room, text, createdAt, state: "pending"|"failed", error, retryable, seq, sentAt}
    this.entries = new Map((Array.isArray(saved) ? saved : []).map((e) => [e.clientId, e]));
    this.sent = new Set(); // client_ids acknowledged in this page's life: shown as sent
  }

  add(room, text) {
    const entry = {
      clientId: newClientId(),
      room,
      text,
      createdAt: Date.now(),
      state: "pending",
      error: "",
      retryable: true,
      seq: 0,
      sentAt: 0,
    };
    this.entries.set(entry.clientId, entry);
    this.save();
    return entry;
  }

  get(clientId) {
    return this.entries.get(clientId);
  }

  /** Entries of a room still shown at the bottom (no echo with a seq yet), oldest first. */
  waiting(room) {
    return this.sorted().filter((e) => e.room === room && !e.seq);
  }

  /** Entries to (re)send now, oldest first. */
  pending() {
    return this.sorted().filter((e) => e.state === "pending");
  }

  sorted() {
    return [...this.entries.values()].sort((a, b) => a.createdAt - b.createdAt);
  }

  /** The server stored it: acknowledged, or seen in history. */
  confirm(clientId) {
    const entry = this.entries.get(clientId);
    this.sent.add(clientId);
    if (entry) {
      this.entries.delete(clientId);
      this.save();
    }
    return entry;
  }

  fail(clientId, reason, retryable) {
    const entry = this.entries.get(clientId);
    if (!entry) return;
    Object.assign(entry, { state: "failed", error: reason, retryable, sentAt: 0 });
    this.save();
  }

  retry(clientId) {
    const entry = this.entries.get(clientId);
    if (!entry) return null;
    Object.assign(entry, { state: "pending", error: "" });
    this.save();
    return entry;
  }

  discard(clientId) {
    this.entries.delete(clientId);
    this.save();
  }

  /** "pending" until acknowledged, then "sent"; "" for messages not sent from this page. */
  statusOf(message) {
    if (!message.client_id) return "";
    if (this.entries.has(message.client_id)) return "pending";
    return this.sent.has(message.client_id) ? "sent" : "";
  }

  save() {
    writeJson(this.key, this.sorted(), sessionStorage);
  }
}

/** A random idempotency key; crypto.randomUUID exists only on https and localhost. */
function newClientId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
