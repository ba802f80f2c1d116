// The page's requests to the HTTP API, and a fresh token when the server
// refuses the old one: renewed silently for guests, through the sign-in dialog
// otherwise. The cookie carries the token, so no URL ever holds it.

import { app } from "./app.js";
import { signIn } from "./signin.js";

const pending = { renewal: null }; // one renewal or dialog at a time, however many ask

/** Get a fresh token: silently for guests, through the dialog otherwise. */
export function reauthenticate() {
  pending.renewal ??= renewOrAsk().finally(() => {
    pending.renewal = null;
  });
  return pending.renewal;
}

async function renewOrAsk() {
  const { session, sidebar } = app;
  try {
    if (await session.renew()) return true;
  } catch {
    return false; // offline: the next attempt tries again
  }
  sidebar.status("signed-out");
  await signIn(session, "Your session has expired. Please sign in again to continue.");
  if (session.user.id !== app.me.id) location.reload();
  session.scheduleRenewal();
  return true;
}

/** GET JSON from the API; refused for the token, once more after getting a fresh one. */
export async function getJson(url) {
  try {
    return await fetchJson(url);
  } catch (error) {
    if (error.status === 401 && (await reauthenticate())) return fetchJson(url);
    throw error;
  }
}

async function fetchJson(url) {
  const response = await fetch(url, { cache: "no-store" });
  if (!response.ok) throw Object.assign(new Error(`HTTP ${response.status}`), { status: response.status });
  return response.json();
}
