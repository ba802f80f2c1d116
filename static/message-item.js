// One message as a list item: date line, "New messages" line, avatar and name
// (or, within a group, the time alone), the text rendered by richtext.js, the
// sending state, and a button that copies a link to the message.

import { button, element } from "./dom.js";
import { avatar, nameLabel } from "./people.js";
import { renderText } from "./richtext.js";

const GROUP_GAP_MS = 5 * 60 * 1000; // a pause this long starts a new group

/**
 * @param {object} message  a message object, or a message being sent (no seq yet)
 * @param {object} prev     the message shown above it, if any
 * @param {object} context  me ({id, name}), marker (seq of the "New messages" line),
 *                          status ("pending" | "sent" | "failed" | ""), copyLink(seq)
 */
export function messageItem(message, prev, { me, marker, status, copyLink }) {
  const li = element("li", "message");
  const when = new Date(message.ts);
  const newDay = !prev || dayKey(new Date(prev.ts)) !== dayKey(when);
  const marked = message.seq !== undefined && message.seq === marker;
  const grouped = Boolean(prev) && !newDay && !marked && prev.user.id === message.user.id
    && when - new Date(prev.ts) < GROUP_GAP_MS;
  if (message.seq !== undefined) li.dataset.seq = String(message.seq);
  li.dataset.user = message.user.id;
  if (message.client_id) li.dataset.clientId = message.client_id;
  if (status) li.dataset.status = status;
  if (message.user.id === me?.id) li.classList.add("own");
  if (marked) li.append(divider("New messages", "new-marker"));
  if (newDay) li.append(divider(dayLabel(when), "day"));
  const time = element("time", "time", timeLabel(when));
  time.dateTime = when.toISOString();
  time.title = when.toLocaleString();
  if (grouped) {
    li.classList.add("grouped");
    // Screen readers still hear who wrote each message of a group.
    li.append(time, element("span", "visually-hidden", `${message.user.name}: `));
  } else {
    const meta = element("div", "meta");
    meta.append(...nameLabel(message.user), " ", time);
    li.append(avatar(message.user), meta);
  }
  const body = element("div", "body");
  body.dir = "auto"; // right-to-left text aligns right, whatever the page's direction
  const text = element("div", "text");
  text.append(renderText(message.text, me?.name));
  body.append(text);
  if (status && status !== "failed") body.append(statusLabel(status)); // failures get a box
  li.append(body);
  if (message.seq !== undefined) li.append(copyButton(message.seq, copyLink));
  return li;
}

/** Why a send failed, with Retry (when it may work) and Discard. */
export function failureBox(entry, { retry, discard }) {
  const box = element("div", "failure");
  box.append(element("span", "reason", `Not sent: ${entry.error}`));
  if (entry.retryable) {
    const again = button("Retry", "link-button retry");
    again.addEventListener("click", () => retry(entry.clientId));
    box.append(again);
  }
  const drop = button("Discard", "link-button discard");
  drop.addEventListener("click", () => discard(entry.clientId));
  box.append(drop);
  return box;
}

function copyButton(seq, copyLink) {
  const copy = button("Copy link", "copy-link");
  copy.setAttribute("aria-label", "Copy link to message");
  copy.addEventListener("click", () => copyLink(seq));
  return copy;
}

function divider(label, className) {
  const node = element("div", `divider ${className}`);
  node.setAttribute("role", "separator");
  node.append(element("span", "", label));
  return node;
}

function statusLabel(status) {
  const node = element("span", "status");
  node.dataset.status = status;
  if (status === "sent") {
    node.append(element("span", "", "✓"), element("span", "visually-hidden", "Sent"));
    node.firstChild.setAttribute("aria-hidden", "true");
    node.title = "Sent";
  } else {
    node.textContent = "Sending…";
  }
  return node;
}

function dayKey(date) {
  return `${date.getFullYear()}-${date.getMonth()}-${date.getDate()}`;
}

function dayLabel(date) {
  const today = new Date();
  const yesterday = new Date(today.getFullYear(), today.getMonth(), today.getDate() - 1);
  if (dayKey(date) === dayKey(today)) return "Today";
  if (dayKey(date) === dayKey(yesterday)) return "Yesterday";
  const options = { weekday: "long", month: "long", day: "numeric" };
  if (date.getFullYear() !== today.getFullYear()) options.year = "numeric";
  return date.toLocaleDateString(undefined, options);
}

function timeLabel(date) {
  return date.toLocaleTimeString([], { hour: "numeric", minute: "2-digit" });
}
