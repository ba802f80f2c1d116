// How a person is shown: an avatar, and a name that tells people apart. Guests
// choose any name, so two guests called "Ann" get a short tag from their ids
// ("guest·3f2a") and the full id on hover; signed-in users show their id on hover.

import { element } from "./dom.js";

// Guest ids start with this (the server's documented identity contract).
const GUEST_PREFIX = "guest:";
const TAG_CHARS = 4;

function isGuest(user) {
  return user.id.startsWith(GUEST_PREFIX);
}

/** A coloured circle with the author's initial; the colour follows the user id. */
export function avatar(user) {
  const node = element("span", "avatar", [...user.name.trim()][0]?.toUpperCase() ?? "?");
  node.setAttribute("aria-hidden", "true");
  let hash = 0;
  for (const char of user.id) hash = (hash * 31 + char.codePointAt(0)) % 360;
  node.style.setProperty("--hue", String(hash));
  return node;
}

/** The name (class `className`), and for a guest the tag that sets them apart. */
export function nameLabel(user, className = "author") {
  const name = element("span", className, user.name);
  name.title = user.id;
  if (!isGuest(user)) return [name];
  const tag = element("span", "guest-tag", `guest·${guestTag(user)}`);
  tag.title = `A guest (${user.id})`;
  return [name, tag];
}

/** "Ann (guest·3f2a)": for text-only places such as notifications. */
export function plainName(user) {
  return isGuest(user) ? `${user.name} (guest·${guestTag(user)})` : user.name;
}

function guestTag(user) {
  return user.id.slice(GUEST_PREFIX.length, GUEST_PREFIX.length + TAG_CHARS);
}
