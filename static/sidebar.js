// The panels around the messages: the room list with unread counts, who is
// here, who is typing, and the connection state. Lists are updated in place
// so a keyboard user's focus stays where it was.

import { button, element } from "./dom.js";
import { avatar, nameLabel } from "./people.js";

const STATES = {
  connecting: "Connecting…",
  online: "Connected",
  waiting: "Reconnecting…",
  offline: "Offline: waiting for the network…",
  stopped: "Disconnected",
  "signed-out": "Not signed in",
};

export class Sidebar {
  /** @param {object} hooks open(name), leave(name), reconnect() */
  constructor(hooks) {
    this.hooks = hooks;
    this.roomList = document.getElementById("rooms");
    this.roomItems = new Map(); // name -> <li>
    this.people = document.getElementById("people");
    this.peopleCount = document.getElementById("people-count");
    this.typingLine = document.getElementById("typing");
    this.connection = document.getElementById("connection");
    this.connectionText = document.getElementById("connection-text");
    this.countdown = document.getElementById("countdown");
    this.reconnect = document.getElementById("reconnect-now");
    this.reconnect.addEventListener("click", () => hooks.reconnect());
    this.ticker = 0;
  }

  /** @param {Array<{name, unread: {count, more}}>} rooms */
  rooms(rooms, activeName) {
    const names = new Set(rooms.map((r) => r.name));
    for (const [name, li] of this.roomItems) {
      if (!names.has(name)) {
        li.remove();
        this.roomItems.delete(name);
      }
    }
    for (const room of rooms) {
      const li = this.roomItems.get(room.name) ?? this.roomItem(room.name);
      this.roomList.append(li); // keeps the order of `rooms`; moving a node keeps its focus
      const open = li.querySelector(".room");
      if (room.name === activeName) open.setAttribute("aria-current", "page");
      else open.removeAttribute("aria-current");
      const { count, more } = room.unread;
      const badge = li.querySelector(".badge");
      badge.hidden = count === 0 || room.name === activeName;
      badge.dataset.count = String(count);
      badge.firstChild.textContent = count > 99 ? "99+" : `${count}${more ? "+" : ""}`;
      badge.lastChild.textContent = `, ${count}${more ? " or more" : ""} unread`;
      li.querySelector(".leave").hidden = rooms.length < 2;
    }
  }

  roomItem(name) {
    const li = element("li");
    li.dataset.room = name;
    const open = button("", "room");
    open.dataset.room = name;
    const badge = element("span", "badge");
    const count = element("span", "", "");
    count.setAttribute("aria-hidden", "true");
    badge.append(count, element("span", "visually-hidden", ""));
    open.append(element("span", "hash", "#"), element("span", "name", name), badge);
    open.addEventListener("click", () => this.hooks.open(name, true));
    const leave = button("×", "leave");
    leave.title = `Leave #${name}`;
    leave.setAttribute("aria-label", `Leave #${name}`);
    leave.addEventListener("click", () => this.hooks.leave(name));
    li.append(open, leave);
    this.roomItems.set(name, li);
    return li;
  }

  /** Who is in the room; the server lists at most 100 and gives the full count. */
  presence(room, me) {
    if (!room?.presence) {
      this.peopleCount.textContent = "";
      this.people.replaceChildren(element("li", "muted", "Not connected"));
      return;
    }
    const { users, count } = room.presence;
    this.peopleCount.textContent = `(${count})`;
    const items = users.map((user) => {
      const li = element("li", "person");
      li.dataset.user = user.id;
      li.append(avatar(user), ...nameLabel(user, "name"));
      if (user.id === me?.id) li.append(element("span", "you", "(you)"));
      return li;
    });
    if (count > users.length) items.push(element("li", "muted", `and ${count - users.length} more`));
    this.people.replaceChildren(...items);
  }

  typing(room, me) {
    const now = Date.now();
    const names = [];
    for (const [id, who] of room?.typing ?? []) {
      if (who.until > now && id !== me?.id) names.push(who.name);
    }
    let text = "";
    if (names.length === 1) text = `${names[0]} is typing…`;
    else if (names.length === 2) text = `${names[0]} and ${names[1]} are typing…`;
    else if (names.length > 2) text = `${names[0]}, ${names[1]} and ${names.length - 2} more are typing…`;
    this.typingLine.textContent = text;
  }

  status(state, retryAt) {
    this.connection.dataset.state = state;
    this.connectionText.textContent = STATES[state] ?? state;
    this.reconnect.hidden = !(state === "waiting" || state === "offline");
    clearInterval(this.ticker);
    this.countdown.textContent = "";
    if (state === "waiting" && retryAt) {
      // Outside the live region: a ticking number would be read out every second.
      const tick = () => {
        const seconds = Math.max(0, Math.ceil((retryAt - Date.now()) / 1000));
        this.countdown.textContent = seconds ? `in ${seconds} s` : "";
      };
      tick();
      this.ticker = setInterval(tick, 1000);
    }
  }
}
