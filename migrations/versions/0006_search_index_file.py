"""SQLite's full-text index moves to a file of its own, filled after commits.

The FTS5 index of migration 0003 was kept in step by triggers, inside the
writer's transaction: on a large database its segment merges held the write
lock for 100-200 ms while every sender waited. ``chatapp.store.search_index``
now keeps it in ``chat-search.db`` beside the database, with its own lock,
and rebuilds it there from ``messages`` on first start. This drops the
triggers and the old index. PostgreSQL is unchanged (its GIN index costs
no such pauses).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TRIGGERS = ("messages_fts_update", "messages_fts_delete", "messages_fts_insert")


def upgrade() -> None:
    if op.get_context().dialect.name != "sqlite":
        return
    for trigger in _TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    op.execute("DROP TABLE IF EXISTS messages_fts")


def downgrade() -> None:
    """Back to the index in the database, kept by triggers (as migration 0003 made it)."""
    if op.get_context().dialect.name != "sqlite":
        return
    add = "INSERT INTO messages_fts (rowid, text) VALUES (new.id, new.text);"
    remove = (
        "INSERT INTO messages_fts (messages_fts, rowid, text) VALUES ('delete', old.id, old.text);"
    )
    op.execute(
        "CREATE VIRTUAL TABLE messages_fts USING fts5(text, content='messages', "
        "content_rowid='id', tokenize='unicode61 remove_diacritics 2')"
    )
    op.execute(f"CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN {add} END")
    op.execute(f"CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN {remove} END")
    op.execute(
        "CREATE TRIGGER messages_fts_update AFTER UPDATE OF text ON messages "
        f"BEGIN {remove} {add} END"
    )
    op.execute("INSERT INTO messages_fts (messages_fts) VALUES ('rebuild')")
