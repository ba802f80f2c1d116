"""Full-text search over message text: an SQLite FTS5 index kept in step by triggers.

``messages_fts`` is an external-content FTS5 table: it stores only the index
and reads the text from ``messages`` (rowid = ``messages.id``). Triggers
update it on every insert, delete (retention) and text update in the same
transaction, and ``rebuild`` indexes the rows that existed before.
PostgreSQL needs nothing here: its search runs on ``to_tsvector`` directly.

A later migration that rebuilds ``messages`` in batch mode drops these
triggers with the old table: it must create them again.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ADD = "INSERT INTO messages_fts (rowid, text) VALUES (new.id, new.text);"
_REMOVE = (
    "INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.id, old.text);"
)


def upgrade() -> None:
    if op.get_context().dialect.name != "sqlite":
        return
    # unicode61 with remove_diacritics 2: "cafe" finds "café", in any script with spaces
    op.execute(
        "CREATE VIRTUAL TABLE messages_fts USING fts5(text, content='messages', "
        "content_rowid='id', tokenize='unicode61 remove_diacritics 2')"
    )
    op.execute(f"CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN {_ADD} END")
    op.execute(f"CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN {_REMOVE} END")
    op.execute(
        "CREATE TRIGGER messages_fts_update AFTER UPDATE OF text ON messages "
        f"BEGIN {_REMOVE} {_ADD} END"
    )
    op.execute("INSERT INTO messages_fts (messages_fts) VALUES ('rebuild')")


def downgrade() -> None:
    if op.get_context().dialect.name != "sqlite":
        return
    for trigger in ("messages_fts_update", "messages_fts_delete", "messages_fts_insert"):
        op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    op.execute("DROP TABLE IF EXISTS messages_fts")
