"""``--workers N``: N processes serve one port and stop together; N > 1 needs Redis."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from cluster import SETTLE, Member, guest_token
from factories import eventually
from procs import assert_startup_error, free_port, run_chatapp

from chatapp.errors import ExitCode


def children_of(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_more_than_one_worker_without_redis_is_refused(tmp_path):
    """--workers 2 alone: one line naming --redis, exit code 2 (options that do not go
    together), nothing started."""
    result = run_chatapp("--workers", "2", "--port", "0", "--data-dir", str(tmp_path / "data"))
    line = assert_startup_error(result)
    assert "--workers 2 needs --redis" in line
    assert result.returncode == ExitCode.USAGE
    assert not (tmp_path / "data" / "chat.db").exists()


@pytest.mark.redis
async def test_two_workers_serve_one_port_as_one_chat_and_stop_together(
    launch, db_url, private_redis
):
    """Two worker processes behind one port (on SQLite and PostgreSQL): members land on
    either and all see every message; SIGTERM to the parent drains both and the group
    exits 0."""
    server = await launch(None, "--workers", "2", "--redis", private_redis.url, "--db", db_url)
    await eventually(lambda: len(children_of(server.proc.pid)) == 2, "two workers", SETTLE)
    workers = children_of(server.proc.pid)
    members = []
    for number in range(6):
        member = Member(f"m{number}", await guest_token(server.http_url, f"m{number}"))
        await member.connect(server.ws_url, ["general"])
        members.append(member)
    for number, member in enumerate(members):
        await member.post_or_queue("general", "hello", f"c{number}")
    await eventually(lambda: all(len(m.seqs["general"]) == 6 for m in members), "delivery", SETTLE)
    assert all(m.seqs["general"] == [1, 2, 3, 4, 5, 6] for m in members)
    assert await server.stop(signal.SIGTERM) == 0
    for pid in workers:
        await eventually(
            lambda pid=pid: not os.path.exists(f"/proc/{pid}"), f"{pid} exited", SETTLE
        )
    output = server.output()
    assert output.count("shutting down") == 2, output


@pytest.mark.redis
async def test_a_killed_worker_is_replaced(launch, private_redis):
    """A worker killed with -9 is replaced by a new one; the port keeps answering."""
    server = await launch(None, "--workers", "2", "--redis", private_redis.url)
    await eventually(lambda: len(children_of(server.proc.pid)) == 2, "two workers", SETTLE)
    victim = children_of(server.proc.pid)[0]
    os.kill(victim, signal.SIGKILL)
    await eventually(
        lambda: (
            len(children_of(server.proc.pid)) == 2 and victim not in children_of(server.proc.pid)
        ),
        "a replacement",
        SETTLE,
    )
    member = Member("Ann", await guest_token(server.http_url, "Ann"))
    await member.connect(server.ws_url, ["general"])
    assert await server.stop(signal.SIGTERM) == 0


@pytest.mark.redis
async def test_workers_stop_when_their_supervisor_is_killed(launch, private_redis):
    """kill -9 of the parent: the kernel tells every worker to stop; none keeps the port."""
    server = await launch(None, "--workers", "2", "--redis", private_redis.url)
    await eventually(lambda: len(children_of(server.proc.pid)) == 2, "two workers", SETTLE)
    workers = children_of(server.proc.pid)
    await server.stop(signal.SIGKILL)
    for pid in workers:
        await eventually(
            lambda pid=pid: not os.path.exists(f"/proc/{pid}"), f"{pid} exited", SETTLE
        )


def test_an_unreachable_redis_is_a_one_line_start_up_error(tmp_path):
    """--redis pointing where nothing answers: one line naming it, exit 1."""
    url = f"redis://127.0.0.1:{free_port()}/0"
    result = run_chatapp("--redis", url, "--port", "0", "--data-dir", str(tmp_path / "data"))
    assert f"cannot reach Redis at {url!r}" in assert_startup_error(result)
    assert result.returncode == ExitCode.FAILED
