"""Full-text search on PostgreSQL: indexed, and folding accents as SQLite's FTS5 does.

``chatapp_search`` is the ``simple`` text search configuration with the
``unaccent`` dictionary put in front for words, so "Café" is indexed and
searched as "cafe". ``ix_messages_text_search`` is a GIN index over
``to_tsvector('chatapp_search'::regconfig, text)``, the very expression the
search queries use. ``to_tsvector`` with a named configuration is IMMUTABLE,
so the index needs no wrapper function (``unaccent()`` itself is only STABLE);
the accents go in the configuration, which also folds the query's words.

``unaccent`` ships with PostgreSQL's contrib modules (Debian: in the server
package since PostgreSQL 10, or ``postgresql-contrib``); without it this
migration stops with a message saying so. Creating it needs the CREATE right
on the database once (it is a trusted extension), or an administrator's
``CREATE EXTENSION unaccent`` beforehand. SQLite needs nothing here (0003).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from chatapp.errors import ConfigError

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The names are chatapp.store.schema's PG_SEARCH_CONFIG and PG_SEARCH_INDEX, frozen here.
_CONFIG = "chatapp_search"
_INDEX = "ix_messages_text_search"


def upgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    available = op.get_bind().execute(
        sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'unaccent'")
    )
    if available.first() is None:
        raise ConfigError(
            "PostgreSQL lacks the 'unaccent' extension that search needs: install the "
            "server's contrib modules (Debian, Ubuntu: postgresql-contrib), then start again"
        )
    op.execute("CREATE EXTENSION IF NOT EXISTS unaccent")
    op.execute(f"CREATE TEXT SEARCH CONFIGURATION {_CONFIG} (COPY = pg_catalog.simple)")
    op.execute(
        f"ALTER TEXT SEARCH CONFIGURATION {_CONFIG} "
        "ALTER MAPPING FOR hword, hword_part, word WITH unaccent, simple"
    )
    op.execute(
        f"CREATE INDEX {_INDEX} ON messages USING gin (to_tsvector('{_CONFIG}'::regconfig, text))"
    )


def downgrade() -> None:
    if op.get_context().dialect.name != "postgresql":
        return
    op.execute(f"DROP INDEX IF EXISTS {_INDEX}")
    op.execute(f"DROP TEXT SEARCH CONFIGURATION IF EXISTS {_CONFIG}")
