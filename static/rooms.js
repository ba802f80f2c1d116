// What the page knows about each room. A room's messages are one run of
// consecutive seqs (the server numbers each room 1, 2, 3... without gaps),
// so a message is shown at most once and always in order: anything that
// arrives past a gap waits in `held` until the gap is filled. How far each
// room was read is shared with the user's other tabs through localStorage.

import { isRoomName } from "./limits.js";
import { readJson, watchOtherTabs, writeJson } from "./storage.js";

const DEFAULT_ROOM = "general";

export class Room {
  constructor(name) {
    this.name = name;
    this.messages = []; // confirmed messages, oldest first, consecutive seqs
    this.top = null; // newest seq of the run; null until the first history arrives
    this.held = new Map(); // seq -> message that arrived past a gap
    this.hasOlder = true; // the room has messages before messages[0]
    this.loadingOlder = null; // the older page on its way (a Promise), if any
    this.olderFailed = false;
    this.filling = false;
    this.lastRead = null; // newest seq the user has seen here; null: first visit
    this.marker = 0; // seq that gets the "New messages" line, 0 for none
    this.presence = null; // {users, count} while connected
    this.typing = new Map(); // user id -> {name, until}
  }

  get synced() {
    return this.top !== null;
  }

  get oldest() {
    return this.messages.length ? this.messages[0].seq : (this.top ?? 0) + 1;
  }

  /** The message with this seq, if loaded. */
  find(seq) {
    return this.messages[seq - this.oldest];
  }

  /**
   * Merge newer messages (history or live); returns those that became
   * visible, in order. The very first batch starts the run wherever it starts.
   */
  addNewer(list) {
    if (!this.synced) {
      this.messages = [...list];
      this.top = list.length ? list[list.length - 1].seq : 0;
      return [...list];
    }
    for (const message of list) {
      if (message.seq > this.top) this.held.set(message.seq, message);
    }
    const shown = [];
    while (this.held.has(this.top + 1)) {
      const next = this.held.get(this.top + 1);
      this.held.delete(this.top + 1);
      this.messages.push(next);
      this.top = next.seq;
      shown.push(next);
    }
    return shown;
  }

  /** The hole between the run and the held messages, or null. */
  gap() {
    if (!this.held.size) return null;
    return { after: this.top, before: Math.min(...this.held.keys()) };
  }

  /** Give up on a gap: start again from the held messages (older ones load by scrolling). */
  restartFromHeld() {
    const held = [...this.held.values()].sort((a, b) => a.seq - b.seq);
    let start = held.length - 1;
    while (start > 0 && held[start - 1].seq === held[start].seq - 1) start -= 1;
    this.messages = held.slice(start);
    this.top = held[held.length - 1].seq;
    this.held.clear();
    this.hasOlder = true;
    this.marker = 0;
  }

  /** Merge an older page that ends just before our oldest message; returns what was added. */
  addOlder(list, hasMore) {
    const first = this.oldest;
    const older = list.filter((m) => m.seq < first);
    // Only a page that touches our oldest message keeps the run gapless.
    const fits = older.length && older[older.length - 1].seq === first - 1;
    const added = fits ? older : [];
    this.messages = added.concat(this.messages);
    this.hasOlder = Boolean(fits && hasMore); // a page that does not fit: nothing more to trust
    return added;
  }

  /** Messages from others after lastRead, and whether there may be more not loaded. */
  unread(meId) {
    if (this.lastRead === null) return { count: 0, more: false };
    let count = 0;
    for (let i = this.messages.length - 1; i >= 0 && this.messages[i].seq > this.lastRead; i--) {
      if (this.messages[i].user.id !== meId) count += 1;
    }
    const more = this.hasOlder && this.oldest > this.lastRead + 1;
    return { count, more };
  }

  /** The first unread message from someone else, for the "New messages" line. */
  firstUnread(meId) {
    if (this.lastRead === null) return 0;
    const start = Math.max(this.lastRead + 1, this.oldest);
    for (let seq = start; seq <= (this.top ?? 0); seq++) {
      if (this.find(seq)?.user.id !== meId) return seq;
    }
    return 0;
  }

  /** Everything loaded was seen; true if that is news (a read position never moves back). */
  markRead() {
    if (!this.synced || (this.lastRead !== null && this.lastRead >= this.top)) return false;
    this.lastRead = this.top;
    return true;
  }
}

/** The rooms the user is in, which one is open, and how far each was read; per user. */
export class Rooms {
  /** @param {function} readElsewhere  called when another tab has read further */
  constructor(userId, readElsewhere) {
    this.key = `chatapp.rooms.${userId}`;
    this.map = new Map();
    this.active = null;
    const saved = readJson(this.key) ?? {};
    const names = Array.isArray(saved.rooms) && saved.rooms.length ? saved.rooms : [DEFAULT_ROOM];
    for (const name of names) {
      if (isRoomName(name)) this.add(name).lastRead = saved.read?.[name] ?? null;
    }
    this.active = this.map.get(saved.active) ?? this.map.values().next().value ?? null;
    watchOtherTabs(this.key, (data) => {
      if (this.adoptReads(data?.read)) readElsewhere();
    });
  }

  get(name) {
    return this.map.get(name);
  }

  list() {
    return [...this.map.values()];
  }

  add(name) {
    let room = this.map.get(name);
    if (!room) {
      room = new Room(name);
      this.map.set(name, room);
    }
    return room;
  }

  remove(name) {
    this.map.delete(name);
    if (this.active?.name === name) this.active = this.list()[0] ?? null;
  }

  /** Take the read positions another tab saved where they are further; true if any was. */
  adoptReads(read) {
    let changed = false;
    for (const room of this.map.values()) {
      const seq = read?.[room.name];
      if (Number.isInteger(seq) && (room.lastRead === null || seq > room.lastRead)) {
        room.lastRead = seq;
        changed = true;
      }
    }
    return changed;
  }

  save() {
    this.adoptReads(readJson(this.key)?.read); // never move back what another tab read
    const read = {};
    for (const room of this.map.values()) {
      if (room.lastRead !== null) read[room.name] = room.lastRead;
    }
    writeJson(this.key, { rooms: [...this.map.keys()], active: this.active?.name, read });
  }
}
