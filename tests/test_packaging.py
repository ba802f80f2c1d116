"""``pip install .`` (not only the editable install the tests use) ships every module and file."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import zipfile
from contextlib import closing, suppress
from pathlib import Path

from factories import TICK
from procs import REPO
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPResponse
from tornado.websocket import websocket_connect


def test_the_wheel_holds_every_module_migration_and_static_file(tmp_path: Path) -> None:
    """A package missing from pyproject.toml would break the README's first command."""
    source = tmp_path / "src"  # a clean copy: an old build/ folder could hide a gap
    shutil.copytree(
        REPO, source, ignore=shutil.ignore_patterns(".*", "build", "*.egg-info", "__pycache__")
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(tmp_path),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    [wheel] = tmp_path.glob("chatapp-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"chatapp/{p.relative_to(REPO / 'chatapp')}" for p in REPO.glob("chatapp/**/*.py")}
    expected |= {
        f"chatapp/migrations/{p.relative_to(REPO / 'migrations')}"
        for p in REPO.glob("migrations/**/*")
        if p.is_file() and p.suffix in {".py", ".mako"} and "__pycache__" not in p.parts
    }
    expected |= {f"chatapp/static/{p.name}" for p in (REPO / "static").iterdir() if p.is_file()}
    assert expected - shipped == set()


#: The README's quick start serves on this port; the test needs it free.
QUICK_START_PORT = 3000
#: Seconds the quick start may take: a fresh venv and ``pip install .`` come first.
QUICK_START_TIMEOUT = 3000 * TICK


def readme_commands() -> list[str]:
    """The README's ``sh`` code blocks, in order: the quick start first."""
    return re.findall(r"```sh\n(.*?)\n```", (REPO / "README.md").read_text(), re.DOTALL)


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    """What CI proves is what the README promises: its second command, as written."""
    ci_lines = (REPO / ".ci" / "run").read_text().strip().splitlines()
    assert ci_lines[-1] == readme_commands()[1]


def fresh_checkout(destination: Path) -> Path:
    """What a fresh clone of this working tree holds: tracked and new, not ignored, files."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        check=True,
        capture_output=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return destination


def outside_any_venv() -> dict[str, str]:
    """The environment of a new shell: no active venv, no PYTHONPATH into this checkout."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    venv_bin = str(Path(sys.prefix) / "bin")
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if p != venv_bin)
    return env


async def test_the_readme_quick_start_serves_from_a_fresh_checkout(tmp_path: Path) -> None:
    """The README's first command, verbatim, from the root of a fresh checkout: page, hello,
    history and an ack (run from the root, Python imports the source folder, not the wheel)."""
    command = readme_commands()[0]
    assert command.endswith(f"python -m chatapp --port {QUICK_START_PORT}")
    with closing(socket.socket()) as probe:
        assert probe.connect_ex(("127.0.0.1", QUICK_START_PORT)) != 0, "port 3000 is taken"
    root = fresh_checkout(tmp_path / "chatapp")
    log = tmp_path / "quickstart.log"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            "bash",
            "-c",
            command,
            cwd=root,
            env=outside_any_venv(),
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        page = await _first_answer(f"http://127.0.0.1:{QUICK_START_PORT}/", proc, log)
        assert b"<title>" in page.body
        conn = await websocket_connect(f"ws://127.0.0.1:{QUICK_START_PORT}/ws")
        try:
            hello = json.loads(await conn.read_message())
            history = json.loads(await conn.read_message())
            assert (hello["type"], history["type"]) == ("hello", "history")
            await conn.write_message(
                json.dumps({"type": "message", "room": "general", "text": "hi", "client_id": "q1"})
            )
            frame = json.loads(await asyncio.wait_for(conn.read_message(), 10))
            while frame["type"] != "ack":
                frame = json.loads(await asyncio.wait_for(conn.read_message(), 10))
            assert (frame["client_id"], frame["seq"]) == ("q1", 1)
        finally:
            conn.close()
        assert (root / "chatapp-data" / "chat.db").is_file()
    finally:
        with suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        code = await asyncio.wait_for(proc.wait(), 30)
    assert code == 0, log.read_text(errors="replace")


async def _first_answer(url: str, proc: asyncio.subprocess.Process, log: Path) -> HTTPResponse:
    """GET ``url`` once the server answers; fail at once if the command ends first."""
    client = AsyncHTTPClient()
    deadline = time.monotonic() + QUICK_START_TIMEOUT
    while True:
        assert proc.returncode is None, f"the quick start ended:\n{log.read_text(errors='replace')}"
        with suppress(OSError, HTTPClientError):
            return await client.fetch(url, request_timeout=5)
        assert time.monotonic() < deadline, f"no answer:\n{log.read_text(errors='replace')}"
        await asyncio.sleep(5 * TICK)
