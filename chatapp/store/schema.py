"""The database schema, as SQLAlchemy models. Migrations create it; this mirrors them.

Constraints carry the guarantees so that no code path can break them:
``(room, seq)`` is unique (no duplicate positions), ``(user_id, client_id)`` is
unique (a retried message is stored once), and ``rooms.last_seq`` is the
counter every append advances in the same transaction (gapless ``seq``).

These tables are also the SQL interface documented in ``docs/sql.md``; the
indexes serve its common queries. On SQLite, migration 0003 adds the
full-text index ``messages_fts`` (an FTS5 table kept in step by triggers),
which SQLAlchemy cannot describe: ``include_name`` hides it from autogenerate.
On PostgreSQL, migration 0005 adds the full-text index ``ix_messages_text_search``
(GIN over an expression) and the text search configuration it uses.

``secrets`` and ``leases`` hold what every process sharing the database must
agree on: the guest-token secret, and who runs retention (SQLite only; on
PostgreSQL an advisory lock does that).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

#: The SQLite full-text index and its shadow tables: created by migration, not by models.
FTS_TABLE = "messages_fts"
#: The PostgreSQL full-text index (migration 0005) and its text search configuration
#: (``simple`` with accents removed by ``unaccent``).
PG_SEARCH_INDEX = "ix_messages_text_search"
PG_SEARCH_CONFIG = "chatapp_search"


def include_name(name: str | None, type_: str, _parent_names: object) -> bool:
    """Autogenerate filter: leave the full-text tables (``messages_fts*``) and index alone."""
    if type_ == "index":
        return name != PG_SEARCH_INDEX
    return not (type_ == "table" and name is not None and name.startswith(FTS_TABLE))


# SQLite only autoincrements an INTEGER PRIMARY KEY; BIGINT elsewhere.
IdType = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class RoomRow(Base):
    __tablename__ = "rooms"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_seq: Mapped[int] = mapped_column(Integer, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class MessageRow(Base):
    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("room", "seq"),
        UniqueConstraint("user_id", "client_id"),
        CheckConstraint("seq >= 1", name="seq_positive"),
        # a room's messages in a time range; a user's messages by time (docs/sql.md)
        Index(None, "room", "created_at"),
        Index(None, "user_id", "created_at"),
        # ids are never reused, even after the newest row is deleted
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True, autoincrement=True)
    room: Mapped[str] = mapped_column(String(64), ForeignKey("rooms.name"))
    seq: Mapped[int] = mapped_column(Integer)
    user_id: Mapped[str] = mapped_column(String(255))
    user_name: Mapped[str] = mapped_column(String(255))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    client_id: Mapped[str | None] = mapped_column(String(128))


#: A message's columns in the order every query that reads messages selects them.
MESSAGE_COLUMNS = (
    MessageRow.id,
    MessageRow.room,
    MessageRow.seq,
    MessageRow.user_id,
    MessageRow.user_name,
    MessageRow.text,
    MessageRow.created_at,
    MessageRow.client_id,
)


class SecretRow(Base):
    """A secret every process must share, created once by whichever process comes first."""

    __tablename__ = "secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class LeaseRow(Base):
    """A lock with an expiry (SQLite): free once ``expires_at`` has passed."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
