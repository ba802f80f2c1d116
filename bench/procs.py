"""Child processes of a benchmark: started in their own process group, always reaped.

``Processes`` owns every child it starts; closing it (normally, on an
exception, on Ctrl-C, or on SIGTERM once ``exit_on_sigterm`` is installed)
kills whatever still runs, by process group, so a server's own children
(``--workers``, ``npm``) go too. Output goes to files in a log folder, so a
failure can quote the last lines.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from bench.system import BenchError, pinned

#: Seconds a child gets to exit after SIGTERM before SIGKILL.
STOP_GRACE = 15.0
POLL = 0.05


@dataclass
class Child:
    """One started process and the files its output goes to."""

    name: str
    popen: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def _signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, sig)

    def stop(self, grace: float = STOP_GRACE) -> int | None:
        """SIGTERM, then SIGKILL after ``grace`` seconds; returns the exit code."""
        if self.running():
            self._signal_group(signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
        self.kill()
        return self.popen.returncode

    def kill(self) -> None:
        """SIGKILL the whole group (whatever is left of it) and reap the child."""
        self._signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(STOP_GRACE)

    def output(self) -> str:
        return self.stdout.read_text(errors="replace")

    def tail(self, lines: int = 15) -> str:
        """The last lines of stderr, else of stdout: what to quote when it failed."""
        for path in (self.stderr, self.stdout):
            text = path.read_text(errors="replace").strip()
            if text:
                return "\n".join(text.splitlines()[-lines:])
        return "(no output)"


class Processes:
    """Starts children (pinned to cores when asked) and kills the survivors on ``close``."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self._children: list[Child] = []
        self._count = 0

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        cores: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        drop_env: str | None = None,
    ) -> Child:
        """Start ``argv``; ``env`` adds variables, ``drop_env`` removes inherited ones by prefix."""
        self._count += 1
        stem = self.log_dir / f"{self._count:03d}-{name}"
        stdout, stderr = stem.with_suffix(".out"), stem.with_suffix(".err")
        command = pinned(list(argv), cores)
        inherited = {
            k: v for k, v in os.environ.items() if not (drop_env and k.startswith(drop_env))
        }
        with stdout.open("wb") as out, stderr.open("wb") as err:
            try:
                popen = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    env={**inherited, **(env or {})},
                    cwd=cwd,
                    start_new_session=True,
                )
            except OSError as exc:
                raise BenchError(f"cannot start {name} ({command[0]}): {exc.strerror}") from None
        child = Child(name, popen, stdout, stderr)
        self._children.append(child)
        return child

    def run(
        self,
        name: str,
        argv: Sequence[str],
        *,
        timeout: float,
        cores: str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> str:
        """Run a tool to completion and return its stdout; fail on timeout or exit code."""
        child = self.start(name, argv, cores=cores, env=env, cwd=cwd)
        try:
            child.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            raise BenchError(f"{name} timed out after {timeout:g} s:\n{child.tail()}") from None
        if child.popen.returncode != 0:
            raise BenchError(f"{name} exited with {child.popen.returncode}:\n{child.tail()}")
        return child.output()

    def close(self) -> None:
        for child in self._children:
            if child.running():
                child.kill()
        self._children.clear()


EXIT_SETUP = 2
EXIT_INTERRUPTED = 130


def run_tool(tool: str, work: Callable[[], int]) -> int:
    """Run a tool's body: SIGTERM and Ctrl-C clean up (its ``finally`` blocks) and exit 130;
    a ``BenchError`` is one line on stderr and exit status 2."""
    exit_on_sigterm()
    try:
        return work()
    except BenchError as exc:
        print(f"{tool}: error: {exc}", file=sys.stderr)
        return EXIT_SETUP
    except KeyboardInterrupt:
        print(f"{tool}: interrupted; servers stopped, temporary data removed", file=sys.stderr)
        return EXIT_INTERRUPTED


def exit_on_sigterm() -> None:
    """Turn SIGTERM into ``SystemExit``, so ``finally`` blocks clean up as on Ctrl-C."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def wait_until_ready(child: Child, port: int, *, path: str | None, timeout: float) -> None:
    """Wait for ``GET path`` to answer 200 (or, with ``path`` None, for the port to accept).

    Fails with the child's last output lines if it exits first.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not child.running():
            raise BenchError(
                f"{child.name} exited with {child.popen.returncode} before it was ready:\n"
                f"{child.tail()}"
            )
        if _answers(port, path):
            return
        time.sleep(POLL * 4)
    raise BenchError(f"{child.name} not ready on port {port} after {timeout:g} s:\n{child.tail()}")


def _answers(port: int, path: str | None) -> bool:
    if path is None:
        with socket.socket() as sock:
            sock.settimeout(1.0)
            return sock.connect_ex(("127.0.0.1", port)) == 0
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2.0) as reply:
            return bool(reply.status == 200)
    except (urllib.error.URLError, OSError):
        return False
