"""The guest-token secret is shared state: every server on one database signs alike.

Servers run in-process on their own data dirs and one database of each backend,
as several processes or machines would.
"""

from __future__ import annotations

import asyncio
import secrets

import pytest
from conftest import connect_json, sign_in
from procs import rows_in
from tornado.httpclient import HTTPClientError

from chatapp.auth.tokens import Authenticator
from chatapp.errors import ConfigError
from chatapp.settings import GUEST_SECRET_FILE
from chatapp.store.engine import open_store

#: A --guest-secret of the accepted length.
OPTION_SECRET = "guest-secret-given-to-every-process-0123456789"


async def guest(port: int, name: str = "Ann") -> dict:
    """A guest session from the server at ``port``."""
    return await sign_in(f"http://127.0.0.1:{port}", {"name": name})


async def accepts(port: int, token: str) -> bool:
    """Whether the server at ``port`` lets a client in with ``token``."""
    try:
        await connect_json(f"ws://127.0.0.1:{port}", f"?token={token}")
    except HTTPClientError as exc:
        assert exc.code == 401
        return False
    return True


def old_install_token(secret: str) -> str:
    """A guest token as an install that kept its secret in the data dir signed it."""
    token, _ = Authenticator(None, secret, allow_guests=True).guest_token("Old")
    return token


async def test_secrets_proposed_at_once_settle_on_one_value(db_url):
    """Stores proposing different secrets under one name at the same moment all get the
    same one, and later proposals change nothing."""
    stores = [await open_store(db_url) for _ in range(3)]
    try:
        agreed = await asyncio.gather(
            *(store.shared_secret("guest-token", f"proposal-{i}") for i, store in enumerate(stores))
        )
        assert len(set(agreed)) == 1 and agreed[0].startswith("proposal-")
        assert await stores[0].shared_secret("guest-token", "too late") == agreed[0]
    finally:
        for store in stores:
            await store.close()


async def test_servers_on_one_database_accept_each_others_guest_tokens(serve, db_url, tmp_path):
    """A guest signed in on one server is let in by another that shares its database."""
    first = await serve(data_dir=tmp_path / "a", db_url=db_url)
    second = await serve(data_dir=tmp_path / "b", db_url=db_url)
    from_first = await guest(first)
    from_second = await guest(second, "Bob")
    assert await accepts(second, from_first["token"])
    assert await accepts(first, from_second["token"])
    assert not (tmp_path / "a" / GUEST_SECRET_FILE).exists()


async def test_an_existing_secret_file_is_imported_once_so_its_tokens_stay_valid(
    serve, db_url, tmp_path
):
    """The data dir's old secret goes into a database that has none; a later file does not."""
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / GUEST_SECRET_FILE).write_text(secrets.token_urlsafe(48) + "\n")
    issued = old_install_token((tmp_path / "old" / GUEST_SECRET_FILE).read_text().strip())
    upgraded = await serve(data_dir=tmp_path / "old", db_url=db_url)
    assert await accepts(upgraded, issued)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / GUEST_SECRET_FILE).write_text(secrets.token_urlsafe(48))
    joining = await serve(data_dir=tmp_path / "other", db_url=db_url)
    assert await accepts(joining, issued)
    other_file = (tmp_path / "other" / GUEST_SECRET_FILE).read_text()
    assert not await accepts(joining, old_install_token(other_file))


async def test_guest_secret_option_signs_for_every_server_instead_of_the_database(
    serve, db_url, tmp_path
):
    """With --guest-secret, servers given it accept each other's guests; the database's
    own secret (used by a server without the option) is a different one."""
    first = await serve(data_dir=tmp_path / "a", db_url=db_url, guest_secret=OPTION_SECRET)
    second = await serve(data_dir=tmp_path / "b", db_url=db_url, guest_secret=OPTION_SECRET)
    without = await serve(data_dir=tmp_path / "c", db_url=db_url)
    token = (await guest(first))["token"]
    assert await accepts(second, token)
    assert await accepts(first, old_install_token(OPTION_SECRET))
    assert not await accepts(without, token)


async def test_a_weak_guest_secret_is_refused_at_start(serve):
    """A --guest-secret shorter than 32 bytes keeps the server from starting, with a reason."""
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        await serve(guest_secret="short")


async def test_the_guest_secret_never_reaches_the_logs(launch, tmp_path):
    """Neither a given secret nor the database's own appears in the server's output."""
    given = await launch(
        tmp_path / "a", "--log-level", "debug", env={"CHATAPP_GUEST_SECRET": OPTION_SECRET}
    )
    stored = await launch(tmp_path / "b", "--log-level", "debug")
    for server in (given, stored):
        assert await accepts(server.port, (await guest(server.port))["token"])
        assert await server.stop() == 0
    [(kept,)] = rows_in(stored.db_path, "SELECT value FROM secrets")
    assert OPTION_SECRET not in given.output()
    assert kept not in stored.output()
    assert "guest" in stored.output()  # the log does show the traffic
