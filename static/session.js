// Who the user is: a guest name or a pasted token. The server keeps the token
// in an HttpOnly cookie (set by POST /api/guest and POST /api/session), so no
// URL the page opens ever carries it. The page keeps a copy in localStorage
// only to renew a guest token before it expires, always passing the previous
// one, so the server keeps the same guest id and a message resent after the
// renewal is still recognised as a duplicate.

import { adoptLimits } from "./limits.js";
import { readJson, writeJson } from "./storage.js";

const STORAGE_KEY = "chatapp.session";
// Renew a guest token this long before it expires (halfway, for short ones).
const RENEW_MARGIN_MS = 5 * 60 * 1000;
// After a failed renewal (offline, server down), try again this much later.
const RENEW_RETRY_MS = 30 * 1000;

/** The server refused a sign-in; the message is meant for the user. */
export class AuthError extends Error {}

export class Session {
  constructor() {
    this.data = readJson(STORAGE_KEY); // {token, kind: "guest"|"token", user: {id, name}, expiresAt}
    this.options = { guests: true, tokens: false };
    this.renewTimer = 0;
  }

  get token() { return this.data?.token ?? null; }
  get kind() { return this.data?.kind ?? null; }
  get user() { return this.data?.user ?? null; }

  /** True once the token's exp has passed (a token without exp never expires here). */
  expired() {
    const at = this.data?.expiresAt;
    return Boolean(at) && at * 1000 <= Date.now();
  }

  /** Ask the server how one signs in here and its limits; forget a session it would refuse. */
  async loadOptions() {
    const response = await fetch("/api/auth", { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    this.options = await response.json();
    adoptLimits(this.options.limits);
    const usable = this.kind === "guest" ? this.options.guests : this.options.tokens;
    if (this.data && !usable) this.forget();
    return this.options;
  }

  /**
   * Hand the stored token to the server again as the cookie (a new browser session has
   * none); false when the server refuses it.
   */
  async resume() {
    const response = await postJson("/api/session", { token: this.token });
    if (response.status === 401) return false;
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    return true;
  }

  async signInAsGuest(name) {
    const previous = this.kind === "guest" ? this.token : undefined;
    let response = await postJson("/api/guest", previous ? { name, previous } : { name });
    if (response.status === 400 && previous) {
      response = await postJson("/api/guest", { name }); // too old to renew: a new guest
    }
    if (!response.ok) throw new AuthError(await reasonOf(response));
    const body = await response.json();
    this.keep({ token: body.token, kind: "guest", user: body.user, expiresAt: body.expires_at });
  }

  async signInWithToken(raw) {
    const token = raw.trim();
    const claims = decodeClaims(token);
    if (!claims || typeof claims.sub !== "string") {
      throw new AuthError("That does not look like a token (three parts separated by dots).");
    }
    if (typeof claims.exp === "number" && claims.exp * 1000 <= Date.now()) {
      throw new AuthError("That token has expired. Please get a new one.");
    }
    const response = await postJson("/api/session", { token });
    if (!response.ok) {
      throw new AuthError(`The server did not accept that token: ${await reasonOf(response)}.`);
    }
    const body = await response.json();
    this.keep({ token, kind: "token", user: body.user, expiresAt: body.expires_at ?? null });
  }

  /** Renew a guest token; false when only the user can sign in again (tokens, refusals). */
  async renew() {
    if (this.kind !== "guest") return false;
    try {
      await this.signInAsGuest(this.user.name);
      return true;
    } catch (error) {
      if (error instanceof AuthError) return false;
      throw error; // offline or server down: the caller retries later
    }
  }

  /** Renew a guest token ahead of its expiry, again and again, for as long as the page is open. */
  scheduleRenewal() {
    clearTimeout(this.renewTimer);
    if (this.kind !== "guest" || !this.data.expiresAt) return;
    const left = this.data.expiresAt * 1000 - Date.now();
    const delay = Math.max(1000, left - Math.min(RENEW_MARGIN_MS, left / 2));
    this.renewTimer = setTimeout(async () => {
      try {
        if (await this.renew()) this.scheduleRenewal(); // refused: the next 4001 asks the user
      } catch {
        this.renewTimer = setTimeout(() => this.scheduleRenewal(), RENEW_RETRY_MS);
      }
    }, delay);
  }

  keep(data) {
    this.data = data;
    writeJson(STORAGE_KEY, data);
  }

  forget() {
    clearTimeout(this.renewTimer);
    this.data = null;
    localStorage.removeItem(STORAGE_KEY);
  }

  /** Sign out: the server drops the cookie, the page forgets the token. */
  async signOut() {
    this.forget();
    await fetch("/api/session", { method: "DELETE" }).catch(() => {});
  }
}

function postJson(url, body) {
  return fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
    cache: "no-store",
  });
}

async function reasonOf(response) {
  try {
    return (await response.json()).reason || `HTTP ${response.status}`;
  } catch {
    return `HTTP ${response.status}`;
  }
}

/** The claims of a JWT, unverified: only to tell a malformed or expired one at once. */
function decodeClaims(token) {
  const part = token.split(".")[1];
  if (!part) return null;
  try {
    const json = atob(part.replace(/-/g, "+").replace(/_/g, "/"));
    const text = new TextDecoder().decode(Uint8Array.from(json, (c) => c.charCodeAt(0)));
    const claims = JSON.parse(text);
    return claims && typeof claims === "object" ? claims : null;
  } catch {
    return null;
  }
}
