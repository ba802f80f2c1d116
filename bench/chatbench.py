"""chatbench: drive a running chatapp server over the JSON protocol and report one run.

Three measurements, in this order, against ``ws://HOST:PORT/ws``:

connect
    N clients connect to one fresh room; per client, the time from starting the
    connection to its first ``history`` frame (what a user waits for).
fan-out
    S of those N clients send at an aggregate target rate for D seconds. Every
    receiver (the senders too: the protocol echoes to the sender) counts what it
    gets by ``client_id``, so loss and duplicates are per receiver. Latency is
    send -> receive on one monotonic clock, which is exact because sender and
    receivers live in this process.
durable
    S fresh connections in a separate room keep W messages each in flight and
    count ``ack`` frames per second: an ack means committed, so this is the
    write path's throughput without the fan-out's cost.

Only loopback URLs are accepted, every count and duration is capped, and the
whole run has a hard timeout. A Python client with ~1000 sockets is CPU-bound
itself; the report shows this process's CPU so such runs can be recognised.
Headline figures come from the shared Node load generator (see README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import ipaddress
import json
import resource
import secrets
import sys
import time
from array import array
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tornado.httpclient import HTTPRequest
from tornado.websocket import WebSocketClientConnection, WebSocketClosedError, websocket_connect

#: Not a valid room name, so it cannot collide with a real one.
RANDOM_ROOM = "bench-<random>"
EXIT_FAILED = 1
EXIT_TIMEOUT = 3

MAX_CLIENTS = 5000
MAX_SENDERS = 1000
MAX_RATE = 100_000.0
MAX_DURATION = 300.0
#: The server stops reading a connection with 64 uncommitted messages, so a
#: larger window only measures that stall.
MAX_WINDOW = 64
#: Every delivery keeps one latency sample (8 bytes) and one set entry.
MAX_DELIVERIES = 20_000_000
#: Big enough for a full history page; the server caps frames it sends anyway.
MAX_FRAME_BYTES = 16 * 1024 * 1024
PROBE_TIMEOUT = 5.0
POLL_SECONDS = 0.01
#: Frames no measurement needs; recognised by prefix to skip ``json.loads``,
#: which matters when every join sends presence to a room of 1000.
SKIPPED_PREFIXES = ('{"type":"presence"', '{"type":"typing"', '{"type":"hello"')

NS_PER_S = 1_000_000_000
NS_PER_MS = 1_000_000


class BenchError(Exception):
    """A condition that ends the run with one line on stderr (bad URL, server down)."""


def now_ns() -> int:
    """The one clock of the run: monotonic, shared by senders and receivers."""
    return time.perf_counter_ns()


def percentiles(samples: Sequence[float]) -> dict[str, float | None]:
    """Nearest-rank p50/p90/p99 and max in ms, rounded; ``None`` without samples."""
    ordered = sorted(samples)
    if not ordered:
        return {"p50": None, "p90": None, "p99": None, "max": None}

    def rank(p: float) -> float:
        index = min(len(ordered) - 1, max(0, int(-(-p * len(ordered) // 100)) - 1))
        return round(ordered[index], 2)

    return {"p50": rank(50), "p90": rank(90), "p99": rank(99), "max": round(ordered[-1], 2)}


# --- per-phase counters -------------------------------------------------------


@dataclass(slots=True)
class Tally:
    """What one phase observed, shared by all its clients.

    ``prefix`` starts every ``client_id`` this phase sends, so frames left over
    from an earlier phase (or another run in the same room) are not counted.
    """

    prefix: str
    sent: int = 0
    send_errors: int = 0
    delivered: int = 0
    duplicates: int = 0
    stale: int = 0
    acks: int = 0
    acks_in_window: int = 0
    closes: int = 0
    bad_frames: int = 0
    window_end_ns: int = 0
    last_delivery_ns: int = 0
    latencies_ms: array[float] = field(default_factory=lambda: array("d"))
    ack_latencies_ms: array[float] = field(default_factory=lambda: array("d"))
    errors: Counter[str] = field(default_factory=Counter)
    #: Called with a sender once one of its messages is answered: closed loop.
    refill: Callable[[BenchClient], None] | None = None


# --- one connection -------------------------------------------------------------


class BenchClient:
    """One WebSocket connection that counts what it receives.

    Frames are handled in tornado's ``on_message_callback`` rather than a read
    loop: a coroutine wake-up per frame per client is the largest cost of the
    client side at 1000 connections.
    """

    def __init__(self, index: int, tally: Tally) -> None:
        self.index = index
        self.tally = tally
        self.conn: WebSocketClientConnection | None = None
        self.room = ""
        self.seq = 0
        self.seen: set[str] = set()
        self.pending: dict[str, int] = {}
        self.started_ns = 0
        self.history_ns = 0
        self.history_messages = 0
        self.error: str | None = None
        self.closed = False
        self.closing = False
        self._ready: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    @property
    def ready(self) -> bool:
        """Connected and given history: from here on it must see every message."""
        return self.history_ns > 0 and not self.closed

    async def connect(self, url: str, room: str, within: float) -> bool:
        """Open the socket and wait for the first ``history`` frame (or fail)."""
        self.room = room
        self.started_ns = now_ns()
        request = HTTPRequest(url, connect_timeout=within, request_timeout=within)
        try:
            self.conn = await websocket_connect(
                request, on_message_callback=self._on_frame, max_message_size=MAX_FRAME_BYTES
            )
            return await asyncio.wait_for(asyncio.shield(self._ready), within)
        except TimeoutError:
            self.error = f"no history within {within:g} s"
        except Exception as exc:  # any connect failure is a result, reported once
            self.error = describe(exc)
        self.close()
        return False

    def close(self) -> None:
        """Close without counting it as an unexpected close."""
        self.closing = True
        if self.conn is not None:
            self.conn.close()

    def send(self) -> None:
        """Post one message stamped with a unique ``client_id`` and the send time."""
        tally = self.tally
        if self.conn is None or self.closed:
            tally.send_errors += 1
            return
        self.seq += 1
        sent_ns = now_ns()
        client_id = f"{tally.prefix}{self.index}.{self.seq}"
        text = f"chatbench {self.index}:{self.seq} t={sent_ns}"
        frame = json.dumps(
            {"type": "message", "room": self.room, "text": text, "client_id": client_id},
            separators=(",", ":"),
        )
        try:
            self.conn.write_message(frame).add_done_callback(self._sent)
        except WebSocketClosedError:
            tally.send_errors += 1
            return
        self.pending[client_id] = sent_ns
        tally.sent += 1

    def _sent(self, future: asyncio.Future[None]) -> None:
        if not future.cancelled() and future.exception() is not None:
            self.tally.send_errors += 1

    # --- receiving ---------------------------------------------------------

    def _on_frame(self, raw: str | bytes | None) -> None:
        if raw is None:
            self._on_close()
            return
        if isinstance(raw, str) and raw.startswith(SKIPPED_PREFIXES):
            return
        received_ns = now_ns()
        try:
            frame = json.loads(raw)
            kind = frame["type"]
        except (ValueError, TypeError, KeyError):
            self.tally.bad_frames += 1
            return
        if kind == "message":
            self._on_message(frame, received_ns)
        elif kind == "ack":
            self._on_answer(frame.get("client_id"), received_ns, acked=True)
        elif kind == "history":
            self._on_history(frame, received_ns)
        elif kind == "error":
            self.tally.errors[str(frame.get("code"))] += 1
            self._on_answer(frame.get("ref"), received_ns, acked=False)

    def _on_message(self, frame: dict[str, Any], received_ns: int) -> None:
        tally = self.tally
        client_id = frame.get("client_id")
        if not isinstance(client_id, str) or not client_id.startswith(tally.prefix):
            tally.stale += 1
            return
        if client_id in self.seen:
            tally.duplicates += 1
            return
        self.seen.add(client_id)
        sent_ns = int(str(frame.get("text", "")).rpartition(" t=")[2] or received_ns)
        tally.latencies_ms.append((received_ns - sent_ns) / NS_PER_MS)
        tally.delivered += 1
        tally.last_delivery_ns = received_ns

    def _on_answer(self, client_id: object, received_ns: int, *, acked: bool) -> None:
        """An ack or an error about one of our messages frees a window slot."""
        sent_ns = self.pending.pop(client_id, None) if isinstance(client_id, str) else None
        if sent_ns is None:
            return
        tally = self.tally
        if acked:
            tally.acks += 1
            tally.ack_latencies_ms.append((received_ns - sent_ns) / NS_PER_MS)
            if received_ns <= tally.window_end_ns:
                tally.acks_in_window += 1
        if tally.refill is not None:
            tally.refill(self)

    def _on_history(self, frame: dict[str, Any], received_ns: int) -> None:
        if self.history_ns:
            return
        self.history_ns = received_ns
        messages = frame.get("messages")
        self.history_messages = len(messages) if isinstance(messages, list) else 0
        if not self._ready.done():
            self._ready.set_result(True)

    def _on_close(self) -> None:
        if not self.closed and not self.closing:
            self.tally.closes += 1
            code = self.conn.close_code if self.conn is not None else None
            reason = self.conn.close_reason if self.conn is not None else None
            self.error = f"closed by server ({code} {reason or ''})".strip()
        self.closed = True
        if not self._ready.done():
            self._ready.set_result(False)


def describe(exc: BaseException) -> str:
    """One line for a connection failure, without a traceback."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# --- setup -------------------------------------------------------------------------


def ws_url(url: str, room: str) -> str:
    """The JSON endpoint for ``room``: path ``/ws`` unless given, other parameters kept.

    Refuses anything but ws:// to a loopback host, so a mistyped URL cannot
    point this load at someone else's server.
    """
    parts = urlsplit(url)
    if parts.scheme != "ws":
        raise BenchError(f"--url must start with ws://, not {url!r}")
    host = parts.hostname or ""
    if host != "localhost":
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise BenchError(f"refusing non-loopback host {host!r}: this tool only loads loopback")
    path = parts.path if parts.path not in ("", "/") else "/ws"
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "room"] + [("room", room)]
    return urlunsplit((parts.scheme, parts.netloc, path, urlencode(query), ""))


def ensure_file_limit(sockets: int) -> None:
    """Raise the open-file limit so N sockets fit, or fail before connecting any."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = sockets + 64
    if soft != resource.RLIM_INFINITY and soft < needed:
        if hard != resource.RLIM_INFINITY and hard < needed:
            raise BenchError(f"{sockets} sockets need ulimit -n >= {needed}, hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


async def probe(url: str, room: str) -> None:
    """One connection first, so an unreachable server is one clear line, not N errors."""
    client = BenchClient(-1, Tally(prefix="probe."))
    ok = await client.connect(url, room, PROBE_TIMEOUT)
    client.close()
    if not ok:
        raise BenchError(f"server not reachable at {url}: {client.error}")


async def connect_all(
    url: str, room: str, count: int, tally: Tally, concurrency: int, within: float
) -> list[BenchClient]:
    """Connect ``count`` clients, at most ``concurrency`` handshakes at a time."""
    gate = asyncio.Semaphore(concurrency)
    clients = [BenchClient(i, tally) for i in range(count)]

    async def one(client: BenchClient) -> None:
        async with gate:
            await client.connect(url, room, within)

    await asyncio.gather(*(one(c) for c in clients))
    return clients


def connect_report(clients: Sequence[BenchClient]) -> dict[str, Any]:
    """Connect-to-history times of the clients that got history, plus the failures."""
    ready = [c for c in clients if c.history_ns]
    times = [(c.history_ns - c.started_ns) / NS_PER_MS for c in ready]
    failures = Counter(c.error for c in clients if not c.history_ns)
    return {
        "clients": len(clients),
        "with_history": len(ready),
        "history_ms": percentiles(times),
        "history_messages_max": max((c.history_messages for c in ready), default=None),
        "failures": dict(failures.most_common(3)),
    }


async def close_all(clients: Sequence[BenchClient]) -> None:
    for client in clients:
        client.close()
    await asyncio.sleep(0.2)  # let the close handshakes go out before the next phase


# --- fan-out ---------------------------------------------------------------------


def fresh_phase(clients: Sequence[BenchClient], tally: Tally) -> None:
    """Point every client at a new tally and forget what the last phase saw."""
    for client in clients:
        client.tally = tally
        client.seen = set()
        client.pending = {}


async def send_paced(senders: Sequence[BenchClient], rate: float, duration: float) -> array[float]:
    """Send ``rate * duration`` messages round-robin on a fixed schedule.

    Returns how late each send was against its schedule (ms): if that grows,
    this process could not keep up and the run measures the client.
    """
    total = round(rate * duration)
    interval_ns = NS_PER_S / rate
    start = now_ns()
    lag = array("d")
    k = 0
    while k < total:
        now = now_ns()
        due = min(total, int((now - start) / interval_ns) + 1)
        while k < due:
            lag.append(max(0.0, (now_ns() - start - k * interval_ns) / NS_PER_MS))
            senders[k % len(senders)].send()
            k += 1
        wait_ns = start + k * interval_ns - now_ns()
        await asyncio.sleep(max(0.0, wait_ns / NS_PER_S))
    return lag


async def drain(done: Callable[[], bool], grace: float) -> None:
    """Wait until ``done()`` or ``grace`` seconds pass: late frames still count."""
    deadline = now_ns() + grace * NS_PER_S
    # Polled, not event-driven: a wake-up per delivered frame would cost more.
    for _ in range(int(grace / POLL_SECONDS) + 1):
        if done() or now_ns() >= deadline:
            return
        await asyncio.sleep(POLL_SECONDS)


async def run_fanout(
    clients: Sequence[BenchClient], senders: int, rate: float, duration: float, grace: float
) -> dict[str, Any]:
    """Paced senders, every ready client a receiver; deliveries, loss, dups, latency."""
    receivers = [c for c in clients if c.ready]
    tally = Tally(prefix=f"{secrets.token_hex(3)}.f.")
    fresh_phase(receivers, tally)
    cpu0, start = time.process_time(), now_ns()
    lag = await send_paced(receivers[:senders], rate, duration)
    send_end = now_ns()

    def expected() -> int:  # re-read while draining: late send callbacks still count
        return tally.sent * len(receivers)

    await drain(lambda: tally.delivered >= expected(), grace)
    wall = (now_ns() - start) / NS_PER_S
    short = sum(1 for c in receivers if len(c.seen) < tally.sent)
    delivering = max(tally.last_delivery_ns - start, 1) / NS_PER_S
    return {
        "receivers": len(receivers),
        "senders": min(senders, len(receivers)),
        "rate_target": rate,
        "duration_s": duration,
        "sent": tally.sent,
        "send_errors": tally.send_errors,
        "achieved_msg_per_s": round(tally.sent / max((send_end - start) / NS_PER_S, 1e-9), 1),
        "expected": expected(),
        "delivered": tally.delivered,
        "lost": expected() - tally.delivered,
        "duplicates": tally.duplicates,
        "receivers_short": short,
        "deliveries_per_s": round(tally.delivered / delivering),
        "latency_ms": percentiles(tally.latencies_ms),
        "send_lag_ms": percentiles(lag),
        "stale": tally.stale,
        "closes": tally.closes,
        "errors": dict(tally.errors),
        "bench_cpu_pct": round(100 * (time.process_time() - cpu0) / wall, 1),
    }


# --- durable writes ------------------------------------------------------------


async def run_durable(
    url: str, senders: int, window: int, duration: float, grace: float, within: float
) -> dict[str, Any]:
    """Closed loop: each sender keeps ``window`` messages unacknowledged; count acks/s.

    Runs on fresh connections in a room of their own, so the figure is the
    commit path (plus an echo to S members), not the N-way fan-out.
    """
    room = f"bench-w-{secrets.token_hex(4)}"
    url = ws_url(url, room)
    tally = Tally(prefix=f"{secrets.token_hex(3)}.d.")
    clients = await connect_all(url, room, senders, tally, senders, within)
    ready = [c for c in clients if c.ready]
    if not ready:
        await close_all(clients)
        raise BenchError(f"no durable-phase sender connected: {clients[0].error}")

    def refill(client: BenchClient) -> None:
        if now_ns() < tally.window_end_ns:
            client.send()

    cpu0, start = time.process_time(), now_ns()
    tally.window_end_ns = start + int(duration * NS_PER_S)
    tally.refill = refill
    for client in ready:
        for _ in range(window):
            client.send()
    await asyncio.sleep(duration)
    await drain(lambda: all(not c.pending for c in ready), grace)
    wall = (now_ns() - start) / NS_PER_S
    unanswered = sum(len(c.pending) for c in ready)
    await close_all(clients)
    return {
        "room": room,
        "senders": len(ready),
        "window": window,
        "duration_s": duration,
        "sent": tally.sent,
        "acks": tally.acks,
        "acks_per_s": round(tally.acks_in_window / duration, 1),
        "ack_latency_ms": percentiles(tally.ack_latencies_ms),
        "unanswered": unanswered,
        "closes": tally.closes,
        "errors": dict(tally.errors),
        "bench_cpu_pct": round(100 * (time.process_time() - cpu0) / wall, 1),
    }


# --- the run ---------------------------------------------------------------------


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Probe, connect N, fan out, close, then the durable closed loop."""
    url = ws_url(args.url, args.room)
    ensure_file_limit(args.clients + args.senders)
    await probe(url, args.room)
    setup = Tally(prefix="setup.")
    clients = await connect_all(
        url, args.room, args.clients, setup, args.concurrency, args.ready_timeout
    )
    connect = connect_report(clients)
    if not connect["with_history"]:
        await close_all(clients)
        raise BenchError(f"no client got its history: {connect['failures']}")
    gc.freeze()  # the connection objects live all run; keep them out of GC passes
    try:
        fanout = await run_fanout(clients, args.senders, args.rate, args.duration, args.grace)
    finally:
        await close_all(clients)
    durable = await run_durable(
        args.url, args.senders, args.window, args.duration, args.grace, args.ready_timeout
    )
    return {
        "tool": "chatbench",
        "ts": datetime.now(UTC).isoformat(timespec="seconds"),
        "url": url,
        "room": args.room,
        "connect": connect,
        "fanout": fanout,
        "durable": durable,
    }


def fmt(stats: dict[str, float | None]) -> str:
    return " ".join(f"{k}={v}" for k, v in stats.items())


def print_report(r: dict[str, Any]) -> None:
    """The human-readable summary: one block per measurement."""
    c, f, d = r["connect"], r["fanout"], r["durable"]
    print(f"chatbench {r['url']}")
    print(
        f"connect  {c['with_history']}/{c['clients']} clients got history; "
        f"connect->history ms {fmt(c['history_ms'])}"
        + (f"; failures {c['failures']}" if c["failures"] else "")
    )
    print(
        f"fan-out  {f['receivers']} receivers, {f['senders']} senders, "
        f"target {f['rate_target']:g} msg/s for {f['duration_s']:g} s: "
        f"sent {f['sent']} ({f['achieved_msg_per_s']}/s), "
        f"delivered {f['delivered']}/{f['expected']}, lost {f['lost']}, "
        f"dup {f['duplicates']}, receivers short {f['receivers_short']}"
    )
    print(
        f"         deliveries/s {f['deliveries_per_s']}; latency ms {fmt(f['latency_ms'])}; "
        f"send lag ms p99={f['send_lag_ms']['p99']}; bench cpu {f['bench_cpu_pct']}%"
    )
    print(
        f"durable  {d['senders']} senders x window {d['window']} for {d['duration_s']:g} s: "
        f"acks/s {d['acks_per_s']} ({d['acks']} acks of {d['sent']} sent, "
        f"{d['unanswered']} unanswered); ack latency ms {fmt(d['ack_latency_ms'])}; "
        f"bench cpu {d['bench_cpu_pct']}%"
    )
    trouble = {
        "fan-out errors": f["errors"],
        "fan-out closes": f["closes"],
        "fan-out send errors": f["send_errors"],
        "durable errors": d["errors"],
        "durable closes": d["closes"],
    }
    for label, value in trouble.items():
        if value:
            print(f"warning  {label}: {value}")
    if "rate_limited" in f["errors"] or "rate_limited" in d["errors"]:
        print("warning  the server rate-limits: start it with --rate-limit 0 to benchmark")
    if max(f["bench_cpu_pct"], d["bench_cpu_pct"]) > 90:
        print("warning  this process used ~one full core: figures measure the client too")


# --- command line ------------------------------------------------------------------


def bounded(kind: type[int] | type[float], low: float, high: float) -> Callable[[str], Any]:
    """An argparse type that keeps a number within [low, high]: the self-imposed bounds."""

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low:g} and {high:g}")
        return value

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python bench/chatbench.py",
        description="Benchmark a running chatapp server over its JSON WebSocket protocol: "
        "connect-to-history time, fan-out (delivery rate, loss, duplicates, latency) "
        "and durable (acknowledged) writes per second.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--url",
        default="ws://127.0.0.1:3000",
        help="server URL, loopback only; path defaults to /ws, other query parameters "
        "(e.g. token=...) are kept",
    )
    parser.add_argument(
        "--clients",
        metavar="N",
        type=bounded(int, 1, MAX_CLIENTS),
        default=100,
        help="clients in the room",
    )
    parser.add_argument(
        "--senders",
        metavar="S",
        type=bounded(int, 1, MAX_SENDERS),
        default=10,
        help="clients that send (they also receive); also the durable-phase senders",
    )
    parser.add_argument(
        "--rate",
        metavar="R",
        type=bounded(float, 0.1, MAX_RATE),
        default=100.0,
        help="fan-out: aggregate messages per second over all senders",
    )
    parser.add_argument(
        "--duration",
        metavar="D",
        type=bounded(float, 0.5, MAX_DURATION),
        default=5.0,
        help="seconds of sending, for fan-out and for the durable phase each",
    )
    parser.add_argument(
        "--window",
        metavar="W",
        type=bounded(int, 1, MAX_WINDOW),
        default=8,
        help="durable phase: messages each sender keeps unacknowledged",
    )
    parser.add_argument(
        "--room",
        default=RANDOM_ROOM,
        help="fan-out room; the default is a fresh one, so runs never mix",
    )
    parser.add_argument(
        "--grace",
        metavar="SECONDS",
        type=bounded(float, 0, 60),
        default=3.0,
        help="seconds to wait for stragglers",
    )
    parser.add_argument(
        "--concurrency",
        metavar="C",
        type=bounded(int, 1, 1000),
        default=100,
        help="simultaneous connection handshakes",
    )
    parser.add_argument(
        "--ready-timeout",
        metavar="SECONDS",
        type=bounded(float, 1, 300),
        default=30.0,
        help="seconds one client may take to connect and get history",
    )
    parser.add_argument(
        "--timeout",
        metavar="SECONDS",
        type=bounded(float, 5, 3600),
        default=180.0,
        help="hard limit on the whole run, in seconds",
    )
    parser.add_argument(
        "--json", action="store_true", help="also print the result as one JSON object, last line"
    )
    return parser


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Cross-option bounds argparse types cannot express."""
    if args.senders > args.clients:
        parser.error("--senders cannot exceed --clients")
    deliveries = args.rate * args.duration * args.clients
    if deliveries > MAX_DELIVERIES:
        parser.error(
            f"rate x duration x clients = {deliveries:.0f} deliveries, over {MAX_DELIVERIES}"
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    check_args(parser, args)
    if args.room == RANDOM_ROOM:
        args.room = f"bench-{secrets.token_hex(4)}"
    try:
        result = asyncio.run(asyncio.wait_for(run(args), args.timeout))
    except BenchError as exc:
        print(f"chatbench: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except TimeoutError:
        print(f"chatbench: error: hard timeout after {args.timeout:g} s", file=sys.stderr)
        return EXIT_TIMEOUT
    except KeyboardInterrupt:
        return EXIT_FAILED
    print_report(result)
    if args.json:
        print(json.dumps(result, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
