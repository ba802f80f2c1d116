"""The command-line client: ``send`` (exit code = acknowledged) and ``tail`` (resumes)."""

from __future__ import annotations

import asyncio

import pytest
from conftest import connect_json, post
from factories import PATIENCE
from procs import STARTUP_TIMEOUT, run_chatapp_async, spawn_chatapp

from chatapp.errors import CloseCode
from chatapp.limits import MAX_TEXT_CHARS


async def test_send_exits_0_once_the_message_is_stored(ws_url):
    """``send`` waits for the ack, says where it was stored, and the message is there."""
    result = await run_chatapp_async("send", "--url", ws_url, "--room", "ops", "deploy", "done")
    assert result.returncode == 0 and "seq 1" in result.stdout
    _, _, history = await connect_json(ws_url, "?room=ops")
    assert [m["text"] for m in history["messages"]] == ["deploy done"]


async def test_send_exits_1_when_the_server_refuses(ws_url):
    """A message the server will not store (too long) exits 1 with the reason."""
    result = await run_chatapp_async("send", "--url", ws_url, "x" * (MAX_TEXT_CHARS + 1))
    assert result.returncode == 1 and "too_long" in result.stderr


async def test_send_exits_3_when_nobody_answers(unused_tcp_port_url):
    """No server: exit 3, so a script can retry later."""
    result = await run_chatapp_async(
        "send", "--url", unused_tcp_port_url, "--timeout", "2", "hello"
    )
    assert result.returncode == 3 and "not acknowledged" in result.stderr


async def test_send_rejects_a_non_websocket_url():
    """A URL that is not ws:// or wss:// is a usage error."""
    result = await run_chatapp_async("send", "--url", "http://127.0.0.1:1", "hi")
    assert result.returncode == 2 and "ws://" in result.stderr


async def next_line(proc: asyncio.subprocess.Process, within: float = 2 * PATIENCE) -> bytes:
    """The tool's next line of output; failing after ``within`` seconds with its stderr (by
    default twice a test's patience: the tool is a process of its own, with its own loop)."""
    assert proc.stdout is not None and proc.stderr is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), within)
    except TimeoutError:
        proc.kill()
        pytest.fail(f"no line in {within:.1f} s; stderr:\n{(await proc.stderr.read()).decode()}")
    assert line, f"it exited; stderr:\n{(await proc.stderr.read()).decode()}"
    return line


async def test_tail_prints_history_then_live_and_resumes_after_a_drop(ws_url, chat):
    """``tail`` prints each message exactly once, in order, across a dropped connection."""
    writer, _, _ = await connect_json(ws_url)
    await post(writer, "one")
    proc = await spawn_chatapp("tail", "--url", ws_url, "--since", "0")
    try:
        lines = [await next_line(proc, STARTUP_TIMEOUT)]  # once it has started
        await post(writer, "two")
        lines.append(await next_line(proc))
        for conn in list(chat.service.admission.open):  # drop everyone, tail included
            conn.close(CloseCode.GOING_AWAY, "restart")
        writer, _, _ = await connect_json(ws_url)
        await post(writer, "three")
        await post(writer, "four")
        for _ in range(2):
            lines.append(await next_line(proc))
    finally:
        proc.terminate()
        await proc.wait()
    texts = [line.decode().rstrip("\n").split(": ", 1)[1] for line in lines]
    assert texts == ["one", "two", "three", "four"]
    assert [line.decode().split(" ")[2] for line in lines] == ["1", "2", "3", "4"]
