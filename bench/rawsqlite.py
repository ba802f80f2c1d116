"""The durable-write reference: raw sqlite3 group commit, no server in between.

``python -m bench.rawsqlite DB --writers 100 --window 16 --duration 10``

The closed loop that ``durwriters.cjs`` drives through chatapp, done by the
best-case writer: each round commits every writer's full window (writers x
window messages, one per writer room and slot) in one transaction with the
server's settings (WAL, ``synchronous=FULL``), advancing ``rooms.last_seq``
and inserting into ``messages`` through its indexes and FTS trigger, as
chatapp's store does. Prints one JSON line: messages per second and commit
latency. What a Python server on this disk could at best reach.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sqlite3
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime

from bench.stats import percentile


def measure(path: str, writers: int, window: int, duration: float) -> dict[str, object]:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA busy_timeout=5000")
    tag = secrets.token_hex(4)
    rooms = [f"raw-{tag}-{i}" for i in range(writers)]
    now = _now()
    db.executemany(
        "INSERT INTO rooms (name, last_seq, created_at) VALUES (?, 0, ?)", [(r, now) for r in rooms]
    )
    insert = (
        "INSERT INTO messages (room, seq, user_id, user_name, text, created_at, client_id) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)"
    )
    commits: list[float] = []
    sent = 0
    start = time.perf_counter()
    while time.perf_counter() - start < duration:
        began = time.perf_counter()
        now = _now()
        db.execute("BEGIN IMMEDIATE")
        rows = []
        for i, room in enumerate(rooms):
            (last,) = db.execute(
                "UPDATE rooms SET last_seq = last_seq + ? WHERE name = ? RETURNING last_seq",
                (window, room),
            ).fetchone()
            for seq in range(last - window + 1, last + 1):
                rows.append(
                    (room, seq, f"w{i}", f"writer{i}", f"durable write test message {seq}", now,
                     f"{tag}-{i}-{seq}")
                )  # fmt: skip
        db.executemany(insert, rows)
        db.execute("COMMIT")
        sent += len(rows)
        commits.append((time.perf_counter() - began) * 1000)
    elapsed = time.perf_counter() - start
    db.close()
    return {
        "writers": writers,
        "window": window,
        "duration_s": round(elapsed, 3),
        "messages": sent,
        "msgs_per_s": round(sent / elapsed, 1),
        "commits": len(commits),
        "commit_ms": {"p50": percentile(commits, 50), "p99": percentile(commits, 99)},
    }


def _now() -> str:
    return datetime.now(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rawsqlite", description=__doc__)
    parser.add_argument("db", help="a chatapp SQLite database (a copy: rows are added to it)")
    parser.add_argument("--writers", type=int, default=100)
    parser.add_argument("--window", type=int, default=16)
    parser.add_argument("--duration", type=float, default=10.0)
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.db, args.writers, args.window, args.duration)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
