"""What one message costs on the store's write path, and what each part of it adds.

``python -m bench.storecost [--batches 40] [--batch 500] [--runs 3] [--db URL]``

Issue 10 asks to measure rather than assume such things; this appends
batches through chatapp's own ``SqlStore.append`` (the writer's path, with
its dedicated connection) and reports CPU and wall time per message for:

- ``baseline``: every batch in one room, FTS trigger in place;
- ``rooms_100``: each batch spread over 100 rooms (one ``UPDATE ... RETURNING``
  reserves every room's seqs, as when 100 writers share a batch);
- ``uvloop``: ``baseline`` on uvloop's event loop instead of asyncio's (only
  when uvloop is installed; it is not a dependency).

CPU is the whole process's (event loop and the writer's thread), so it is
far less sensitive to a noisy machine than wall time. Each variant runs on
a new database, ``--runs`` times, alternating; the medians are printed as
one JSON line per variant and a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.databases import databases
from chatapp.model import NewMessage, User
from chatapp.store.engine import open_store

VARIANTS = ("baseline", "rooms_100", "uvloop")


@dataclass(frozen=True)
class Sizes:
    batches: int
    batch: int


def _messages(sizes: Sizes, batch_no: int, rooms: int) -> list[NewMessage]:
    now = datetime.now(UTC)
    return [
        NewMessage(
            room=f"r{i % rooms}",
            user=User(f"u-{i % 50}", f"User {i % 50}"),
            text=f"message {batch_no}-{i}: the quick brown fox jumps over the lazy dog",
            client_id=f"{batch_no}-{i}",
            created_at=now,
        )
        for i in range(sizes.batch)
    ]


async def _append_all(url: str, sizes: Sizes, variant: str) -> dict[str, float]:
    store = await open_store(url)
    try:
        rooms = 100 if variant == "rooms_100" else 1
        batches = [_messages(sizes, n, rooms) for n in range(sizes.batches)]
        await store.append(batches[0])  # warm-up: statements compiled, connection open
        cpu, wall = time.process_time(), time.perf_counter()
        for batch in batches[1:]:
            await store.append(batch)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    finally:
        await store.close()
    count = (sizes.batches - 1) * sizes.batch
    return {"cpu_us_per_msg": cpu / count * 1e6, "wall_us_per_msg": wall / count * 1e6}


def _run_one(url: str, sizes: Sizes, variant: str) -> dict[str, float]:
    runner: Callable[..., object] = asyncio.run
    if variant == "uvloop":
        import uvloop

        runner = uvloop.run
    return runner(_append_all(url, sizes, variant))  # type: ignore[return-value]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.storecost", description=__doc__)
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--db", help="a PostgreSQL server URL: a throwaway database is created there per run"
    )
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    args = parser.parse_args(argv)
    sizes = Sizes(args.batches, args.batch)
    variants = list(args.variants)
    try:
        import uvloop  # noqa: F401
    except ImportError:
        print("[storecost] uvloop is not installed: that variant is skipped", file=sys.stderr)
        variants = [v for v in variants if v != "uvloop"]
    results: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory() as folder:
        # The store migrates its own schema, so the databases need none made for them.
        made = databases(args.db, lambda url: None, Path(folder))
        try:
            for run in range(args.runs):
                order = variants if run % 2 == 0 else variants[::-1]
                for variant in order:
                    url = made.fresh(Path(folder) / f"{variant}-{run}")
                    results[variant].append(_run_one(url, sizes, variant))
                    made.release(url)
        finally:
            made.close()
    print("| variant | CPU µs/msg | wall µs/msg | runs |\n| --- | --- | --- | --- |")
    for variant, runs in results.items():
        cpu = statistics.median(r["cpu_us_per_msg"] for r in runs)
        wall = statistics.median(r["wall_us_per_msg"] for r in runs)
        line = {
            "variant": variant,
            "cpu_us_per_msg": round(cpu, 1),
            "wall_us_per_msg": round(wall, 1),
        }
        print(json.dumps(line), file=sys.stderr)
        print(f"| {variant} | {cpu:.1f} | {wall:.1f} | {len(runs)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
