"""``python -m bench.run [FIGURE ...]``: issue 10's figures, each beside its reference.

Each figure is measured ``--runs`` times (default 3) on both sides, with the
server pinned to one core and the load generator to another. Every side of
every run prints one JSON line (also appended to bench/results/results.jsonl);
the session ends with a markdown table of runs, medians and ratios.
``--smoke`` shrinks every size so that the whole set runs in a few minutes:
it proves the tooling, not the figures. README.md has the exact commands.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Sequence
from functools import partial
from pathlib import Path

from bench import nodekit
from bench.databases import databases
from bench.figures import FIGURES, Config, Session, progress
from bench.prefill import PrefillSpec
from bench.procs import Processes, run_tool
from bench.servers import DEFAULT_SERVER_CMD, schema_maker
from bench.stats import Figure, comparisons, markdown_table
from bench.system import RESULTS, port_or_free, raise_fd_limit, require_tool
from bench.workers import HOLDER_MAX, workers

#: Every figure: issue 10's, and one process against --workers (issue 12).
ALL_FIGURES = {**FIGURES, "workers": workers}

EXIT_RUN_FAILED = 1
#: Open files beyond the connections a figure holds (database, logs, pipes).
FD_MARGIN = 1024
#: Figures that run the tutorial's Node server as their reference (or its tools).
WITH_SEED = {"fanout", "connect", "memory"}

SMOKE = {
    "runs": 1,
    "messages": 20_000,
    "rooms": 50,
    "growth_rate": 100.0,
    "growth_clients": 10,
    "growth_senders": 2,
    "growth_duration": 2.0,
    "fanout_clients": "10,20",
    "fanout_senders": 2,
    "fanout_duration": 1.0,
    "fanout_grace": 1.0,
    "fanout_start_rate": 100.0,
    "fanout_max_rate": 400.0,
    "durable_writers": 5,
    "durable_window": 4,
    "durable_duration": 2.0,
    "connect_clients": 50,
    "connect_history": 5,
    "memory_connections": 100,
    "memory_settle": 1.0,
    "workers_clients": 20,
    "workers_idle": 200,
    "workers_fd_limit": 180,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description=__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "figures",
        nargs="*",
        metavar="FIGURE",
        help=f"any of {', '.join(ALL_FIGURES)} (default: all)",
    )
    parser.add_argument("--runs", type=int, default=3, help="runs per side of each figure")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: check the tooling only")
    parser.add_argument(
        "--db",
        metavar="URL",
        help="chatapp on PostgreSQL: postgresql+asyncpg://USER@HOST:PORT/DB names the server "
        "and a maintenance database; each run gets a throwaway database (default: SQLite)",
    )
    parser.add_argument(
        "--server-cmd",
        default=DEFAULT_SERVER_CMD,
        metavar="TEMPLATE",
        help="chatapp command with {python} {port} {db} {data_dir}, e.g. the default plus "
        "--workers 2",
    )
    parser.add_argument("--label", default="", help="free text copied into every JSON line")
    parser.add_argument("--server-cores", default="0", help="taskset CPU list for servers")
    parser.add_argument("--load-cores", default="1", help="taskset CPU list for load tools")
    parser.add_argument("--no-pin", action="store_true", help="do not pin (no taskset)")
    parser.add_argument("--port", type=int, default=0, help="chatapp's port (0: a free one)")
    parser.add_argument("--node-port", type=int, default=0, help="Node server's port (0: free)")
    parser.add_argument("--shared-bench", metavar="DIR", help="the shared bench folder")
    parser.add_argument(
        "--work-dir", type=Path, help="where run databases live (the disk under test; default /tmp)"
    )
    parser.add_argument(
        "--results", type=Path, default=RESULTS / "results.jsonl", help="JSON lines appended here"
    )
    size = parser.add_argument_group("growth and durable (pre-filled database)")
    size.add_argument("--messages", type=int, default=1_000_000, help="messages pre-filled")
    size.add_argument("--rooms", type=int, default=1000, help="rooms besides the benchmark room")
    size.add_argument("--room-share", type=float, default=0.1, help="benchmark room's share")
    size.add_argument("--growth-rate", type=float, default=1000.0, help="msg/s, all senders")
    size.add_argument("--growth-clients", type=int, default=100)
    size.add_argument("--growth-senders", type=int, default=10)
    size.add_argument("--growth-duration", type=float, default=10.0, help="seconds")
    size = parser.add_argument_group("fanout")
    size.add_argument("--fanout-clients", default="100,1000", help="client counts, one sweep each")
    size.add_argument("--fanout-senders", type=int, default=10)
    size.add_argument("--fanout-duration", type=float, default=5.0, help="seconds per step")
    size.add_argument("--fanout-grace", type=float, default=2.0, help="drain seconds per step")
    size.add_argument(
        "--fanout-start-rate", type=float, default=None, help="first step (default 20000/clients)"
    )
    size.add_argument("--fanout-max-rate", type=float, default=None, help="stop the sweep here")
    size = parser.add_argument_group("durable")
    size.add_argument("--durable-writers", type=int, default=100)
    size.add_argument("--durable-window", type=int, default=16, help="messages in flight each")
    size.add_argument("--durable-duration", type=float, default=10.0, help="seconds")
    size = parser.add_argument_group("connect")
    size.add_argument("--connect-clients", type=int, default=2000)
    size.add_argument("--connect-history", type=int, default=50, help="messages per page")
    size = parser.add_argument_group("memory")
    size.add_argument("--memory-connections", type=int, default=10_000)
    size.add_argument("--memory-settle", type=float, default=10.0, help="seconds before RSS")
    size = parser.add_argument_group("workers (one process against --workers 2)")
    size.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="the workers' Redis")
    size.add_argument("--workers-clients", type=int, default=1000, help="fan-out clients")
    size.add_argument(
        "--workers-idle", type=int, default=25_000, help="idle connections held (0: leave out)"
    )
    size.add_argument(
        "--workers-fd-limit", type=int, default=20_000, help="open files per server process"
    )
    size.add_argument(
        "--workers-cores", default="0-1", help="taskset CPU list for the figure's servers"
    )
    return parser


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = build_parser()
    if parser.parse_known_args(argv)[0].smoke:
        parser.set_defaults(**SMOKE)
    args = parser.parse_args(argv)
    unknown = [f for f in args.figures if f not in ALL_FIGURES]
    if unknown:
        parser.error(f"unknown figure {', '.join(unknown)}: choose from {', '.join(ALL_FIGURES)}")
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    try:
        args.fanout_clients = tuple(int(n) for n in str(args.fanout_clients).split(","))
    except ValueError:
        parser.error("--fanout-clients takes numbers separated by commas, e.g. 100,1000")
    return args


def config(args: argparse.Namespace) -> Config:
    pin = not args.no_pin
    return Config(
        runs=args.runs,
        db=args.db,
        server_cmd=args.server_cmd,
        label=args.label,
        server_cores=args.server_cores if pin else None,
        load_cores=args.load_cores if pin else None,
        port=port_or_free(args.port),
        node_port=port_or_free(args.node_port),
        prefill=PrefillSpec(messages=args.messages, rooms=args.rooms, room_share=args.room_share),
        growth_rate=args.growth_rate,
        growth_clients=args.growth_clients,
        growth_senders=args.growth_senders,
        growth_duration=args.growth_duration,
        fanout_clients=args.fanout_clients,
        fanout_senders=args.fanout_senders,
        fanout_duration=args.fanout_duration,
        fanout_grace=args.fanout_grace,
        fanout_start_rate=args.fanout_start_rate,
        fanout_max_rate=args.fanout_max_rate,
        durable_writers=args.durable_writers,
        durable_window=args.durable_window,
        durable_duration=args.durable_duration,
        connect_clients=args.connect_clients,
        connect_history=args.connect_history,
        memory_connections=args.memory_connections,
        memory_settle=args.memory_settle,
        redis=args.redis,
        workers_clients=args.workers_clients,
        workers_idle=args.workers_idle,
        workers_fd_limit=args.workers_fd_limit,
        workers_cores=args.workers_cores if pin else None,
    )


def run(args: argparse.Namespace) -> int:
    names = args.figures or list(ALL_FIGURES)
    cfg = config(args)
    if cfg.server_cores is not None:
        require_tool("taskset", "install util-linux, or pass --no-pin")
    held = max(
        cfg.memory_connections if "memory" in names else 0,
        cfg.connect_clients if "connect" in names else 0,
        min(cfg.workers_idle, HOLDER_MAX) if "workers" in names else 0,  # per holder
    )
    raise_fd_limit(held + FD_MARGIN)
    kit = nodekit.prepare(
        nodekit.shared_folder(args.shared_bench), seed_server=bool(WITH_SEED & set(names))
    )
    args.results.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="chatapp-bench-", dir=args.work_dir))
    (work / "logs").mkdir()
    procs = Processes(work / "logs")
    dbs = None
    try:
        dbs = databases(cfg.db, schema_maker(procs), work)
        session = Session(cfg, procs, kit, dbs, work, args.results)
        progress(f"session {session.id}: {', '.join(names)}; {cfg.runs} run(s) each")
        layouts: list[Figure] = []
        for name in names:
            layouts.extend(ALL_FIGURES[name](session))
        table = markdown_table(comparisons(layouts, session.records))
        (args.results.parent / f"table-{session.id}.md").write_text(table + "\n")
        print("\n" + table)
        failed = any(r.metrics == {} for r in session.records)
        return EXIT_RUN_FAILED if failed else 0
    finally:
        procs.close()
        if dbs is not None:
            dbs.close()
        shutil.rmtree(work, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    return run_tool("bench", partial(run, args))


if __name__ == "__main__":
    sys.exit(main())
