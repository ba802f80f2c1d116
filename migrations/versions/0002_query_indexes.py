"""Indexes for the documented SQL queries (docs/sql.md).

A room's latest page already uses ``uq_messages_room_seq``; these serve a
room's messages in a time range and a user's messages by time.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_messages_room_created_at"), ["room", "created_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_messages_user_id_created_at"), ["user_id", "created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_messages_user_id_created_at"))
        batch_op.drop_index(batch_op.f("ix_messages_room_created_at"))
