"""What the benchmarks need from the machine: tools on PATH, free ports, file limits, /proc.

Every failure is a ``BenchError`` whose message tells the operator what to do.
"""

from __future__ import annotations

import os
import resource
import shutil
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

#: The repository root (bench/ lives directly under it).
REPO = Path(__file__).resolve().parent.parent
#: Git-ignored: results, cached databases and the copy of the shared Node tools.
RESULTS = REPO / "bench" / "results"

_T = TypeVar("_T")
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    """A condition that ends a benchmark with one clear line (missing tool, busy port...)."""


def require_tool(name: str, hint: str) -> str:
    """The full path of ``name`` on PATH, or a ``BenchError`` that says how to get it."""
    path = shutil.which(name)
    if path is None:
        raise BenchError(f"{name} not found on PATH: {hint}")
    return path


def pinned(argv: list[str], cores: str | None) -> list[str]:
    """``argv`` run on the given CPU list (``taskset -c``), or unchanged when ``cores`` is None."""
    if cores is None:
        return argv
    taskset = require_tool("taskset", "install util-linux, or pass --no-pin")
    return [taskset, "-c", cores, *argv]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def check_port_free(port: int) -> None:
    """Fail clearly when another process already listens on ``port``."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise BenchError(
                f"port {port} on 127.0.0.1 is in use ({exc.strerror}): pick another one"
            ) from None


def port_or_free(port: int) -> int:
    """``port`` once checked to be free, or any free port when it is 0."""
    if port == 0:
        return free_port()
    check_port_free(port)
    return port


def raise_fd_limit(needed: int) -> None:
    """Raise this process's open-file limit (inherited by children) to cover ``needed``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        raise BenchError(
            f"{needed} open files are needed but the hard limit is {hard}: "
            "raise it (ulimit -Hn) or use fewer connections"
        )
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def rss_kib(pid: int) -> int:
    """Resident memory of one process (``VmRSS`` in /proc/PID/status), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise BenchError(f"process {pid} has no VmRSS (a zombie?)")


def open_fds(pid: int) -> int:
    """Open file descriptors of one process (entries of /proc/PID/fd)."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of one process so far, all its threads included."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (e.g. the workers of ``--workers N``)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited meanwhile
        parent = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, ()))
    return tree


def tree_rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` and its descendants, in KiB."""
    return sum(_each_live(pid, rss_kib))


def tree_cpu_seconds(pid: int) -> float:
    """CPU time so far of ``pid`` and its live descendants."""
    return sum(_each_live(pid, cpu_seconds))


def _each_live(pid: int, read: Callable[[int], _T]) -> list[_T]:
    values: list[_T] = []
    for member in process_tree(pid):
        try:
            values.append(read(member))
        except OSError:
            continue  # exited between listing and reading
    return values
