"""The Alembic revisions chatapp ships, and databases left at one of them.

An old database is made as an older chatapp made it: ``migrate_to`` runs the
migrations only up to a revision, through Alembic's own command (which runs
its own event loop: call it in a thread from a test).
"""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text

from chatapp.resources import resource_dir
from chatapp.store.engine import create_engine


def _script() -> ScriptDirectory:
    return ScriptDirectory(str(resource_dir("migrations")))


def revisions() -> list[str]:
    """Every revision, oldest first."""
    return [r.revision for r in reversed(list(_script().walk_revisions()))]


def head_revision() -> str:
    head = _script().get_current_head()
    assert head is not None
    return head


def migrate_to(url: str, revision: str) -> None:
    """Run the migrations up to ``revision`` only (blocking; it runs its own loop)."""
    config = Config()
    config.set_main_option("script_location", str(resource_dir("migrations")))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    command.upgrade(config, revision)


async def stored_revision(url: str) -> list[str]:
    """What ``alembic_version`` holds."""
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return list(
                (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalars()
            )
    finally:
        await engine.dispose()


async def set_revision(url: str, revision: str) -> None:
    """Stamp the database with ``revision`` without migrating (as another chatapp would)."""
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
    finally:
        await engine.dispose()
