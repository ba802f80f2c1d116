"""Bring a database to the newest schema with Alembic, from inside the running loop.

The server calls ``upgrade`` at start-up, so a new or older database just
works. Alembic's async ``env.py`` would call ``asyncio.run``, which cannot
nest; instead the connection is handed over in ``config.attributes``.
"""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from chatapp.errors import SchemaMismatch
from chatapp.resources import resource_dir


def _config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(resource_dir("migrations")))
    config.attributes["connection"] = connection
    return config


def _upgrade(connection: Connection) -> None:
    try:
        command.upgrade(_config(connection), "head")
    except CommandError as exc:
        raise SchemaMismatch(
            f"the database's schema revision is unknown to this chatapp ({exc}); "
            "was it created by a newer version?"
        ) from None


async def upgrade(engine: AsyncEngine) -> None:
    """Apply every pending migration in one transaction."""
    async with engine.begin() as connection:
        await connection.run_sync(_upgrade)


def _is_current(connection: Connection) -> bool:
    script = ScriptDirectory.from_config(_config(connection))
    current = MigrationContext.configure(connection).get_current_heads()
    return set(current) == set(script.get_heads())


async def is_current(engine: AsyncEngine) -> bool:
    """Whether the database is at the newest revision this chatapp knows."""
    async with engine.connect() as connection:
        return await connection.run_sync(_is_current)
