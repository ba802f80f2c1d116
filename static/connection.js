// One WebSocket to /ws that comes back by itself. It knows nothing about
// rooms or messages: it sends and receives JSON frames, paces what it sends
// to stay under the server's published rate limit, and after a drop
// reconnects with exponential backoff and jitter, asking its owner first what
// the close means (an expired token is not fixed by retrying).

import { limits } from "./limits.js";

const BACKOFF_BASE_MS = 1000;
const BACKOFF_CAP_MS = 30000;
// A connection that lived this long was healthy: the next drop starts the backoff afresh.
const STABLE_AFTER_MS = 10000;
// Send at most this share of the server's rate and burst, to stay clear of both.
const RATE_SHARE = 0.8;
const BURST_SHARE = 0.75;

export class Connection {
  /**
   * @param {object} owner
   *   url(): the ws:// URL to open now (room, since; never a token)
   *   frame(object), dropped(code): lifecycle
   *   decide({code, opened}): Promise of "now" | "retry" | "stop" after a close
   *   status(state, retryAt): "connecting" | "online" | "waiting" | "offline" | "stopped"
   */
  constructor(owner) {
    this.owner = owner;
    this.socket = null;
    this.running = false;
    this.attempt = 0;
    this.timer = 0;
    this.openedAt = 0;
    this.deciding = false;
    this.queue = [];
    this.tokens = 0; // frames that may go out now; refilled at the paced rate up to the burst
    this.refilledAt = 0;
    this.pumpTimer = 0;
    window.addEventListener("online", () => this.reconnectNow());
    window.addEventListener("offline", () => {
      if (!this.isOpen && this.running) this.owner.status("offline");
    });
  }

  get isOpen() {
    return this.socket?.readyState === WebSocket.OPEN;
  }

  start() {
    this.running = true;
    this.open();
  }

  stop() {
    this.running = false;
    clearTimeout(this.timer);
    this.detach()?.close(1000);
    this.owner.status("stopped");
  }

  /** Skip the wait (the network came back, the user asked). */
  reconnectNow() {
    if (this.running && !this.socket && !this.deciding) this.open();
  }

  /** Drop a connection that looks dead (no reply in time) and open a fresh one. */
  restart() {
    if (!this.running) return;
    const socket = this.detach();
    if (socket) {
      socket.close();
      this.owner.dropped(1006);
    }
    this.open();
  }

  /**
   * Queue a frame for the open socket; false (and dropped) when there is none.
   * `sent()` is called when the frame actually leaves (pacing may hold it a while).
   */
  send(frame, sent = () => {}) {
    if (!this.isOpen) return false;
    this.queue.push({ data: JSON.stringify(frame), sent });
    this.pump();
    return true;
  }

  pump() {
    clearTimeout(this.pumpTimer);
    const perSecond = limits.rate_limit * RATE_SHARE; // 0: the server sets no limit
    const burst = Math.max(1, Math.floor(limits.rate_burst * BURST_SHARE));
    const now = performance.now();
    this.tokens = Math.min(burst, this.tokens + ((now - this.refilledAt) / 1000) * perSecond);
    this.refilledAt = now;
    while (this.queue.length && (!perSecond || this.tokens >= 1) && this.isOpen) {
      const { data, sent } = this.queue.shift();
      this.socket.send(data);
      sent();
      this.tokens -= 1;
    }
    if (this.queue.length && this.isOpen) {
      this.pumpTimer = setTimeout(() => this.pump(), 1000 / perSecond);
    }
  }

  open() {
    clearTimeout(this.timer);
    this.owner.status("connecting");
    const socket = new WebSocket(this.owner.url());
    let opened = false;
    this.socket = socket;
    socket.onopen = () => {
      opened = true;
      this.openedAt = Date.now();
      this.owner.status("online");
    };
    socket.onmessage = (event) => {
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return; // not ours to show: the JSON endpoint only sends JSON
      }
      this.owner.frame(frame);
    };
    socket.onclose = (event) => this.closed(socket, event.code, opened);
  }

  detach() {
    const socket = this.socket;
    this.socket = null;
    this.queue = []; // frames meant for that connection; the owner resends what matters
    if (socket) socket.onopen = socket.onmessage = socket.onclose = null;
    return socket;
  }

  async closed(socket, code, opened) {
    if (socket !== this.socket) return;
    this.detach();
    this.owner.dropped(code);
    if (!this.running) return;
    if (opened && Date.now() - this.openedAt >= STABLE_AFTER_MS) this.attempt = 0;
    this.owner.status("connecting");
    this.deciding = true;
    const next = await this.owner.decide({ code, opened }).finally(() => {
      this.deciding = false;
    });
    if (!this.running || this.socket) return;
    if (next === "stop") {
      this.running = false;
      this.owner.status("stopped");
    } else if (next === "now") {
      this.open();
    } else {
      this.retryLater();
    }
  }

  retryLater() {
    // Exponential backoff with jitter: after a restart, clients do not all return at once.
    const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** this.attempt);
    const delay = ceiling / 2 + (Math.random() * ceiling) / 2;
    this.attempt += 1;
    const retryAt = Date.now() + delay;
    this.owner.status(navigator.onLine ? "waiting" : "offline", retryAt);
    this.timer = setTimeout(() => this.open(), delay);
  }
}
