"""``python -m chatapp`` as a subprocess: its environment, one-shot runs, servers.

Plain helpers; the ``launch`` fixture in ``conftest.py`` starts servers with them
and kills whatever is still running at teardown.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from contextlib import closing, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from factories import TICK
from tornado.httpclient import AsyncHTTPClient, HTTPClientError

REPO = Path(__file__).resolve().parents[1]
#: Seconds a command run to completion may take before the test gives up on it.
RUN_TIMEOUT = 300 * TICK
#: Seconds a process gets to start (a server: to answer GET /healthz).
STARTUP_TIMEOUT = 200 * TICK
#: Seconds a server gets to exit after a signal.
EXIT_TIMEOUT = 150 * TICK
#: The server's JWT secret and the client commands' token, never inherited from the test run.
JWT_ENV = "CHATAPP_JWT_SECRET"
TOKEN_ENV = "CHATAPP_TOKEN"
CHATAPP = (sys.executable, "-m", "chatapp")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (as of now)."""
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def chatapp_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The test's environment without a stray JWT secret or token, plus ``extra``.

    ``PYTHONPATH`` starts with the repository, so ``-m chatapp`` imports this checkout.
    """
    env = {k: v for k, v in os.environ.items() if k not in (JWT_ENV, TOKEN_ENV)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env | dict(extra or {})


def run_chatapp(
    *args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m chatapp ARGS`` to completion; ``env`` adds to ``chatapp_env()``."""
    return subprocess.run(
        [*CHATAPP, *args],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        cwd=cwd,
        env=chatapp_env(env),
        check=False,
    )


async def spawn_chatapp(
    *args: str,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    stdout: int | IO[bytes] = asyncio.subprocess.PIPE,
    stderr: int | IO[bytes] = asyncio.subprocess.PIPE,
) -> asyncio.subprocess.Process:
    """Start ``python -m chatapp ARGS`` without waiting for it (output piped by default)."""
    return await asyncio.create_subprocess_exec(
        *CHATAPP, *args, stdout=stdout, stderr=stderr, cwd=cwd, env=chatapp_env(env)
    )


async def run_chatapp_async(
    *args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``run_chatapp`` without blocking the loop, so that several (or a server) can run."""
    proc = await spawn_chatapp(*args, cwd=cwd, env=env)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), RUN_TIMEOUT)
    finally:
        if proc.returncode is None:
            proc.kill()
        code = await proc.wait()
    return subprocess.CompletedProcess(list(args), code, out.decode(), err.decode())


def assert_startup_error(result: subprocess.CompletedProcess[str]) -> str:
    """A failed start: non-zero exit, stderr exactly one ``chatapp: error:`` line; that line."""
    assert result.returncode not in (0, None), result
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{result.stderr}"
    assert lines[0].startswith("chatapp: error: "), lines[0]
    return lines[0]


@dataclass
class Server:
    """One ``python -m chatapp`` server process."""

    proc: asyncio.subprocess.Process
    port: int
    data_dir: Path
    log: Path

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def db_path(self) -> Path:
        return self.data_dir / "chat.db"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    async def stop(self, sig: int = signal.SIGTERM) -> int:
        """Send ``sig`` (unless it has exited already) and wait for the exit status.

        ``os.kill``, not ``proc.send_signal``: the latter polls first, which may reap an
        exited process before asyncio's child watcher does (it then reports status 255).
        """
        if self.proc.returncode is None:
            with suppress(ProcessLookupError):
                os.kill(self.proc.pid, sig)
        try:
            return await asyncio.wait_for(self.proc.wait(), EXIT_TIMEOUT)
        except TimeoutError:
            raise AssertionError(f"server ignored signal {sig}:\n{self.output()}") from None


def rows_in(db_path: Path, sql: str) -> list[tuple[Any, ...]]:
    """The rows of ``sql`` in the SQLite database at ``db_path`` (e.g. a server's ``db_path``)."""
    with closing(sqlite3.connect(db_path)) as db:
        return db.execute(sql).fetchall()


#: The ``launch`` fixture: ``await launch(data_dir=None, *args, env=None)``.
Launch = Callable[..., Awaitable[Server]]


async def spawn_server(
    data_dir: Path,
    *args: str,
    log: Path,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    port: int | None = None,
) -> Server:
    """Start a server on ``port`` (a free one by default) and ``data_dir``, its output
    appended to ``log``; not yet ready."""
    port = port or free_port()
    with log.open("ab") as out:
        proc = await spawn_chatapp(
            *("--port", str(port), "--data-dir", str(data_dir), *args),
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
        )
    return Server(proc, port, data_dir, log)


async def restart(server: Server) -> Server:
    """The same server again, once ready: same port, data directory and log."""
    again = await spawn_server(server.data_dir, log=server.log, port=server.port)
    await wait_ready(again)
    return again


async def wait_ready(server: Server) -> None:
    """Poll GET /healthz until it answers 200; fail if the process dies or time runs out."""
    client = AsyncHTTPClient()
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while True:
        assert server.proc.returncode is None, f"server exited at start:\n{server.output()}"
        try:
            response = await client.fetch(f"{server.http_url}/healthz", request_timeout=2)
            if response.code == 200:
                return
        except (OSError, HTTPClientError):
            pass
        assert time.monotonic() < deadline, f"server not ready:\n{server.output()}"
        await asyncio.sleep(TICK / 2)
