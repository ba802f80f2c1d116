"""Bring a database to the newest schema with Alembic, safely from many processes at once.

The server calls ``upgrade`` at start-up (unless ``--no-migrate``), so a new or
older database just works; ``python -m chatapp migrate`` calls it explicitly.
Alembic's async ``env.py`` would call ``asyncio.run``, which cannot nest;
instead the connection is handed over in ``config.attributes``.

Several processes may start together on one empty database. Each takes a lock
that all of them see before Alembic reads the schema's revision, in the same
transaction that migrates: on PostgreSQL a transaction-level advisory lock, on
SQLite a ``BEGIN EXCLUSIVE`` transaction. One migrates; the others wait, then
find the schema current and change nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Connection, func, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from chatapp.errors import SchemaMismatch
from chatapp.resources import resource_dir
from chatapp.store.exclusive import MIGRATION_LOCK, advisory_key

log = logging.getLogger(__name__)

#: Seconds a migration's statements, or a wait for another process's migration, may take.
MIGRATION_TIMEOUT = 600.0
#: What an operator runs to migrate a database the server may not touch.
MIGRATE_COMMAND = "python -m chatapp migrate"


@dataclass(frozen=True, slots=True)
class Revision:
    """Where a database's schema stands against the migrations this chatapp ships."""

    #: The database's revision(s); empty for a database that has no schema yet.
    current: tuple[str, ...]
    #: The newest revision this chatapp knows.
    head: str
    #: Whether every revision in ``current`` is one this chatapp knows.
    known: bool

    @property
    def is_current(self) -> bool:
        return self.current == (self.head,)

    @property
    def shown(self) -> str:
        return ", ".join(self.current) or "none (an empty database)"

    def problem(self) -> str:
        """Why the schema cannot be used as it is, in one line (for ``SchemaMismatch``)."""
        if not self.known:
            return (
                f"the database's schema revision {self.shown} is not a migration this "
                f"chatapp knows (newest {self.head}); was it upgraded by a newer version?"
            )
        return (
            f"the database's schema is at revision {self.shown}, this chatapp needs "
            f"{self.head}: run `{MIGRATE_COMMAND}`"
        )


def _config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(resource_dir("migrations")))
    config.attributes["connection"] = connection
    return config


def _revision(connection: Connection) -> Revision:
    script = ScriptDirectory.from_config(_config(connection))
    current = tuple(sorted(MigrationContext.configure(connection).get_current_heads()))
    known = all(_knows(script, revision) for revision in current)
    return Revision(current=current, head=script.get_current_head() or "", known=known)


def _knows(script: ScriptDirectory, revision: str) -> bool:
    try:
        return script.get_revision(revision) is not None
    except CommandError:
        return False


def _upgrade(connection: Connection) -> Revision:
    before = _revision(connection)
    if not before.known:
        raise SchemaMismatch(before.problem())
    try:
        command.upgrade(_config(connection), "head")
    except CommandError as exc:
        raise SchemaMismatch(f"migrating the database failed: {exc}") from None
    return before


async def upgrade(engine: AsyncEngine) -> Revision:
    """Apply every pending migration in one transaction, holding the migration lock.

    Returns where the schema stood before. ``SchemaMismatch`` when the
    database was migrated by a newer chatapp. Give it an engine whose timeouts
    allow ``MIGRATION_TIMEOUT``: building an index over many rows takes time.
    """
    if engine.dialect.name == "sqlite":
        return await _upgrade_sqlite(engine)
    async with engine.begin() as connection:
        await _advisory_xact_lock(connection)
        return await connection.run_sync(_upgrade)


async def _advisory_xact_lock(connection: AsyncConnection) -> None:
    """Hold the migration lock until this transaction ends (PostgreSQL)."""
    key = advisory_key(MIGRATION_LOCK)
    if not await connection.scalar(select(func.pg_try_advisory_xact_lock(key))):
        log.info("another process is migrating the database; waiting for it")
        await connection.execute(select(func.pg_advisory_xact_lock(key)))


async def _upgrade_sqlite(engine: AsyncEngine) -> Revision:
    """Migrate inside ``BEGIN EXCLUSIVE``, so a second process waits and then sees it done.

    The driver normally opens transactions itself, and only before a data
    change (DDL would run outside any): with autocommit on, the transaction is
    ours. How long the second waits is the engine's busy timeout.
    """
    async with engine.connect() as pooled:
        connection = await pooled.execution_options(isolation_level="AUTOCOMMIT")
        await connection.exec_driver_sql("BEGIN EXCLUSIVE")
        try:
            before = await connection.run_sync(_upgrade)
        except BaseException:
            await connection.exec_driver_sql("ROLLBACK")
            raise
        await connection.exec_driver_sql("COMMIT")
    return before


async def revision(engine: AsyncEngine) -> Revision:
    """Where the database's schema stands; reads only."""
    async with engine.connect() as connection:
        return await connection.run_sync(_revision)
