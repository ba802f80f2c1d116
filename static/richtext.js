// A message's text as DOM nodes: a small, safe part of Markdown (*emphasis*,
// **strong**, `code`, ``` code blocks ```, > quotes), links and @mentions.
// Built with createElement and text nodes only: no HTML is ever parsed, so no
// text can become markup, whatever it holds. Unmatched markers stay as typed.

import { element } from "./dom.js";

const FENCE = /^```[^`]*$/; // a line that opens or closes a code block
const QUOTE = /^> ?/;
const MAX_DEPTH = 5; // quotes and emphasis nested deeper than this stay text
// A link starts with http(s):// or www. after a non-word character, and runs to a space.
const LINK = /(?:https?:\/\/|www\.)[^\s<>"]+/iy;
const LINK_TRAILER = ".,;:!?*_'\u2019\u201d";
const MENTION = /@([\p{L}\p{N}_.-]*[\p{L}\p{N}_])/uy;
const WORD_CHAR = /[\p{L}\p{N}_]/u;

/**
 * The nodes of `text`, to append to a message. `me` is the reader's display
 * name: mentions of it get the class "me".
 */
export function renderText(text, me = "") {
  const fragment = document.createDocumentFragment();
  fragment.append(...blocks(text, folded(me), 0));
  return fragment;
}

/** Whether `text` mentions `name` ("@Maya" or "@MayaChen" for "Maya Chen"). */
export function mentions(text, name) {
  const me = folded(name);
  for (let i = text.indexOf("@"); i >= 0; i = text.indexOf("@", i + 1)) {
    const found = mentionAt(text, i);
    if (found && isMe(found.slice(1), me)) return true;
  }
  return false;
}

function blocks(text, me, depth) {
  const lines = text.split("\n");
  const out = [];
  let i = 0;
  const take = (belongs) => {
    const taken = [];
    while (i < lines.length && belongs(lines[i])) taken.push(lines[i++]);
    return taken;
  };
  while (i < lines.length) {
    if (FENCE.test(lines[i])) {
      i += 1;
      const code = take((line) => !/^```\s*$/.test(line));
      i += 1; // the closing fence; an unclosed block runs to the end, as in CommonMark
      const pre = element("pre");
      pre.dir = "ltr";
      pre.append(element("code", "", code.join("\n")));
      out.push(pre);
    } else if (QUOTE.test(lines[i]) && depth < MAX_DEPTH) {
      const quoted = take((line) => QUOTE.test(line)).map((line) => line.replace(QUOTE, ""));
      const quote = element("blockquote");
      quote.append(...blocks(quoted.join("\n"), me, depth + 1));
      out.push(quote);
    } else {
      const plain = take((line) => !FENCE.test(line) && !(QUOTE.test(line) && depth < MAX_DEPTH));
      out.push(...inline(plain.join("\n"), me, depth));
    }
  }
  return out;
}

/** Code spans, links, mentions and emphasis within one paragraph. */
function inline(text, me, depth) {
  const out = [];
  let plain = "";
  const push = (node) => {
    if (plain) out.push(plain);
    plain = "";
    out.push(node);
  };
  let i = 0;
  while (i < text.length) {
    const char = text[i];
    const boundary = i === 0 || !WORD_CHAR.test(text[i - 1]);
    let found = null;
    if (char === "`") {
      found = codeSpanAt(text, i);
    } else if (boundary && /[hHwW]/.test(char)) {
      found = linkAt(text, i);
    } else if (boundary && char === "@") {
      const mention = mentionAt(text, i);
      if (mention) {
        const node = element("span", isMe(mention.slice(1), me) ? "mention me" : "mention", mention);
        found = { node, end: i + mention.length };
      }
    } else if ((char === "*" || (char === "_" && boundary)) && depth < MAX_DEPTH) {
      found = emphasisAt(text, i, me, depth);
    }
    if (found) {
      push(found.node);
      i = found.end;
    } else {
      plain += char;
      i += 1;
    }
  }
  if (plain) out.push(plain);
  return out;
}

function codeSpanAt(text, i) {
  let run = 1;
  while (text[i + run] === "`") run += 1;
  const fence = "`".repeat(run);
  for (let end = text.indexOf(fence, i + run); end >= 0; end = text.indexOf(fence, end + 1)) {
    // the closing run must be exactly as long as the opening one
    if (text[end + run] === "`") {
      while (text[end + run] === "`") end += 1;
      continue;
    }
    return { node: element("code", "", text.slice(i + run, end)), end: end + run };
  }
  return { node: document.createTextNode(fence), end: i + run };
}

function linkAt(text, i) {
  LINK.lastIndex = i;
  const match = LINK.exec(text);
  if (!match) return null;
  const url = trimLink(match[0]);
  if (/^(?:https?:\/\/|www\.)$/i.test(url)) return null;
  const link = element("a", "", url);
  link.href = /^www\./i.test(url) ? `https://${url}` : url;
  link.target = "_blank";
  link.rel = "noopener noreferrer nofollow";
  return { node: link, end: i + url.length };
}

/** A link without the punctuation after it: a closing bracket stays only when balanced. */
function trimLink(url) {
  for (;;) {
    const last = url[url.length - 1];
    const unbalanced = (open, close) => last === close && count(url, open) < count(url, close);
    if (LINK_TRAILER.includes(last) || unbalanced("(", ")") || unbalanced("[", "]")) {
      url = url.slice(0, -1);
    } else {
      return url;
    }
  }
}

function count(text, char) {
  return text.split(char).length - 1;
}

function mentionAt(text, i) {
  if (i > 0 && WORD_CHAR.test(text[i - 1])) return null; // an e-mail address
  MENTION.lastIndex = i;
  return MENTION.exec(text)?.[0] ?? null;
}

function isMe(handle, me) {
  const name = folded(handle);
  return Boolean(me) && (name === me.replace(/\s+/g, "") || name === me.split(/\s+/)[0]);
}

function folded(text) {
  return text.normalize("NFD").replace(/\p{M}/gu, "").toLowerCase().trim();
}

/**
 * **strong**, *emphasis* (or __ and _) starting at i: the marker must touch the text
 * inside, and _ must not stand inside a word (snake_case stays as typed).
 */
function emphasisAt(text, i, me, depth) {
  const char = text[i];
  const doubled = text[i + 1] === char;
  for (const size of doubled ? [2, 1] : [1]) {
    const inner = i + size;
    if (inner >= text.length || /\s/.test(text[inner])) continue;
    const end = closerOf(text, char, size, inner);
    if (end < 0) continue;
    const node = element(size === 2 ? "strong" : "em");
    node.append(...inline(text.slice(inner, end), me, depth + 1));
    return { node, end: end + size };
  }
  return null;
}

/** Where the closing marker of `size` characters is, or -1. */
function closerOf(text, char, size, from) {
  for (let at = text.indexOf(char, from + 1); at >= 0; at = text.indexOf(char, at + 1)) {
    let run = 1;
    while (text[at + run] === char) run += 1;
    const end = at + run - size; // a longer run closes with its last characters
    const closes = run >= size && (size === 2 || run === 1)
      && !/\s/.test(text[at - 1])
      && !(char === "_" && WORD_CHAR.test(text[at + run] ?? ""));
    if (closes && end > from) return end;
    at += run - 1;
  }
  return -1;
}
