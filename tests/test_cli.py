"""``python -m chatapp`` as an operator runs it: options, one-line errors, the environment."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest
from conftest import Client, open_client
from factories import SECRET, token
from procs import JWT_ENV, assert_startup_error, run_chatapp, run_chatapp_async
from tornado.httpclient import HTTPClientError

from chatapp.cli import build_parser
from chatapp.settings import Settings

#: Concurrent starts for failures that show up only in some runs.
RACE_RUNS = 8


def assert_usage_error(result: subprocess.CompletedProcess[str], option: str) -> None:
    """argparse's rejection: exit 2, usage, then one error line naming ``option``."""
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0].startswith("usage: ")
    assert lines[-1].startswith(f"python -m chatapp: error: argument {option}: "), lines[-1]
    assert sum("error:" in line for line in lines) == 1, result.stderr


@pytest.fixture
def listener() -> Iterator[int]:
    """A port that something else is already listening on."""
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


@pytest.fixture
def regular_file(tmp_path: Path) -> Path:
    path = tmp_path / "not-a-dir"
    path.write_text("just a file\n")
    return path


def documents(help_text: str, option: str) -> bool:
    """Whether ``--help`` output has an entry for ``option`` (``  --x`` or ``  -x, --x``)."""
    return re.search(rf"^  (-\w+, )*{re.escape(option)}\b", help_text, re.MULTILINE) is not None


# --- --help -----------------------------------------------------------------


@pytest.fixture(scope="module")
def help_text(tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess[str]:
    return run_chatapp("--help", cwd=tmp_path_factory.mktemp("help"))


def test_help_exits_0(help_text):
    """``--help`` prints usage on stdout and exits 0."""
    assert help_text.returncode == 0
    assert help_text.stdout.startswith("usage: ")


@pytest.mark.parametrize(
    "option",
    [
        "--host",
        "--port",
        "--db",
        "--data-dir",
        "--jwt-secret",
        "--rate-limit",
        "--max-client-backlog",
        "--ping-interval",
        "--log-level",
        "--version",
    ],
)
def test_help_documents_option(help_text, option):
    """Every command-line option appears in ``--help``."""
    assert documents(help_text.stdout, option)


def test_help_documents_every_option_the_parser_accepts(help_text):
    """No option of ``build_parser()`` is missing from ``--help``."""
    options = [o for o in build_parser()._option_string_actions if o.startswith("--")]
    assert options
    assert [o for o in options if not documents(help_text.stdout, o)] == []


def test_help_mentions_the_jwt_secret_environment_variable(help_text):
    """``--help`` tells operators they may pass the secret via CHATAPP_JWT_SECRET."""
    assert JWT_ENV in help_text.stdout


def test_help_never_shows_the_jwt_secret(tmp_path):
    """With CHATAPP_JWT_SECRET set, ``--help`` does not echo its value."""
    result = run_chatapp("--help", cwd=tmp_path, env={JWT_ENV: SECRET})
    assert result.returncode == 0
    assert SECRET not in result.stdout + result.stderr


def test_version_prints_the_version(tmp_path):
    """``--version`` prints ``chatapp X.Y.Z`` and exits 0."""
    result = run_chatapp("--version", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.startswith("chatapp ")


# --- operator mistakes --------------------------------------------------------


def test_port_in_use_is_one_line_error(tmp_path, listener):
    """A port someone else listens on: one ``chatapp: error:`` line naming the port."""
    result = run_chatapp(
        "--host", "127.0.0.1", "--port", str(listener), "--data-dir", str(tmp_path), cwd=tmp_path
    )
    line = assert_startup_error(result)
    assert str(listener) in line


@pytest.mark.parametrize("value", ["65536", "-1", "http", "3000x", ""])
def test_bad_port_is_a_usage_error(tmp_path, value):
    """A port out of range or not a number is refused by argument parsing."""
    result = run_chatapp("--port", value, "--data-dir", str(tmp_path), cwd=tmp_path)
    assert_usage_error(result, "--port")


@pytest.mark.parametrize("value", ["-1", "-0.5", "fast"])
def test_bad_rate_limit_is_a_usage_error(tmp_path, value):
    """A negative or non-numeric ``--rate-limit`` is refused by argument parsing."""
    result = run_chatapp("--rate-limit", value, "--data-dir", str(tmp_path), cwd=tmp_path)
    assert_usage_error(result, "--rate-limit")


def test_data_dir_under_a_regular_file_is_one_line_error(tmp_path, regular_file):
    """A data dir that cannot be created (its parent is a file) is a one-line error."""
    data_dir = regular_file / "data"
    result = run_chatapp("--port", "0", "--data-dir", str(data_dir), cwd=tmp_path)
    line = assert_startup_error(result)
    assert str(data_dir) in line


def test_data_dir_that_is_a_regular_file_is_one_line_error(tmp_path, regular_file):
    """A data dir that is an existing regular file is a one-line error."""
    result = run_chatapp("--port", "0", "--data-dir", str(regular_file), cwd=tmp_path)
    assert_startup_error(result)


@pytest.mark.parametrize(
    "url",
    [
        "garbage",
        "://",
        "nosuchdialect://host/db",
        "sqlite+nosuchdriver:///x.db",
        "sqlite:///{tmp}/sync.db",
    ],
    ids=["garbage", "empty-scheme", "unknown-dialect", "unknown-driver", "sync-driver"],
)
def test_bad_database_url_is_one_line_error(tmp_path, url):
    """An unparsable URL, unknown dialect or driver, or a sync driver: one-line error."""
    result = run_chatapp("--port", "0", "--db", url.format(tmp=tmp_path), cwd=tmp_path)
    assert_startup_error(result)


async def test_sqlite_file_under_a_regular_file_is_one_line_error(tmp_path, regular_file):
    """An SQLite path that cannot be created is a one-line error, never with a traceback.

    Started several times, as many at once as there are cores: a traceback from a racing
    database thread would show up in only some runs, more often on a busy machine. (All
    RACE_RUNS at once on two cores could take longer than a run may.)
    """
    url = f"sqlite+aiosqlite:///{regular_file}/chat.db"
    together = asyncio.Semaphore(os.cpu_count() or 2)

    async def start() -> subprocess.CompletedProcess[str]:
        async with together:
            return await run_chatapp_async("--port", "0", "--db", url, cwd=tmp_path)

    results = await asyncio.gather(*(start() for _ in range(RACE_RUNS)))
    for result in results:
        assert_startup_error(result)


def test_sqlite_file_that_is_not_a_database_is_one_line_error(tmp_path):
    """An existing file that is not SQLite is a one-line error, with no traceback."""
    (tmp_path / "chat.db").write_bytes(b"this is not an sqlite database at all" * 100)
    result = run_chatapp("--port", "0", "--data-dir", str(tmp_path), cwd=tmp_path)
    assert_startup_error(result)


def test_database_from_a_newer_chatapp_is_one_line_error(tmp_path):
    """A database stamped with a schema revision this version lacks is a one-line error."""
    with closing(sqlite3.connect(tmp_path / "chat.db")) as db:
        db.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)")
        db.execute("INSERT INTO alembic_version VALUES ('9999_from_the_future')")
        db.commit()
    result = run_chatapp("--port", "0", "--data-dir", str(tmp_path), cwd=tmp_path)
    assert_startup_error(result)


# --- CHATAPP_JWT_SECRET ---------------------------------------------------------


async def test_jwt_secret_from_environment_refuses_connection_without_token(launch):
    """With CHATAPP_JWT_SECRET set, /ws without a token is refused with HTTP 401."""
    server = await launch(env={JWT_ENV: SECRET})
    with pytest.raises(HTTPClientError) as refused:
        await open_client(f"{server.ws_url}/ws")
    assert refused.value.code == 401


async def test_jwt_secret_from_environment_verifies_tokens(launch):
    """With CHATAPP_JWT_SECRET set, a token signed with it is accepted as its user."""
    server = await launch(env={JWT_ENV: SECRET})
    bearer = {"Authorization": f"Bearer {token(sub='u-42', name='Ada')}"}
    client = Client(await open_client(f"{server.ws_url}/ws", headers=bearer))
    hello = await client.expect("hello")
    assert hello["user"] == {"id": "u-42", "name": "Ada"}
    client.close()


async def test_without_jwt_secret_connections_are_guests(launch):
    """Without CHATAPP_JWT_SECRET (or --jwt-secret), a tokenless client joins as a guest."""
    server = await launch()
    client = Client(await open_client(f"{server.ws_url}/ws"))
    hello = await client.expect("hello")
    assert hello["user"]["id"] and hello["user"]["name"]
    client.close()


def test_every_setting_can_come_from_its_environment_variable():
    """Each option reads ``CHATAPP_<OPTION>`` when the command line does not give it."""
    environ = {
        "CHATAPP_PORT": "4100",
        "CHATAPP_DB_URL": "sqlite+aiosqlite:///elsewhere.db",
        "CHATAPP_ALLOWED_ORIGINS": "https://a.example, https://b.example",
        "CHATAPP_TRUSTED_PROXY": "yes",
        "CHATAPP_NO_SUCH_OPTION": "ignored",
    }
    settings = Settings.resolve({}, environ)
    assert (settings.port, settings.db_url, settings.trusted_proxy) == (
        4100,
        "sqlite+aiosqlite:///elsewhere.db",
        True,
    )
    assert settings.allowed_origins == ("https://a.example", "https://b.example")


def test_the_command_line_wins_over_the_environment():
    """An option given on the command line overrides its environment variable."""
    args = build_parser().parse_args(["--port", "4200", "--no-guests"])
    given = {k: v for k, v in vars(args).items()}
    settings = Settings.resolve(given, {"CHATAPP_PORT": "4100", "CHATAPP_ALLOW_GUESTS": "1"})
    assert (settings.port, settings.allow_guests) == (4200, False)


def test_an_unusable_environment_value_is_a_usage_error_naming_the_variable(tmp_path):
    """A bad ``CHATAPP_*`` value stops the server like a bad option: exit 2, one error line."""
    result = run_chatapp(cwd=tmp_path, env={"CHATAPP_RATE_LIMIT": "fast"})
    assert result.returncode == 2, result
    assert result.stderr.splitlines()[-1].endswith("CHATAPP_RATE_LIMIT: not a number: 'fast'")
