// The message box. Enter sends, Shift+Enter is a new line (and Enter in the
// middle of an IME composition is the IME's). The counter shows the server's
// length limit in code points, as the server counts. Typing notices go out at
// most every few seconds: they count against the server's rate limit.

import { limits } from "./limits.js";
const TYPING_EVERY_MS = 3000;

export class Composer {
  /** @param {object} hooks send(text): the text was sent; typing(): true if a notice went out */
  constructor(hooks) {
    this.hooks = hooks;
    this.form = document.getElementById("composer");
    this.input = document.getElementById("text");
    this.label = document.getElementById("text-label");
    this.counter = document.getElementById("counter");
    this.button = document.getElementById("send");
    this.typingSent = 0;
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    this.input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.submit();
      }
    });
    this.input.addEventListener("input", () => {
      this.changed();
      this.typing();
    });
    this.changed();
  }

  /** Another room is open: new label, and the next keystroke may announce typing there. */
  setRoom(name) {
    this.label.textContent = `Message #${name}`;
    this.input.placeholder = `Message #${name}`;
    this.typingSent = 0;
  }

  focus() {
    this.input.focus();
  }

  submit() {
    const text = this.input.value;
    if (!text.trim() || [...text].length > limits.max_text_chars) return;
    this.input.value = "";
    this.typingSent = 0;
    this.changed();
    this.hooks.send(text);
  }

  typing() {
    if (!this.input.value.trim() || Date.now() - this.typingSent < TYPING_EVERY_MS) return;
    if (this.hooks.typing()) this.typingSent = Date.now();
  }

  changed() {
    const length = [...this.input.value].length;
    const most = limits.max_text_chars;
    const over = length - most;
    this.counter.textContent = over > 0 ? `${length} / ${most}: ${over} too many` : `${length} / ${most}`;
    this.counter.dataset.state = over > 0 ? "over" : length > most * 0.9 ? "near" : "";
    this.button.disabled = !this.input.value.trim() || over > 0;
    this.input.style.height = "auto"; // grow with the text, up to the CSS max-height
    this.input.style.height = `${this.input.scrollHeight + 2}px`;
  }
}
