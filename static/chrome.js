// The page around the conversation: the notice line, the screen-reader
// announcer, the unread count in the tab title and on the menu button, and
// the sidebar as a drawer on phones.

import { $, element } from "./dom.js";

const NOTICE_MS = 8000;
const ANNOUNCED_CHARS = 300;
const ANNOUNCEMENTS_KEPT = 5;
const shown = { noticeTimer: 0 };

/** A short message at the top of the conversation, gone after a few seconds. */
export function notify(text) {
  const notice = $("notice");
  notice.textContent = text;
  notice.hidden = false;
  clearTimeout(shown.noticeTimer);
  shown.noticeTimer = setTimeout(() => { notice.hidden = true; }, NOTICE_MS);
}

/** Polite announcements for screen readers: new messages in the open room. */
export function announce(messages, me) {
  const region = $("announcer");
  for (const message of messages) {
    if (message.user.id === me.id) continue;
    const text = message.text.length > ANNOUNCED_CHARS
      ? `${message.text.slice(0, ANNOUNCED_CHARS)}…`
      : message.text;
    region.append(element("p", "", `${message.user.name}: ${text}`));
  }
  while (region.childElementCount > ANNOUNCEMENTS_KEPT) region.firstElementChild.remove();
}

/** Unread messages in the tab title, and a dot on the menu button for other rooms' news. */
export function showUnread(total, activeName, elsewhere) {
  document.title = `${total ? `(${total}) ` : ""}#${activeName ?? ""} · chatapp`;
  $("menu-badge").hidden = !elsewhere;
}

export function toggleDrawer(open) {
  const wasOpen = document.body.classList.contains("drawer-open");
  document.body.classList.toggle("drawer-open", open);
  $("menu-toggle").setAttribute("aria-expanded", String(open));
  // On phones the sidebar is a drawer: take the focus into it, and back out.
  if (open && !wasOpen) $("sidebar").querySelector("[aria-current]")?.focus();
}

/** The menu button, the backdrop and Escape open and close the drawer. */
export function wireDrawer() {
  $("menu-toggle").addEventListener("click", () => {
    toggleDrawer(!document.body.classList.contains("drawer-open"));
  });
  $("backdrop").addEventListener("click", () => toggleDrawer(false));
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && document.body.classList.contains("drawer-open")) {
      toggleDrawer(false);
      $("menu-toggle").focus();
    }
  });
}
