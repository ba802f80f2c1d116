"""The ``workers`` figure: one chatapp process against ``--workers 2`` on one machine.

Both sides are chatapp on a fresh database, started through ``prlimit`` so that
each server process may open at most ``--workers-fd-limit`` files (20 000 by
default, as on the production machines). The subject adds ``--workers 2
--redis URL``. Two measures:

- fan-out at ``--workers-clients`` (1000) clients: loadgen ``sweep``, the
  highest rate with p99 < 50 ms and no loss, as in the ``fanout`` figure; the
  subject's clients are spread over both workers, so messages cross Redis;
- idle connections: ``--workers-idle`` (25 000) opened by ``holder.cjs``; how
  many sockets the server holds open once the holder is done (or has waited
  out its handshake timeouts). One process stops at its file limit; two
  processes hold them all.

The servers run on ``--workers-cores`` (both cores by default: a single process
uses one of them anyway), the load tools on ``--load-cores``.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from functools import partial
from typing import Any

from bench.figures import (
    BENCH_ROOM,
    IDLE_ROOM,
    SETTLE_BEFORE,
    Measured,
    Session,
    _each_run,
    stopped,
)
from bench.procs import Child
from bench.servers import start_chatapp
from bench.stats import Figure, Measure, Side
from bench.system import open_fds, process_tree

#: Worker processes of the subject.
WORKERS = 2
#: Seconds to wait for the holder beyond n / 50: its handshakes time out after 60 s.
IDLE_WAIT = 75.0
#: Seconds without a new socket at the server after which it is taken to hold all it can.
PLATEAU = 20.0
#: Connections per holder process: each socket is a file, and one process may open 20 000.
HOLDER_MAX = 15_000


def workers(s: Session) -> list[Figure]:
    c = s.config
    names: dict[Side, str] = {"subject": f"--workers {WORKERS}", "reference": "one process"}
    _each_run(s, "workers", names, partial(_workers, s))
    return [
        Figure(
            "workers",
            f"chatapp --workers {WORKERS} (Redis)",
            "chatapp, one process",
            (
                Measure(
                    "max_rate",
                    f"max msg/s, {c.workers_clients} clients (p99 < 50 ms, no loss)",
                    "> 1x",
                ),
                Measure("deliveries_per_s", "deliveries/s at max"),
                Measure(
                    "idle_held",
                    f"idle connections open at the server, of {c.workers_idle} "
                    f"({c.workers_fd_limit} files per process)",
                    f"= {c.workers_idle}",
                ),
            ),
        )
    ]


def _workers(s: Session, side: Side, run: int) -> Measured:
    c = s.config
    args = [
        "--clients", str(c.workers_clients), "--senders", str(c.fanout_senders),
        "--duration", str(c.fanout_duration), "--grace", str(c.fanout_grace),
        "--start-rate", str(c.fanout_start_rate or max(5, 20_000 // c.workers_clients)),
    ]  # fmt: skip
    if c.fanout_max_rate:
        args += ["--max-rate", str(c.fanout_max_rate)]
    budget = 20 * (c.fanout_duration + c.fanout_grace + 2 + c.workers_clients / 200)
    with _server(s, side, f"workers-fanout-{run}-{side}") as server:
        sweep = s.loadgen("sweep", s.chat_url(BENCH_ROOM), "json", server, *args, seconds=budget)
    idle: dict[str, Any] = {"held": None}
    if c.workers_idle:  # 0 leaves the idle measure out (on PostgreSQL it says nothing new)
        with _server(s, side, f"workers-idle-{run}-{side}") as server:
            idle = _idle(s, server, c.workers_idle)
    best = sweep.get("best") or {}
    return {
        "max_rate": sweep["max_sustainable_rate"],
        "deliveries_per_s": best.get("deliveries_per_s"),
        "idle_held": idle["held"],
    }, {"sweep": sweep, "idle": idle}


def _idle(s: Session, server: Child, n: int) -> dict[str, Any]:
    """Open n idle connections with holder.cjs and count the sockets the server gained.

    One holder opens at most HOLDER_MAX connections, so that no load process needs
    more files than the machine lets one process open (20 000 here). Past its file
    limit a server cannot accept (or cannot answer) some connections, and a holder
    then never reports READY: the count is taken once every holder is READY, once the
    server has opened no socket for PLATEAU seconds, or after IDLE_WAIT + n / 50
    seconds, whichever comes first."""
    time.sleep(SETTLE_BEFORE)
    before = _tree_fds(server.pid)
    argv = [s.kit.node, s.kit.tool("holder.cjs"), s.chat_url(IDLE_ROOM)]
    holders = [
        s.procs.start(f"holder-{i}", [*argv, str(share), "json"], cores=s.config.load_cores)
        for i, share in enumerate(_shares(n, HOLDER_MAX))
    ]
    deadline = time.monotonic() + IDLE_WAIT + n / 50
    ready: list[dict[str, Any] | None] = [None] * len(holders)
    most, grew = before, time.monotonic()
    while None in ready and time.monotonic() < deadline:
        for i, holder in enumerate(holders):
            for line in holder.output().splitlines():
                if line.startswith("READY "):
                    ready[i] = json.loads(line.removeprefix("READY "))
        now, fds = time.monotonic(), _tree_fds(server.pid)
        if fds > most:
            most, grew = fds, now
        stuck = not any(h.running() for h, r in zip(holders, ready, strict=True) if r is None)
        if stuck or now - grew > PLATEAU:
            break
        time.sleep(0.5)
    held = min(n, _tree_fds(server.pid) - before)
    for holder in holders:
        holder.kill()
    return {"ready": ready, "held": held, "server_fds_before": before}


def _shares(n: int, most: int) -> list[int]:
    """n split into as few near-equal parts as keep each at or below ``most``."""
    parts = -(-n // most)
    return [n // parts + (1 if i < n % parts else 0) for i in range(parts)]


def _tree_fds(pid: int) -> int:
    total = 0
    for member in process_tree(pid):
        with contextlib.suppress(OSError):  # a process that just ended
            total += open_fds(member)
    return total


@contextlib.contextmanager
def _server(s: Session, side: Side, name: str) -> Iterator[Child]:
    """chatapp on a fresh database, each process limited to ``workers_fd_limit`` files."""
    c = s.config
    data_dir = s.data_dir(name)
    db = s.databases.fresh(data_dir)
    template = f"prlimit --nofile={c.workers_fd_limit} {c.server_cmd}"
    if side == "subject":
        template += f" --workers {WORKERS} --redis {c.redis}"
    try:
        server = start_chatapp(
            s.procs, template, port=c.port, db=db, data_dir=data_dir, cores=c.workers_cores
        )
        yield server
        stopped(server)
    finally:
        s.release(db, data_dir)
