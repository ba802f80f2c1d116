"""A server out of file descriptors pauses accepting instead of spinning, and recovers."""

from __future__ import annotations

import asyncio
import shutil
import socket
from contextlib import closing

import pytest
from factories import TICK, eventually
from procs import CHATAPP, Server, chatapp_env, free_port, wait_ready
from tornado.httpclient import AsyncHTTPClient

from chatapp.web.listening import GuardedSocket

#: Open files the server process may have: a few dozen connections exhaust it.
FILE_LIMIT = 64
#: Connections the test opens: more than the server can take.
CONNECTIONS = 100


@pytest.mark.skipif(shutil.which("prlimit") is None, reason="needs prlimit (util-linux)")
async def test_running_out_of_files_pauses_accepting_and_logs_once(tmp_path):
    """Past its open-file limit the server logs one warning (not a traceback per turn of
    its loop), and once connections close it accepts again."""
    port, log = free_port(), tmp_path / "server.log"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            "prlimit", f"--nofile={FILE_LIMIT}", *CHATAPP,
            "--port", str(port), "--data-dir", str(tmp_path / "data"),
            stdout=out, stderr=asyncio.subprocess.STDOUT, env=chatapp_env(),
        )  # fmt: skip
    server = Server(proc, port, tmp_path / "data", log)
    clients: list[socket.socket] = []
    try:
        await wait_ready(server)
        for _ in range(CONNECTIONS):
            clients.append(socket.create_connection(("127.0.0.1", port)))  # the kernel accepts
        await eventually(lambda: "cannot accept connections" in server.output(), "the warning")
        await asyncio.sleep(10 * TICK)  # a spinning server writes thousands of lines meanwhile
        output = server.output()
        assert output.count("cannot accept connections") == 1, output[-2000:]
        assert "Traceback" not in output
        assert len(output.splitlines()) < 20 + FILE_LIMIT
        for client in clients:
            client.close()
        clients.clear()
        response = await AsyncHTTPClient().fetch(f"{server.http_url}/healthz", request_timeout=10)
        assert response.code == 200
    finally:
        for client in clients:
            client.close()
        await server.stop()


def test_a_guarded_socket_is_the_listening_socket_it_guards():
    """Guarding keeps the descriptor, address and listening state."""
    plain = socket.socket()
    plain.bind(("127.0.0.1", 0))
    plain.listen()
    address, fd = plain.getsockname(), plain.fileno()
    with closing(GuardedSocket.guarding(plain)) as guarded:
        assert (guarded.fileno(), guarded.getsockname()) == (fd, address)
        assert plain.fileno() == -1
