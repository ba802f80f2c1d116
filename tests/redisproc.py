"""A private ``redis-server`` for tests that stop, restart or kill Redis.

Never the shared one on 6379: other tests (and other people's runs) use it.
No persistence (``--save "" --appendonly no``): a restart starts empty, as
after a crash of a cache-only Redis.
"""

from __future__ import annotations

import socket
import subprocess
import time
from contextlib import closing

from factories import PATIENCE
from procs import free_port


class RedisServer:
    """``redis-server`` on a free port of 127.0.0.1; ``stop``/``start`` keep the port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + PATIENCE
        while True:
            try:
                with closing(socket.create_connection(("127.0.0.1", self.port), timeout=1)) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.02)  # redis-server starts in milliseconds

    def stop(self) -> None:
        """Kill it (SIGKILL: nothing is saved, clients see the connection drop)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None

    def command(self, *args: str) -> bytes:
        """Run one command (inline protocol) and return the raw reply."""
        with closing(socket.create_connection(("127.0.0.1", self.port), timeout=5)) as s:
            s.sendall((" ".join(args) + "\r\n").encode())
            return s.recv(4096)
