// Desktop notifications: for a message that mentions the user, and for every
// message while the tab is hidden, except in muted rooms (a per-user setting).
// Permission is asked for only when the user clicks the button for it, never
// on load, and never again once the browser has an answer.

import { $ } from "./dom.js";
import { plainName } from "./people.js";
import { mentions } from "./richtext.js";
import { readJson, writeJson } from "./storage.js";

const BODY_CHARS = 200;
const STATES = {
  granted: "On for mentions, and for every message while this tab is hidden.",
  denied: "Blocked in this browser's site settings.",
  unsupported: "This browser cannot show notifications.",
  default: "",
};

export class Alerts {
  /** @param {object} hooks open(room): show a room (the user clicked its notification) */
  constructor(userId, hooks) {
    this.hooks = hooks;
    this.key = `chatapp.muted.${userId}`;
    this.muted = new Set(readJson(this.key) ?? []);
    this.room = "";
    this.enable = $("alerts-on");
    this.state = $("alerts-state");
    this.mute = $("mute");
    this.muteLabel = $("mute-label");
    this.enable.addEventListener("click", () => this.askPermission());
    this.mute.addEventListener("change", () => this.setMuted(this.room, this.mute.checked));
    this.render();
  }

  get permission() {
    return "Notification" in window ? Notification.permission : "unsupported";
  }

  async askPermission() {
    await Notification.requestPermission(); // from the user's click, as browsers want
    this.render();
  }

  /** The open room changed: the mute box is about that room. */
  showRoom(name) {
    this.room = name;
    this.muteLabel.textContent = `Mute #${name}`;
    this.mute.checked = this.muted.has(name);
  }

  setMuted(name, muted) {
    if (muted) this.muted.add(name);
    else this.muted.delete(name);
    writeJson(this.key, [...this.muted]);
  }

  render() {
    const permission = this.permission;
    this.enable.hidden = permission !== "default";
    this.state.textContent = STATES[permission] ?? "";
    this.state.hidden = !this.state.textContent;
  }

  /** A live message arrived: notify if it mentions the user, or if the tab is hidden. */
  consider(message, me) {
    if (message.user.id === me.id || this.muted.has(message.room)) return;
    if (this.permission !== "granted") return;
    if (document.visibilityState !== "hidden" && !mentions(message.text, me.name)) return;
    const text = message.text.length > BODY_CHARS ? `${message.text.slice(0, BODY_CHARS)}…` : message.text;
    const note = new Notification(`${plainName(message.user)} in #${message.room}`, {
      body: text,
      tag: `chatapp-${message.room}`, // one per room: a newer message replaces the last
    });
    note.addEventListener("click", () => {
      window.focus();
      this.hooks.open(message.room);
      note.close();
    });
  }
}
