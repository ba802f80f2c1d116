// The search box in the top bar. It searches as the user types (after a short
// pause, or at once on Enter), taking the last word typed as a prefix, so
// "deploy" finds "deployment" (GET /api/search with "deploy*"). Hits are
// listed best first: room, author, local time, and the text with the query's
// words marked; the status says how many of how many matches are shown. What
// users wrote goes in as text nodes and <mark> elements, never as HTML.
// Choosing a hit hands it to the room controller, which opens its room at that
// message. Arrow keys move through the hits, Escape closes.

import { element } from "./dom.js";
import { limits } from "./limits.js";
import { nameLabel } from "./people.js";

const TYPING_PAUSE_MS = 300; // search once the typing pauses this long
const EXCERPT_CHARS = 240; // a longer text is cut around its first match
const EXCERPT_LEAD = 60; // characters kept before that match
const WORD = /[\p{L}\p{N}\p{M}]+/gu; // what the server's index counts as a word

export class Search {
  /** @param {object} hooks find(query): Promise of the API's answer; choose(hit) */
  constructor(hooks) {
    this.hooks = hooks;
    this.form = document.getElementById("search-form");
    this.input = document.getElementById("search");
    this.panel = document.getElementById("search-results");
    this.status = document.getElementById("search-status");
    this.list = document.getElementById("search-hits");
    this.input.maxLength = limits.max_search_query_chars;
    this.asked = 0; // numbers the queries: only the latest one's answer is shown
    this.current = null; // the query sent last, while its answer is on the way or shown
    this.timer = 0;
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.run();
    });
    this.input.addEventListener("input", () => {
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.run(), TYPING_PAUSE_MS);
    });
    this.form.addEventListener("keydown", (event) => this.key(event));
    this.form.addEventListener("focusout", (event) => {
      if (event.relatedTarget && !this.form.contains(event.relatedTarget)) this.close();
    });
    document.addEventListener("pointerdown", (event) => {
      if (!this.form.contains(event.target)) this.close();
    });
  }

  async run() {
    clearTimeout(this.timer);
    const typed = this.input.value.trim();
    if (!typed) {
      this.close();
      return;
    }
    const query = prefixed(this.input.value);
    if (query === this.current) return; // already asked, and shown or on its way
    this.current = query;
    const asked = ++this.asked;
    this.list.replaceChildren();
    this.show("Searching…");
    let answer;
    try {
      answer = await this.hooks.find(query);
    } catch (error) {
      if (asked === this.asked) {
        this.current = null;
        this.show(failure(error));
      }
      return;
    }
    if (asked !== this.asked) return; // closed, or another query was asked meanwhile
    const terms = termsOf(query);
    this.list.replaceChildren(...answer.hits.map((hit) => this.item(hit, terms)));
    this.show(summary(answer, typed));
  }

  show(text) {
    this.status.textContent = text;
    this.panel.hidden = false;
  }

  close() {
    clearTimeout(this.timer);
    this.asked += 1; // an answer still on its way is not shown
    this.current = null;
    this.panel.hidden = true;
  }

  key(event) {
    if (event.key === "Escape" && !this.panel.hidden) {
      event.preventDefault(); // keep the query (a search field clears itself on Escape)
      this.close();
      this.input.focus();
      return;
    }
    if (event.key !== "ArrowDown" && event.key !== "ArrowUp") return;
    const hits = [...this.list.querySelectorAll("button")];
    if (this.panel.hidden || !hits.length) return;
    event.preventDefault();
    const next = hits.indexOf(document.activeElement) + (event.key === "ArrowDown" ? 1 : -1);
    if (next < 0) this.input.focus();
    else hits[Math.min(next, hits.length - 1)].focus();
  }

  item(hit, terms) {
    const when = new Date(hit.ts);
    const time = element("time", "", when.toLocaleString([], { dateStyle: "medium", timeStyle: "short" }));
    time.dateTime = when.toISOString();
    const meta = element("span", "hit-meta");
    meta.append(element("span", "hit-room", `#${hit.room}`), " ", ...nameLabel(hit.user), " ", time);
    const text = element("span", "hit-text");
    text.dir = "auto";
    text.append(...highlighted(excerpt(hit.text, terms), terms));
    const button = element("button", "hit");
    button.type = "button";
    button.dataset.room = hit.room;
    button.dataset.seq = String(hit.seq);
    button.append(meta, text);
    button.addEventListener("click", () => {
      this.close();
      this.hooks.choose(hit);
    });
    const li = element("li");
    li.append(button);
    return li;
  }
}

/** "3 results", or "Top 50 of 330" when the server matched more than it listed. */
function summary(answer, typed) {
  const shown = answer.hits.length;
  if (!shown) return `No messages match “${typed}”.`;
  const total = answer.total ?? shown;
  if (total <= shown && !answer.total_capped) {
    return `${shown} result${shown === 1 ? "" : "s"} for “${typed}”`;
  }
  return `Top ${shown} of ${total}${answer.total_capped ? "+" : ""} for “${typed}”`;
}

/** The query as sent: the last word is a prefix while the user may still be typing it. */
function prefixed(raw) {
  const query = raw.trim();
  return /\s$/.test(raw) || query.endsWith("*") ? query : `${query}*`;
}

function failure(error) {
  if (error.status === 501) return "Search is not available on this server.";
  if (error.status) return `Search failed (HTTP ${error.status}). Please try again.`;
  return "Cannot reach the server. Please try again.";
}

/** The query's words as the server matches them: letters and digits, without case or
 * accents; a trailing "*" makes a word a prefix. */
function termsOf(query) {
  const terms = [];
  for (const word of query.split(/\s+/)) {
    const parts = word.match(WORD) ?? [];
    parts.forEach((part, i) => {
      terms.push({ text: fold(part), prefix: word.endsWith("*") && i === parts.length - 1 });
    });
  }
  return terms;
}

function fold(word) {
  return word.normalize("NFD").replace(/\p{M}/gu, "").toLowerCase();
}

function matches(word, terms) {
  const folded = fold(word);
  return terms.some((term) => (term.prefix ? folded.startsWith(term.text) : folded === term.text));
}

/** A long text cut to about EXCERPT_CHARS around its first matching word. */
function excerpt(text, terms) {
  if (text.length <= EXCERPT_CHARS) return text;
  const first = [...text.matchAll(WORD)].find((m) => matches(m[0], terms))?.index ?? 0;
  const start = Math.max(0, Math.min(first - EXCERPT_LEAD, text.length - EXCERPT_CHARS));
  const end = start + EXCERPT_CHARS;
  return `${start > 0 ? "…" : ""}${text.slice(start, end)}${end < text.length ? "…" : ""}`;
}

/** Text nodes, with each word that matches the query in a <mark>. */
function highlighted(text, terms) {
  const parts = [];
  let last = 0;
  for (const match of text.matchAll(WORD)) {
    if (!matches(match[0], terms)) continue;
    parts.push(text.slice(last, match.index), element("mark", "", match[0]));
    last = match.index + match[0].length;
  }
  parts.push(text.slice(last));
  return parts.filter((part) => part !== "");
}
