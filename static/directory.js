// The room directory: every room this user may join (GET /api/rooms), the most
// recently active first, with when it was last active and how many are
// connected now. Choosing one joins it.

import { $, button, element } from "./dom.js";

const UNITS = [["day", 86400], ["hour", 3600], ["minute", 60]];

export class Directory {
  /** @param {object} hooks load(): Promise of the API's answer; join(name) */
  constructor(hooks) {
    this.hooks = hooks;
    this.dialog = $("directory");
    this.list = $("directory-list");
    this.status = $("directory-status");
    $("browse").addEventListener("click", () => this.open());
    $("directory-close").addEventListener("click", () => this.dialog.close());
  }

  async open() {
    this.list.replaceChildren();
    this.status.textContent = "Loading rooms…";
    if (!this.dialog.open) this.dialog.showModal();
    let answer;
    try {
      answer = await this.hooks.load();
    } catch {
      this.status.textContent = "Could not load the rooms. Please try again.";
      return;
    }
    const { rooms } = answer;
    this.status.textContent = rooms.length ? "" : "No rooms yet: create one by joining it.";
    this.list.replaceChildren(...rooms.map((room) => this.item(room)));
    this.list.querySelector("button")?.focus();
  }

  item(room) {
    const choose = button("", "directory-room");
    choose.dataset.room = room.name;
    const activity = room.last_activity
      ? `last message ${ago(new Date(room.last_activity))}`
      : "no messages yet";
    const time = element("span", "activity", activity);
    if (room.last_activity) time.title = new Date(room.last_activity).toLocaleString();
    choose.append(
      element("span", "name", `#${room.name}`),
      time,
      element("span", "members", `${room.members} connected`),
    );
    choose.addEventListener("click", () => {
      this.dialog.close();
      this.hooks.join(room.name);
    });
    const li = element("li");
    li.append(choose);
    return li;
  }
}

function ago(date) {
  const seconds = (date.getTime() - Date.now()) / 1000;
  const format = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
  for (const [unit, size] of UNITS) {
    if (Math.abs(seconds) >= size) return format.format(Math.round(seconds / size), unit);
  }
  return "just now";
}
