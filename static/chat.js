// Minimal browser client for room #general: history, live messages, sending
// with pending/sent state. Every user string is inserted as text, never HTML.
const list = document.getElementById("messages");
const status = document.getElementById("status");
const form = document.getElementById("composer");
const input = document.getElementById("text");
const room = "general";
const pending = new Map(); // client_id -> <li>
let socket;
let lastSeq = 0;
let retryDelay = 500;

function render(message, extraClass) {
  const item = document.createElement("li");
  if (extraClass) item.className = extraClass;
  const author = document.createElement("span");
  author.className = "author";
  author.textContent = message.user.name;
  const time = document.createElement("time");
  const when = message.ts ? new Date(message.ts) : new Date();
  time.dateTime = when.toISOString();
  time.textContent = when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  const text = document.createElement("span");
  text.className = "text";
  text.textContent = message.text;
  item.append(time, author, text);
  return item;
}

function show(message) {
  if (message.seq <= lastSeq) return; // already shown
  lastSeq = message.seq;
  const mine = message.client_id && pending.get(message.client_id);
  const item = render(message);
  if (mine) {
    mine.replaceWith(item);
    pending.delete(message.client_id);
  } else {
    list.append(item);
  }
  item.scrollIntoView({ block: "end" });
}

function connect() {
  const url = new URL("/ws", location.href);
  url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  url.searchParams.set("room", room);
  if (lastSeq) url.searchParams.set("since", String(lastSeq));
  socket = new WebSocket(url);
  socket.onopen = () => { status.textContent = "connected"; retryDelay = 500; };
  socket.onclose = () => {
    status.textContent = "reconnecting…";
    setTimeout(connect, retryDelay * (0.5 + Math.random()));
    retryDelay = Math.min(retryDelay * 2, 15000);
  };
  socket.onmessage = (event) => {
    const frame = JSON.parse(event.data);
    if (frame.type === "history") frame.messages.forEach(show);
    else if (frame.type === "message") show(frame);
    else if (frame.type === "error") status.textContent = `error: ${frame.reason}`;
  };
}

function send() {
  const text = input.value;
  if (!text.trim() || !socket || socket.readyState !== WebSocket.OPEN) return;
  const clientId = crypto.randomUUID();
  const item = render({ user: { name: "you" }, text }, "pending");
  pending.set(clientId, item);
  list.append(item);
  socket.send(JSON.stringify({ type: "message", room, text, client_id: clientId }));
  input.value = "";
}

form.addEventListener("submit", (event) => { event.preventDefault(); send(); });
input.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); send(); }
});
connect();
