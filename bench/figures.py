"""The figures of issue 10, each measured on chatapp and on its reference, run after run.

Every measurement starts its own server on a throwaway database and stops it
afterwards. The server runs on the server cores, every load tool on the load
cores. The two sides alternate (subject first on odd runs, reference first on
even ones), so a slow phase of a shared machine does not favour one side.

| figure | subject | reference |
| --- | --- | --- |
| growth | p99 at a fixed rate, database pre-filled | the same on an empty database |
| fanout-N | loadgen ``sweep``, JSON on ``/ws`` | the tutorial's Node server, text on ``/`` |
| durable | ``durwriters.cjs`` on the pre-filled database | raw sqlite3 group commit (SQLite only) |
| connect | loadgen ``connect`` with a history page | Node accepting as many connections |
| memory | RSS per idle connection (``holder.cjs``) | the same for Node |
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from bench.databases import Databases
from bench.nodekit import NodeKit
from bench.prefill import PrefillSpec
from bench.procs import Child, Processes
from bench.servers import start_chatapp, start_seed
from bench.stats import Figure, Measure, Record, Side
from bench.system import BenchError, open_fds, tree_rss_kib

#: The room that loadgen uses, and that the pre-filled database gives a long history.
BENCH_ROOM = "bench"
CONNECT_ROOM = "lobby"
IDLE_ROOM = "idle"
#: Seconds added to a tool's own run time before it counts as hung.
TOOL_SLACK = 120.0
SETTLE_BEFORE = 2.0
#: CPU used by other processes during a measurement above which it is flagged as noisy.
NOISY_CPU_PCT = 20.0


@dataclass(frozen=True)
class Config:
    """Everything a session measures with; sizes default to issue 10's."""

    runs: int
    db: str | None
    server_cmd: str
    label: str
    server_cores: str | None
    load_cores: str | None
    port: int
    node_port: int
    prefill: PrefillSpec
    growth_rate: float
    growth_clients: int
    growth_senders: int
    growth_duration: float
    fanout_clients: tuple[int, ...]
    fanout_senders: int
    fanout_duration: float
    fanout_grace: float
    fanout_start_rate: float | None
    fanout_max_rate: float | None
    durable_writers: int
    durable_window: int
    durable_duration: float
    connect_clients: int
    connect_history: int
    memory_connections: int
    memory_settle: float
    redis: str = "redis://127.0.0.1:6379/0"
    workers_clients: int = 1000
    workers_idle: int = 25_000
    workers_fd_limit: int = 20_000
    workers_cores: str | None = "0-1"


Metrics = dict[str, float | None]
#: What one side of one run gives: its metrics, and the tool's whole result for the JSON line.
Measured = tuple[Metrics, dict[str, Any]]


class Session:
    """One benchmark session: its config, processes, databases and records."""

    def __init__(
        self,
        config: Config,
        procs: Processes,
        kit: NodeKit,
        databases: Databases,
        work: Path,
        results: Path,
    ) -> None:
        self.config = config
        self.procs = procs
        self.kit = kit
        self.databases = databases
        self.work = work
        self.results = results
        self.records: list[Record] = []
        self.id = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")

    # --- servers and tools --------------------------------------------------

    def chatapp(self, db: str, data_dir: Path) -> Child:
        c = self.config
        return start_chatapp(
            self.procs, c.server_cmd, port=c.port, db=db, data_dir=data_dir, cores=c.server_cores
        )

    def seed(self) -> Child:
        c = self.config
        return start_seed(self.procs, self.kit, port=c.node_port, cores=c.server_cores)

    def node(self, name: str, tool: str, args: list[str], *, seconds: float) -> dict[str, Any]:
        """Run a Node tool on the load cores; its last output line is its JSON result."""
        out = self.procs.run(
            name,
            [self.kit.node, self.kit.tool(tool), *args],
            timeout=seconds + TOOL_SLACK,
            cores=self.config.load_cores,
        )
        result = last_json(out, name)
        if "error" in result:
            raise BenchError(f"{name}: {result['error']}")
        return result

    def loadgen(self, scenario: str, url: str, proto: str, server: Child, *args: str,
                seconds: float) -> dict[str, Any]:  # fmt: skip
        return self.node(
            f"loadgen-{scenario}",
            "loadgen.mjs",
            [scenario, "--url", url, "--proto", proto, "--server-pid", str(server.pid),
             "--quiet", "--timeout", str(int(seconds + TOOL_SLACK / 2)), *args],
            seconds=seconds,
        )  # fmt: skip

    def chat_url(self, room: str, **query: int) -> str:
        extra = "".join(f"&{k}={v}" for k, v in query.items())
        return f"ws://127.0.0.1:{self.config.port}/ws?room={room}{extra}"

    @property
    def node_url(self) -> str:
        return f"ws://127.0.0.1:{self.config.node_port}/"

    # --- runs and records ---------------------------------------------------

    def data_dir(self, name: str) -> Path:
        path = self.work / name
        shutil.rmtree(path, ignore_errors=True)
        return path

    @contextlib.contextmanager
    def side_server(
        self, side: Side, name: str, room: str, **query: int
    ) -> Iterator[tuple[Child, str, str]]:
        """(server, url, protocol): chatapp on a fresh database for the subject, the
        tutorial's Node server for the reference; stopped and removed afterwards."""
        data_dir = self.data_dir(name)
        db = self.databases.fresh(data_dir) if side == "subject" else None
        try:
            if db is not None:
                server = self.chatapp(db, data_dir)
                yield server, self.chat_url(room, **query), "json"
            else:
                server = self.seed()
                yield server, self.node_url, "text"
            stopped(server)
        finally:
            self.release(db, data_dir)

    def release(self, db: str | None, data_dir: Path) -> None:
        """Drop a run's database and its data folder."""
        if db is not None:
            self.databases.release(db)
        shutil.rmtree(data_dir, ignore_errors=True)

    def measure(
        self,
        figure: str,
        side: Side,
        side_name: str,
        run: int,
        work: Callable[[], Measured],
    ) -> None:
        """Run one side of one run; a failure is recorded (metrics None) and reported."""
        started = time.monotonic()
        try:
            metrics, detail = work()
            error = None
        except BenchError as exc:
            metrics, detail, error = {}, {}, str(exc)
        finally:
            self.procs.close()  # anything the measurement left running
        noise = other_cpu(detail)
        line = {
            "session": self.id,
            "ts": datetime.now(UTC).isoformat(timespec="seconds"),
            "label": self.config.label,
            "figure": figure,
            "side": side,
            "side_name": side_name,
            "run": run,
            "metrics": metrics,
            "error": error,
            "seconds": round(time.monotonic() - started, 1),
            "other_cpu_pct": noise,
            "db": self.databases.kind,
            "server_cmd": self.config.server_cmd,
            "cores": {"server": self.config.server_cores, "load": self.config.load_cores},
            "detail": detail,
        }
        text = json.dumps(line)
        print(text, flush=True)
        with self.results.open("a") as out:
            out.write(text + "\n")
        self.records.append(Record(figure, side, run, metrics))
        if noise is not None and noise > NOISY_CPU_PCT:
            progress(f"warning: other processes used {noise:g}% CPU during this run: not quiet")
        if error:
            progress(f"{figure} run {run} {side_name}: FAILED {error}")
        else:
            shown = ", ".join(f"{k}={v}" for k, v in metrics.items())
            progress(f"{figure} run {run} {side_name}: {shown}")


def progress(text: str) -> None:
    print(f"[bench] {text}", file=sys.stderr, flush=True)


def other_cpu(detail: dict[str, Any]) -> float | None:
    """The most CPU (% of a core) that other processes used in any phase the tool reported."""
    phases = [detail, *detail.get("steps", ())]
    values = [p["other_cpu_pct"] for p in phases if p.get("other_cpu_pct") is not None]
    return max(values) if values else None


def last_json(output: str, name: str) -> dict[str, Any]:
    """The last line of ``output`` that is a JSON object."""
    for line in reversed(output.strip().splitlines()):
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                break
            if isinstance(value, dict):
                return value
    raise BenchError(f"{name} printed no JSON result; its output ended:\n{output[-1500:]}")


def alternate(runs: int) -> Iterator[tuple[int, tuple[Side, Side]]]:
    """Run numbers with the order of the sides: subject first on odd runs."""
    for run in range(1, runs + 1):
        yield run, ("subject", "reference") if run % 2 else ("reference", "subject")


def stopped(server: Child) -> None:
    """Stop a server after its measurement; one that died during it spoils the run."""
    if not server.running():
        raise BenchError(f"{server.name} died during the run:\n{server.tail()}")
    server.stop()


def per_unit(
    cpu_pct: float | None, seconds: float | None, units: float | None, scale: float
) -> float | None:
    """Server CPU per unit of work: cpu_pct % of a core for ``seconds``, over ``units``."""
    if cpu_pct is None or seconds is None or not units:
        return None
    return round(cpu_pct / 100 * seconds / units * scale, 2)


# --- figures -------------------------------------------------------------------


def _each_run(
    s: Session, figure: str, names: dict[Side, str], once: Callable[[Side, int], Measured]
) -> None:
    """Measure the sides named in ``names`` (a side left out is skipped), alternating."""
    for run, sides in alternate(s.config.runs):
        for side in sides:
            if side in names:
                s.measure(figure, side, names[side], run, partial(once, side, run))


def growth(s: Session) -> list[Figure]:
    """p99 at a fixed rate in one room: pre-filled database (subject) vs empty (reference)."""
    c = s.config
    full = f"chatapp, {c.prefill.messages:,} msgs"
    _each_run(s, "growth", {"subject": full, "reference": "chatapp, empty"}, partial(_growth, s))
    goal = "≤ 1.25x"
    label = f"p99 ms at {c.growth_rate:g} msg/s, {c.growth_clients} clients"
    return [
        Figure(
            "growth",
            full,
            "chatapp, empty",
            (
                Measure("p99_ms", label, goal),
                Measure("p50_ms", "p50 ms"),
                Measure("cpu_us_per_msg", "server CPU µs per message"),
                Measure("lost", "lost deliveries", "0"),
            ),
        )
    ]


def _growth(s: Session, side: Side, run: int) -> Measured:
    c = s.config
    data_dir = s.data_dir(f"growth-{run}-{side}")
    if side == "subject":
        db = s.databases.prefilled(data_dir, c.prefill)
    else:
        db = s.databases.fresh(data_dir)
    try:
        server = s.chatapp(db, data_dir)
        r = s.loadgen(
            "fanout", s.chat_url(BENCH_ROOM), "json", server,
            "--clients", str(c.growth_clients), "--senders", str(c.growth_senders),
            "--rate", str(c.growth_rate), "--duration", str(c.growth_duration),
            "--room", BENCH_ROOM,
            seconds=c.growth_duration + c.growth_clients / 50,
        )  # fmt: skip
        stopped(server)
    finally:
        s.release(db, data_dir)
    cpu = per_unit(r.get("server_cpu_pct"), r["wall_s"], r["sent"], 1e6)
    return {
        "p99_ms": r["lat_ms"]["p99"],
        "p50_ms": r["lat_ms"]["p50"],
        "lost": r["lost"],
        "achieved_msg_per_s": r["achieved_msg_per_s"],
        "cpu_us_per_msg": cpu,
    }, r


FANOUT_GOALS = {100: "≥ 1.0x Node", 1000: "≥ 2x Node"}


def fanout(s: Session) -> list[Figure]:
    """Max sustainable rate (p99 < 50 ms, no loss) per client count, chatapp vs Node."""
    c = s.config
    layouts = []
    for clients in c.fanout_clients:
        figure = f"fanout-{clients}"
        names: dict[Side, str] = {"subject": "chatapp", "reference": "Node"}
        _each_run(s, figure, names, partial(_fanout, s, clients))
        label = f"max msg/s, {clients} clients, {c.fanout_senders} senders (p99 < 50 ms, no loss)"
        layouts.append(
            Figure(
                figure,
                "chatapp",
                "Node tutorial server",
                (
                    Measure("max_rate", label, FANOUT_GOALS.get(clients, "")),
                    Measure("deliveries_per_s", "deliveries/s at max"),
                    Measure("cpu_us_per_msg", "server CPU µs per message at max"),
                ),
            )
        )
    return layouts


def _fanout(s: Session, clients: int, side: Side, run: int) -> Measured:
    c = s.config
    args = [
        "--clients", str(clients), "--senders", str(c.fanout_senders),
        "--duration", str(c.fanout_duration), "--grace", str(c.fanout_grace),
        "--start-rate", str(c.fanout_start_rate or max(5, 20_000 // clients)),
    ]  # fmt: skip
    if c.fanout_max_rate:
        args += ["--max-rate", str(c.fanout_max_rate)]
    # a sweep is at most ~20 steps of duration + grace + reconnecting
    budget = 20 * (c.fanout_duration + c.fanout_grace + 2 + clients / 200)
    with s.side_server(side, f"fanout-{clients}-{run}-{side}", BENCH_ROOM) as (server, url, proto):
        r = s.loadgen("sweep", url, proto, server, *args, seconds=budget)
    best = r.get("best") or {}
    rate = r["max_sustainable_rate"] or None
    return {
        "max_rate": r["max_sustainable_rate"],
        "deliveries_per_s": best.get("deliveries_per_s"),
        "p99_ms_at_max": (best.get("lat_ms") or {}).get("p99"),
        "cpu_us_per_msg": per_unit(best.get("server_cpu_pct"), 1.0, rate, 1e6),
    }, r


def durable(s: Session) -> list[Figure]:
    """Acks/s of writers each in its own room with a window in flight, on the pre-filled db.

    The reference (raw sqlite3 group commit) exists for SQLite only.
    """
    c = s.config
    raw = s.databases.kind == "sqlite"
    full = f"chatapp, {c.prefill.messages:,} msgs"
    names: dict[Side, str] = {"subject": full}
    if raw:
        names["reference"] = "raw sqlite3"
    _each_run(s, "durable", names, partial(_durable, s))
    label = f"acks/s, {c.durable_writers} writers x {c.durable_window} in flight"
    return [
        Figure(
            "durable",
            full,
            "raw sqlite3 group commit" if raw else "",
            (
                Measure("acks_per_s", label, "≥ 15k msg/s", compare=raw),
                Measure("ack_p99_ms", "ack p99 ms (raw: commit p99)", compare=raw),
                Measure("cpu_us_per_ack", "server CPU µs per ack", compare=False),
            ),
        )
    ]


def _durable(s: Session, side: Side, run: int) -> Measured:
    c = s.config
    data_dir = s.data_dir(f"durable-{run}-{side}")
    db = s.databases.prefilled(data_dir, c.prefill)
    try:
        if side == "reference":
            return _raw_durable(s, data_dir / "chat.db")
        server = s.chatapp(db, data_dir)
        r = s.node(
            "durwriters",
            "durwriters.cjs",
            [str(c.port), str(c.durable_writers), str(c.durable_window),
             str(c.durable_duration), f"dw{run}-{s.id}", str(server.pid)],
            seconds=c.durable_duration,
        )  # fmt: skip
        stopped(server)
    finally:
        s.release(db, data_dir)
    return {
        "acks_per_s": r["acks_per_s"],
        "ack_p99_ms": r["p99"],
        "cpu_us_per_ack": per_unit(r.get("server_cpu_pct"), 1.0, r["acks_per_s"], 1e6),
        "errors": r["errors"],
    }, r


def _raw_durable(s: Session, path: Path) -> Measured:
    c = s.config
    out = s.procs.run(
        "rawsqlite",
        [sys.executable, "-m", "bench.rawsqlite", str(path), "--writers", str(c.durable_writers),
         "--window", str(c.durable_window), "--duration", str(c.durable_duration)],
        timeout=c.durable_duration + TOOL_SLACK,
        cores=c.server_cores,
    )  # fmt: skip
    r = last_json(out, "rawsqlite")
    return {"acks_per_s": r["msgs_per_s"], "ack_p99_ms": r["commit_ms"]["p99"]}, r


def connect(s: Session) -> list[Figure]:
    """Time until N clients are connected (chatapp: and hold a history page) vs Node."""
    c = s.config
    names: dict[Side, str] = {"subject": "chatapp", "reference": "Node"}
    _each_run(s, "connect", names, partial(_connect, s))
    label = f"s until {c.connect_clients} clients connected"
    if c.connect_history:
        label += f" with a {c.connect_history}-message page"
    return [
        Figure(
            "connect",
            "chatapp (until history)",
            "Node tutorial server (until open)",
            (
                Measure("all_s", label, "≤ 1.6x"),
                Measure("cpu_ms_per_conn", "server CPU ms per connection"),
                Measure("failed", "failed connections", "0"),
            ),
        )
    ]


def _connect(s: Session, side: Side, run: int) -> Measured:
    c = s.config
    seconds = 60 + c.connect_clients / 20
    name, history = f"connect-{run}-{side}", c.connect_history
    with s.side_server(side, name, CONNECT_ROOM, limit=history) as (server, url, proto):
        if proto == "json" and history:
            s.procs.run(
                "prepop",
                [s.kit.node, s.kit.tool("prepop.cjs"), url, str(history)],
                timeout=TOOL_SLACK,
                cores=c.load_cores,
            )
        r = s.loadgen(
            "connect", url, proto, server, "--clients", str(c.connect_clients),
            "--ready-timeout", str(int(seconds)), seconds=seconds,
        )  # fmt: skip
    if proto == "json" and r.get("history_msgs_p50") != c.connect_history:
        progress(f"warning: history pages held {r.get('history_msgs_p50')} messages")
    all_s = r["total_ms"] / 1000
    return {
        "all_s": round(all_s, 3),
        "failed": r["failed"],
        "cpu_ms_per_conn": per_unit(r.get("server_cpu_pct"), all_s, r["ok"], 1e3),
    }, r


def memory(s: Session) -> list[Figure]:
    """Server RSS per idle connection with N held open, settled, chatapp vs Node."""
    c = s.config
    names: dict[Side, str] = {"subject": "chatapp", "reference": "Node"}
    _each_run(s, "memory", names, partial(_memory, s))
    label = f"KiB per idle connection, {c.memory_connections} held, after {c.memory_settle:g} s"
    return [
        Figure(
            "memory",
            "chatapp",
            "Node tutorial server",
            (
                Measure("kib_per_conn", label, "≤ 10 KiB"),
                Measure("kib_per_conn_ready", "KiB per connection right after connecting"),
                Measure("failed", "failed connections", "0"),
            ),
        )
    ]


def _memory(s: Session, side: Side, run: int) -> Measured:
    with s.side_server(side, f"memory-{run}-{side}", IDLE_ROOM) as (server, url, proto):
        r = _hold(s, server, url, proto, s.config.memory_connections)
    held = r["ready"]["open"] or None
    return {
        "kib_per_conn": _per(r["rss_settled_kib"] - r["rss_before_kib"], held),
        "kib_per_conn_ready": _per(r["rss_ready_kib"] - r["rss_before_kib"], held),
        "failed": r["ready"]["failed"],
    }, r


def _per(kib: int, connections: int | None) -> float | None:
    return round(kib / connections, 2) if connections else None


def _hold(s: Session, server: Child, url: str, proto: str, n: int) -> dict[str, Any]:
    """Open n idle connections with holder.cjs; the server's RSS before, at READY, settled."""
    time.sleep(SETTLE_BEFORE)
    before = tree_rss_kib(server.pid)
    argv = [s.kit.node, s.kit.tool("holder.cjs"), url, str(n), proto]
    holder = s.procs.start("holder", argv, cores=s.config.load_cores)
    deadline = time.monotonic() + 60 + n / 50
    ready: dict[str, Any] | None = None
    while ready is None:
        if time.monotonic() > deadline or not holder.running():
            raise BenchError(f"holder did not get {n} connections ready:\n{holder.tail()}")
        for line in holder.output().splitlines():
            if line.startswith("READY "):
                ready = json.loads(line.removeprefix("READY "))
        time.sleep(0.2)
    at_ready = tree_rss_kib(server.pid)
    time.sleep(s.config.memory_settle)
    settled = tree_rss_kib(server.pid)
    fds = open_fds(server.pid)
    holder.kill()
    return {
        "ready": ready,
        "rss_before_kib": before,
        "rss_ready_kib": at_ready,
        "rss_settled_kib": settled,
        "server_fds": fds,
    }


FIGURES: dict[str, Callable[[Session], list[Figure]]] = {
    "growth": growth,
    "fanout": fanout,
    "durable": durable,
    "connect": connect,
    "memory": memory,
}
