"""``python -m bench.soak``: a soak and chaos run that checks exactly-once, in-order delivery.

Thousands of clients (one process, asyncio) live in a handful of rooms for
``--duration`` seconds: they send (some messages near 4000 characters),
leave and rejoin rooms, join new ones, drop and reconnect, and some stop
reading for a while (a small receive buffer, so the server sees a slow
consumer and may close them with 4003). In the middle the server is killed
with SIGKILL and restarted on the same data and port. Every client resumes
with ``since`` = the last seq it accepted, and resends what was not acked
with the same ``client_id`` (after ``unavailable`` too).

Then everyone catches up, the server stops, and the run checks (see
``bench.delivery``) that every stored message reached every member exactly
once and in seq order, that every ack is in the database, and that nothing
was stored twice. It reports the server's RSS and open file descriptors over
time, error frames by code and close codes. Exit status 1 on any violation.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import secrets
import shutil
import sqlite3
import sys
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import jwt
from sqlalchemy.engine import make_url

from bench import delivery, prefill
from bench.databases import Databases, databases
from bench.delivery import Ack, Stored, StreamLog
from bench.procs import Child, Processes, run_tool
from bench.servers import DEFAULT_SERVER_CMD, schema_maker, start_chatapp
from bench.system import RESULTS, BenchError, open_fds, port_or_free, raise_fd_limit, tree_rss_kib
from bench.wsclient import HandshakeError, WebSocket, connect

EXIT_VIOLATION = 1
JWT_ENV = "CHATAPP_JWT_SECRET"
#: The soak's server: default limits except a small backlog, so slow readers meet 4003.
SOAK_SERVER_CMD = DEFAULT_SERVER_CMD.replace(" --rate-limit 0", "") + " --max-client-backlog 65536"
#: Errors after which a message is sent again, unchanged (same client_id).
RETRYABLE = {"unavailable", "rate_limited"}
RETRY_DELAY = (0.5, 2.0)
MAX_TEXT = 4000
HISTORY_PAGE = 200
SLOW_RECEIVE_BUFFER = 8192
CONNECTS_AT_ONCE = 100
SETTLE_POLL = 0.5
LONG_TEXT = "Long message with accents (é, ü), CJK (日本語) and emoji (🙂) to count characters. "


@dataclass(frozen=True)
class SoakConfig:
    duration: float
    clients: int
    rooms: int
    rooms_per_client: int
    send_interval: float
    long_share: float
    slow_share: float
    pause: tuple[float, float]
    away: tuple[float, float]
    leave_share: float
    reconnect_share: float
    join_share: float
    kill_at: float
    down: float
    sample_interval: float
    settle_timeout: float
    ramp: float
    seed: int


@dataclass
class RoomState:
    """A client's view of one room."""

    name: str
    log: StreamLog | None = None  # from the first history page on
    state: str = "out"  # out | joining | in | backfill
    wanted: bool = True  # False between a leave and the rejoin
    left_here: bool = False  # a leave was sent on this connection: drop its stragglers
    pages: list[list[dict[str, Any]]] = field(default_factory=list)  # backfill, newest first
    held: list[dict[str, Any]] = field(default_factory=list)  # live while backfilling


class World:
    """What all clients observed, and the run's counters."""

    def __init__(self, config: SoakConfig) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.acks: list[Ack] = []
        self.max_acked: dict[str, int] = {}
        self.delivered: dict[tuple[str, int], int] = {}
        self.text_crc: dict[str, int] = {}
        self.counts: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.closes: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()
        self.port = 0
        self.deadline = 0.0
        self.settling = False
        self.finished = False
        self.connect_slots = asyncio.Semaphore(CONNECTS_AT_ONCE)
        self.behind: list[str] = []  # clients that did not catch up, described

    def observe(self, room: str, message: dict[str, Any]) -> None:
        """A message a client accepted: same id for everyone, text as sent."""
        self.counts["deliveries"] += 1
        key = (room, message["seq"])
        known = self.delivered.setdefault(key, message["id"])
        if known != message["id"]:
            self.counts["conflicting_ids"] += 1
        crc = self.text_crc.get(message.get("client_id") or "")
        if crc is not None and crc != zlib.crc32(message["text"].encode()):
            self.counts["corrupt_text"] += 1

    def acked(self, frame: dict[str, Any]) -> None:
        self.acks.append(Ack(frame["client_id"], frame["room"], frame["seq"], frame["id"]))
        room = frame["room"]
        self.max_acked[room] = max(self.max_acked.get(room, 0), frame["seq"])


class SoakClient:
    """One user with one connection at a time, its rooms, and its unacknowledged messages."""

    def __init__(self, world: World, index: int, rooms: list[str], token: str, slow: bool) -> None:
        self.world = world
        self.name = f"c{index}"
        self.token = token
        self.slow = slow
        self.rooms = {room: RoomState(room) for room in rooms}
        self.pending: dict[str, tuple[str, str]] = {}
        self.conn: WebSocket | None = None
        self.dropped = asyncio.Event()
        self.paused = False
        self.closing = False
        self.away_until = 0.0
        self._sent = 0

    # --- connection ----------------------------------------------------------

    async def stay_connected(self) -> None:
        delay = 0.2
        while not self.world.finished:
            if self.conn is None:
                try:
                    async with self.world.connect_slots:
                        await self._open()
                    delay = 0.2
                except (OSError, TimeoutError, HandshakeError) as exc:
                    self.world.refused[_reason(exc)] += 1
                    await asyncio.sleep(delay * random.uniform(0.5, 1.5))
                    delay = min(delay * 2, 5.0)
                    continue
            await self.dropped.wait()
            self.dropped.clear()
            loop = asyncio.get_running_loop()
            await asyncio.sleep(max(random.uniform(0.05, 1.0), self.away_until - loop.time()))

    async def _open(self) -> None:
        first = next((st for st in self.rooms.values() if st.wanted), None)
        first = first or next(iter(self.rooms.values()))
        target = f"/ws?room={first.name}"
        if first.log is not None:
            target += f"&since={first.log.last}"

        def opened(conn: WebSocket) -> None:
            # The rooms to join are read now, not before the handshake: a
            # come_back that fires while it runs finds no connection to join on.
            self.conn, self.closing = conn, False
            self.world.counts["connects"] += 1
            first.wanted, first.state = True, "joining"
            for st in list(self.rooms.values()):
                if st.wanted and st is not first:
                    self._join(st)
            if self.paused:
                conn.pause_reading()

        await connect(
            self.world.port,
            target,
            on_open=opened,
            on_text=self._on_text,
            on_close=self._on_close,
            headers={"Authorization": f"Bearer {self.token}"},
            receive_buffer=SLOW_RECEIVE_BUFFER if self.slow else 0,
        )

    def _on_close(self, code: int | None) -> None:
        conn, self.conn = self.conn, None
        if conn is not None and conn.broken:
            self.world.counts["broken_frames"] += 1
        if not (self.world.finished or self.closing):
            self.world.closes[str(code) if code is not None else "dropped"] += 1
        for st in self.rooms.values():
            st.state, st.left_here = "out", False
            st.pages.clear()
            st.held.clear()
        self.dropped.set()

    def reconnect(self, away: float) -> None:
        """Go offline for ``away`` seconds; ``stay_connected`` then reconnects and resumes."""
        if self.conn is not None:
            self.closing = True
            self.away_until = asyncio.get_running_loop().time() + away
            self.world.counts["reconnects"] += 1
            self.conn.close()

    def _send(self, frame: dict[str, Any]) -> None:
        if self.conn is not None:
            self.conn.send_text(json.dumps(frame, ensure_ascii=False))

    def _join(self, st: RoomState) -> None:
        frame: dict[str, Any] = {"type": "join", "room": st.name}
        if st.log is not None:
            frame["since"] = st.log.last
        st.wanted, st.state = True, "joining"
        self._send(frame)
        self.world.counts["joins"] += 1

    # --- frames --------------------------------------------------------------

    def _on_text(self, text: str) -> None:
        try:
            frame = json.loads(text)
            kind = frame["type"]
        except (ValueError, KeyError, TypeError):
            self.world.counts["bad_frames"] += 1
            return
        if kind == "message":
            self._on_message(frame)
        elif kind == "history":
            self._on_history(frame)
        elif kind == "ack":
            if self.pending.pop(frame["client_id"], None) is not None:
                self.world.counts["acked"] += 1
            self.world.acked(frame)
        elif kind == "error":
            self._on_error(frame)

    def _on_message(self, message: dict[str, Any]) -> None:
        st = self.rooms.get(message["room"])
        if st is None or st.state == "out" or (st.state == "joining" and st.left_here):
            return  # sent before our leave took effect; the resume brings it back
        if st.state == "in":
            self._accept(st, message)
        elif st.state == "backfill":
            st.held.append(message)
        else:
            self.world.counts["live_before_history"] += 1
            self._accept(st, message)  # a server bug: the checker sees where it lands

    def _on_history(self, frame: dict[str, Any]) -> None:
        st = self.rooms.get(frame["room"])
        if st is None:
            return
        messages: list[dict[str, Any]] = frame["messages"]
        if st.state == "joining":
            if st.log is None:
                st.log = StreamLog(messages[0]["seq"] - 1 if messages else 0)
            elif messages and messages[0]["seq"] > st.log.last + 1 and frame["has_more"]:
                st.state, st.pages = "backfill", [messages]  # more missed than one replay
                self._page_back(st, messages[0]["seq"])
                return
            st.state, st.left_here = "in", False
            self._accept_all(st, messages)
            self._resend(st.name)
        elif st.state == "backfill":
            st.pages.insert(0, messages)
            if messages and messages[0]["seq"] > st.log.last + 1:  # type: ignore[union-attr]
                self._page_back(st, messages[0]["seq"])
                return
            st.state = "in"
            for page in st.pages:
                self._accept_all(st, page)
            self._accept_all(st, st.held)
            st.pages.clear()
            st.held.clear()
            self._resend(st.name)
        elif st.state == "in":
            self._accept_all(st, messages)  # a replay after since, in several pages

    def _page_back(self, st: RoomState, before: int) -> None:
        assert st.log is not None
        limit = min(HISTORY_PAGE, before - st.log.last - 1)
        self._send({"type": "history", "room": st.name, "before": before, "limit": limit})
        self.world.counts["backfill_pages"] += 1

    def _accept_all(self, st: RoomState, messages: list[dict[str, Any]]) -> None:
        for message in messages:
            self._accept(st, message)

    def _accept(self, st: RoomState, message: dict[str, Any]) -> None:
        if st.log is None:
            st.log = StreamLog(message["seq"] - 1)
        st.log.add(message["seq"])
        self.world.observe(st.name, message)

    def _on_error(self, frame: dict[str, Any]) -> None:
        code = str(frame.get("code"))
        self.world.errors[code] += 1
        ref, room = frame.get("ref"), frame.get("room")
        if ref in self.pending:
            if code in RETRYABLE:
                asyncio.get_running_loop().call_later(
                    random.uniform(*RETRY_DELAY), self._transmit, ref
                )
            else:
                del self.pending[ref]
                self.world.counts["rejected"] += 1
        elif room in self.rooms and self.rooms[room].state == "joining":
            asyncio.get_running_loop().call_later(
                random.uniform(*RETRY_DELAY), self._rejoin, self.rooms[room]
            )

    def _rejoin(self, st: RoomState) -> None:
        if self.conn is not None and st.wanted and st.state in ("joining", "out"):
            self._join(st)

    # --- messages ------------------------------------------------------------

    def post(self, room: str, long: bool) -> None:
        self._sent += 1
        client_id = f"{self.name}-{self._sent}"
        text = _text(self.world.rng, client_id, long)
        self.world.text_crc[client_id] = zlib.crc32(text.encode())
        self.pending[client_id] = (room, text)
        self.world.counts["posted"] += 1
        if long:
            self.world.counts["posted_long"] += 1
        self._transmit(client_id)

    def _transmit(self, client_id: str) -> None:
        entry = self.pending.get(client_id)
        if entry is None or self.conn is None or self.rooms[entry[0]].state != "in":
            return  # acked meanwhile, or it goes again once the room is back
        room, text = entry
        self._send({"type": "message", "room": room, "text": text, "client_id": client_id})
        self.world.counts["transmitted"] += 1

    def _resend(self, room: str) -> None:
        for client_id, (where, _text) in list(self.pending.items()):
            if where == room:
                self._transmit(client_id)
                self.world.counts["resent"] += 1

    # --- behaviour -----------------------------------------------------------

    async def live(self) -> None:
        """Act until the deadline: mostly send; sometimes leave, join, or reconnect."""
        world, rng, c = self.world, self.world.rng, self.world.config
        loop = asyncio.get_running_loop()
        while loop.time() < world.deadline:
            await asyncio.sleep(rng.expovariate(1 / c.send_interval))
            if self.conn is None or loop.time() >= world.deadline:
                continue
            joined = [st for st in self.rooms.values() if st.state == "in"]
            roll = rng.random()
            if roll < c.leave_share and joined:
                self._leave_for_a_while(rng.choice(joined), rng.uniform(2, 10))
            elif roll < c.leave_share + c.join_share:
                self._join_another(rng)
            elif roll < c.leave_share + c.join_share + c.reconnect_share:
                self.reconnect(rng.uniform(*c.away))
            elif joined:
                self.post(rng.choice(joined).name, rng.random() < c.long_share)

    def _leave_for_a_while(self, st: RoomState, seconds: float) -> None:
        if any(room == st.name for room, _ in self.pending.values()):
            return  # its messages are in flight: stay until they are acked
        self._send({"type": "leave", "room": st.name})
        st.wanted, st.state, st.left_here = False, "out", True
        self.world.counts["leaves"] += 1
        asyncio.get_running_loop().call_later(seconds, self.come_back, st)

    def come_back(self, st: RoomState) -> None:
        st.wanted = True
        if self.conn is not None and st.state == "out":
            self._join(st)

    def _join_another(self, rng: random.Random) -> None:
        c = self.world.config
        if len(self.rooms) >= c.rooms_per_client + 2:
            return
        room = f"soak-{rng.randrange(c.rooms)}"
        if room not in self.rooms:
            self.rooms[room] = st = RoomState(room)
            self._join(st)

    async def read_slowly(self) -> None:
        """A slow reader: stops reading for a while, now and then, until the deadline."""
        world, rng, c = self.world, self.world.rng, self.world.config
        loop = asyncio.get_running_loop()
        while loop.time() < world.deadline:
            await asyncio.sleep(rng.uniform(10, 30))
            self.paused = True
            if self.conn is not None:
                self.conn.pause_reading()
                world.counts["pauses"] += 1
            await asyncio.sleep(min(rng.uniform(*c.pause), max(0.0, world.deadline - loop.time())))
            self.resume()

    def resume(self) -> None:
        self.paused = False
        if self.conn is not None:
            self.conn.resume_reading()

    def caught_up(self) -> bool:
        """Connected, in every room, nothing unacked, and no acked message still unseen."""
        if self.conn is None or self.pending:
            return False
        for st in self.rooms.values():
            if st.state != "in" or st.log is None:
                return False
            if st.log.last < self.world.max_acked.get(st.name, 0):
                return False
        return True

    def describe(self) -> str:
        """Why this client is not caught up: its connection and each room's state."""
        rooms = ", ".join(
            f"{st.name}:{st.state}@{st.log.last if st.log else None}"
            f"/{self.world.max_acked.get(st.name, 0)}"
            for st in self.rooms.values()
        )
        link = "connected" if self.conn is not None else "disconnected"
        if self.paused:
            link += ", paused"
        return f"{self.name} {link}, {len(self.pending)} unacked; {rooms}"


def _text(rng: random.Random, client_id: str, long: bool) -> str:
    if long:
        size = rng.randint(MAX_TEXT - 200, MAX_TEXT)
        body = (LONG_TEXT * (size // len(LONG_TEXT) + 1))[: size - len(client_id) - 1]
        return f"{client_id} {body}"
    return f"{client_id} " + " ".join(rng.choices(WORDS, k=rng.randint(2, 30)))


#: Short messages are a few of these words (plus the client_id, so each text is unique).
WORDS = ("chat", "server", "fsync", "ack", "room", "seq", "resume", "since", "quick", "fox")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, HandshakeError):
        return str(exc)[:60]
    return type(exc).__name__


# --- the server ----------------------------------------------------------------


@dataclass
class Sample:
    t: float
    pid: int | None
    rss_kib: int | None
    fds: int | None
    connected: int
    deliveries: int
    acked: int
    #: This process's CPU since the previous sample, in % of one core (near 100: it is the limit).
    soak_cpu_pct: float


class Server:
    """The chatapp process under soak: started, killed, restarted, sampled."""

    def __init__(
        self, procs: Processes, template: str, db: str, data_dir: Path, port: int, secret: str
    ) -> None:
        self.procs, self.template, self.db, self.data_dir = procs, template, db, data_dir
        self.port, self.env = port, {JWT_ENV: secret}
        self.child: Child | None = None
        self.lifetimes: list[int] = []
        self._cpu = (time.process_time(), time.monotonic())

    def start(self) -> None:
        self.child = start_chatapp(
            self.procs, self.template, port=self.port, db=self.db, data_dir=self.data_dir,
            cores=None, env=self.env,
        )  # fmt: skip
        self.lifetimes.append(self.child.pid)

    def kill(self) -> None:
        if self.child is not None:
            self.child.kill()
            self.child = None

    def stop(self) -> int | None:
        if self.child is None:
            return None
        if not self.child.running():
            raise BenchError(f"the server died during the soak:\n{self.child.tail()}")
        code = self.child.stop()
        self.child = None
        return code

    def sample(self, t: float, clients: list[SoakClient], world: World) -> Sample:
        cpu, wall = time.process_time(), time.monotonic()
        busy = (cpu - self._cpu[0]) * 100 / max(1e-6, wall - self._cpu[1])
        self._cpu = (cpu, wall)
        pid = self.child.pid if self.child is not None and self.child.running() else None
        rss = fds = None
        if pid is not None:
            try:
                rss, fds = tree_rss_kib(pid), open_fds(pid)
            except OSError:
                pid = None
        connected = sum(1 for c in clients if c.conn is not None)
        return Sample(round(t, 1), pid, rss, fds, connected, world.counts["deliveries"],
                      world.counts["acked"], round(busy, 1))  # fmt: skip


# --- the run -------------------------------------------------------------------


async def soak(
    config: SoakConfig, server: Server, world: World
) -> tuple[list[SoakClient], list[Sample]]:
    """Run the clients and the chaos, settle, stop the server; what the clients saw."""
    loop = asyncio.get_running_loop()
    rng = world.rng
    secret = server.env[JWT_ENV]
    expires = int(time.time() + config.duration + config.settle_timeout + 3600)
    clients = []
    for i in range(config.clients):
        rooms = rng.sample(range(config.rooms), min(config.rooms, config.rooms_per_client))
        token = jwt.encode({"sub": f"soak-{i}", "name": f"soak{i}", "exp": expires}, secret)
        slow = rng.random() < config.slow_share
        clients.append(SoakClient(world, i, [f"soak-{r}" for r in rooms], token, slow))
    start = loop.time()
    world.deadline = start + config.duration
    samples: list[Sample] = []
    tasks: list[asyncio.Task[None]] = []

    async def ramp(client: SoakClient, delay: float) -> None:
        await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(client.stay_connected()))
        await client.live()

    for i, client in enumerate(clients):
        tasks.append(asyncio.create_task(ramp(client, config.ramp * i / max(1, config.clients))))
        if client.slow:
            tasks.append(asyncio.create_task(client.read_slowly()))

    async def sampler() -> None:
        while not world.finished:
            samples.append(server.sample(loop.time() - start, clients, world))
            _progress(samples[-1], world)
            await asyncio.sleep(config.sample_interval)

    async def chaos() -> None:
        if not config.kill_at:
            return
        await asyncio.sleep(config.duration * config.kill_at)
        print("[soak] kill -9 the server", file=sys.stderr, flush=True)
        server.kill()
        world.counts["kills"] += 1
        await asyncio.sleep(config.down)
        await asyncio.to_thread(server.start)
        print("[soak] server restarted", file=sys.stderr, flush=True)

    sampling = asyncio.create_task(sampler())
    await chaos()
    await asyncio.sleep(max(0.0, world.deadline - loop.time()))
    # settle: everyone reads, rejoins, resends and catches up
    world.settling = True
    for client in clients:
        client.resume()
        for st in client.rooms.values():
            if not st.wanted:
                client.come_back(st)
    for _ in range(int(config.settle_timeout / SETTLE_POLL)):
        if all(c.caught_up() for c in clients):
            break
        await asyncio.sleep(SETTLE_POLL)
    behind = [c for c in clients if not c.caught_up()]
    world.counts["not_caught_up"] = len(behind)
    world.behind = [c.describe() for c in behind[:10]]
    world.finished = True
    samples.append(server.sample(loop.time() - start, clients, world))
    await asyncio.to_thread(server.stop)
    for task in [*tasks, sampling]:
        task.cancel()
    await asyncio.gather(*tasks, sampling, return_exceptions=True)
    for client in clients:
        if client.conn is not None:
            client.conn.abort()
    return clients, samples


def _progress(sample: Sample, world: World) -> None:
    state = f"rss {sample.rss_kib} KiB fds {sample.fds}" if sample.pid else "server down"
    print(
        f"[soak] t={sample.t:>6}s {state}; connected {sample.connected}; "
        f"acked {sample.acked}; deliveries {sample.deliveries}; errors {dict(world.errors)}; "
        f"soak cpu {sample.soak_cpu_pct}%",
        file=sys.stderr,
        flush=True,
    )


def stored_rows(dbs: Databases, db: str) -> list[Stored]:
    """Every message row of the soak's database (read after the server stopped)."""
    query = "SELECT room, seq, id, client_id FROM messages"
    if dbs.kind == "sqlite":
        path = make_url(db).database
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as con:
            return [Stored(*row) for row in con.execute(query)]

    async def fetch() -> list[Stored]:
        url = make_url(db).set(drivername="postgresql").render_as_string(hide_password=False)
        con = await prefill.import_asyncpg().connect(url)
        try:
            return [Stored(*row) for row in await con.fetch(query)]
        finally:
            await con.close()

    return asyncio.run(fetch())


def summary(
    config: SoakConfig,
    report: delivery.Report,
    world: World,
    samples: list[Sample],
    lifetimes: list[int],
) -> dict[str, Any]:
    """The run's figures as one JSON-able object."""
    problems = {k: world.counts[k] for k in RUNTIME_PROBLEMS if world.counts[k]}
    return {
        "ts": datetime.now(UTC).isoformat(timespec="seconds"),
        "ok": report.ok and not problems,
        "config": {k: v for k, v in config.__dict__.items()},
        "delivery": report.counts(),
        "runtime_problems": problems,
        "examples": report.examples + [f"not caught up: {text}" for text in world.behind],
        "counts": dict(world.counts),
        "error_frames": dict(world.errors),
        "close_codes": dict(world.closes),
        "connect_refusals": dict(world.refused),
        "memory": memory_trend(samples, lifetimes),
        "samples": [s.__dict__ for s in samples],
    }


#: Counted while running; any of them fails the soak like a delivery violation.
RUNTIME_PROBLEMS = (
    "conflicting_ids",
    "corrupt_text",
    "broken_frames",
    "bad_frames",
    "live_before_history",
    "not_caught_up",
)


def memory_trend(samples: list[Sample], lifetimes: list[int]) -> list[dict[str, Any]]:
    """Per server process: RSS and fds (minus connections) after warm-up and at the end."""
    trend = []
    for pid in lifetimes:
        mine = [s for s in samples if s.pid == pid and s.rss_kib is not None]
        if len(mine) < 2:
            continue
        warm = mine[len(mine) // 3]  # after a third of its life: connections are up
        end = mine[-1]
        assert warm.rss_kib is not None and end.rss_kib is not None
        assert warm.fds is not None and end.fds is not None
        trend.append(
            {
                "pid": pid,
                "warm_t": warm.t,
                "end_t": end.t,
                "rss_warm_kib": warm.rss_kib,
                "rss_end_kib": end.rss_kib,
                "rss_growth_pct": round((end.rss_kib - warm.rss_kib) * 100 / warm.rss_kib, 1),
                "fds_less_connections_warm": warm.fds - warm.connected,
                "fds_less_connections_end": end.fds - end.connected,
            }
        )
    return trend


def print_report(result: dict[str, Any]) -> None:
    print("\n## soak: server over time\n")
    print("| t (s) | pid | RSS (KiB) | open fds | connected | acked | deliveries | soak CPU % |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for s in result["samples"]:
        print(
            f"| {s['t']} | {s['pid'] or 'down'} | {s['rss_kib'] or ''} | {s['fds'] or ''} | "
            f"{s['connected']} | {s['acked']} | {s['deliveries']} | {s['soak_cpu_pct']} |"
        )
    print("\n## soak: memory and descriptors per server process (after warm-up -> end)\n")
    for t in result["memory"]:
        print(
            f"- pid {t['pid']}: RSS {t['rss_warm_kib']} -> {t['rss_end_kib']} KiB "
            f"({t['rss_growth_pct']:+}%), fds beyond connections {t['fds_less_connections_warm']}"
            f" -> {t['fds_less_connections_end']}"
        )
    print("\n## soak: delivery\n")
    for key, value in result["delivery"].items():
        print(f"- {key}: {value}")
    print(f"- runtime problems: {result['runtime_problems'] or 'none'}")
    print(f"- error frames by code: {result['error_frames'] or 'none'}")
    print(f"- close codes: {result['close_codes'] or 'none'}")
    print(f"- refused connects: {result['connect_refusals'] or 'none'}")
    print(f"- activity: {result['counts']}")
    for example in result["examples"]:
        print(f"  - {example}")
    print(f"\nsoak: {'PASS' if result['ok'] else 'FAIL'}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.soak",
        description=__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of activity")
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--rooms", type=int, default=50)
    parser.add_argument("--rooms-per-client", type=int, default=3)
    parser.add_argument(
        "--send-interval", type=float, default=20.0, help="mean seconds between a client's actions"
    )
    parser.add_argument("--long-share", type=float, default=0.05, help="messages near 4000 chars")
    parser.add_argument("--slow-share", type=float, default=0.05, help="clients that pause")
    parser.add_argument(
        "--pause", type=float, nargs=2, default=(10.0, 40.0), metavar=("MIN", "MAX"),
        help="seconds a slow reader stops reading",
    )  # fmt: skip
    parser.add_argument(
        "--away", type=float, nargs=2, default=(1.0, 30.0), metavar=("MIN", "MAX"),
        help="seconds a client that drops its connection stays offline",
    )  # fmt: skip
    parser.add_argument("--leave-share", type=float, default=0.03, help="actions that leave")
    parser.add_argument("--join-share", type=float, default=0.02, help="actions that join")
    parser.add_argument("--reconnect-share", type=float, default=0.02, help="actions that drop")
    parser.add_argument(
        "--kill-at", type=float, default=0.5, help="kill -9 at this share of the run (0: never)"
    )
    parser.add_argument("--down", type=float, default=2.0, help="seconds the server stays dead")
    parser.add_argument("--sample-interval", type=float, default=10.0, help="seconds")
    parser.add_argument(
        "--settle-timeout", type=float, default=120.0, help="seconds to catch up at the end"
    )
    parser.add_argument("--ramp", type=float, default=None, help="seconds to connect everyone")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--db", metavar="URL", help="postgresql+asyncpg://... (default: SQLite)")
    parser.add_argument(
        "--server-cmd", default=SOAK_SERVER_CMD, metavar="TEMPLATE",
        help="chatapp command with {python} {port} {db} {data_dir}",
    )  # fmt: skip
    parser.add_argument("--port", type=int, default=0, help="server port (0: a free one)")
    parser.add_argument(
        "--results", type=Path, default=RESULTS / "soak.jsonl", help="JSON line appended here"
    )
    return parser


def config_from(args: argparse.Namespace) -> SoakConfig:
    return SoakConfig(
        duration=args.duration,
        clients=args.clients,
        rooms=args.rooms,
        rooms_per_client=args.rooms_per_client,
        send_interval=args.send_interval,
        long_share=args.long_share,
        slow_share=args.slow_share,
        pause=(args.pause[0], args.pause[1]),
        away=(args.away[0], args.away[1]),
        leave_share=args.leave_share,
        reconnect_share=args.reconnect_share,
        join_share=args.join_share,
        kill_at=args.kill_at,
        down=args.down,
        sample_interval=args.sample_interval,
        settle_timeout=args.settle_timeout,
        ramp=args.ramp if args.ramp is not None else min(60.0, args.duration / 10),
        seed=args.seed,
    )


def run(args: argparse.Namespace) -> int:
    config = config_from(args)
    raise_fd_limit(config.clients * 2 + 1024)
    work = Path(tempfile.mkdtemp(prefix="chatapp-soak-"))
    (work / "logs").mkdir()
    procs = Processes(work / "logs")
    dbs = databases(args.db, schema_maker(procs), work)
    try:
        data_dir = work / "data"
        db = dbs.fresh(data_dir)
        world = World(config)
        world.port = port_or_free(args.port)
        server = Server(procs, args.server_cmd, db, data_dir, world.port, secrets.token_hex(32))
        server.start()
        print(f"[soak] {config.clients} clients for {config.duration:g} s on port {world.port}",
              file=sys.stderr, flush=True)  # fmt: skip
        clients, samples = asyncio.run(soak(config, server, world))
        streams = [
            st.log.freeze(c.name, st.name) if st.log else delivery.Stream(c.name, st.name, None)
            for c in clients
            for st in c.rooms.values()
        ]
        report = delivery.check(streams, world.acks, stored_rows(dbs, db), world.delivered)
        result = summary(config, report, world, samples, server.lifetimes)
        print_report(result)
        args.results.parent.mkdir(parents=True, exist_ok=True)
        with args.results.open("a") as out:
            out.write(json.dumps(result) + "\n")
        return 0 if result["ok"] else EXIT_VIOLATION
    finally:
        procs.close()
        dbs.close()
        shutil.rmtree(work, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.clients < 1 or args.rooms < 1 or args.rooms_per_client < 1 or args.duration <= 0:
        parser.error("--clients, --rooms, --rooms-per-client and --duration must be positive")
    return run_tool("soak", partial(run, args))


if __name__ == "__main__":
    sys.exit(main())
