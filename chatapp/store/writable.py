"""Whether the database takes writes now: checked at start-up and by ``/readyz``.

A database that answers reads but refuses writes (a read-only file or
folder, a ``mode=ro`` URL, a PostgreSQL standby or a read-only default)
would pass a plain ping and then fail every message. Both probes change
nothing durable: SQLite writes its header's ``user_version`` back unchanged
inside a transaction that is rolled back (``BEGIN IMMEDIATE`` alone takes
the write lock without noticing a read-only file); PostgreSQL is asked.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Connection, text

from chatapp.errors import StoreError
from chatapp.store.files import write_problem

_PG_READ_ONLY = text(
    "SELECT pg_is_in_recovery() AS standby, current_setting('transaction_read_only') AS ro"
)


def check_sqlite_files(path: Path) -> None:
    """``StoreError`` when the files of the SQLite database at ``path`` cannot be written."""
    problem = write_problem(path)
    if problem is not None:
        raise StoreError(f"cannot write the database {str(path)!r}: {problem}")


def probe(connection: Connection) -> None:
    """Raise (a driver error or ``StoreError``) unless the database would take a write now."""
    if connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            version = int(connection.exec_driver_sql("PRAGMA user_version").scalar_one())
            connection.exec_driver_sql(f"PRAGMA user_version = {version}")
        finally:
            connection.exec_driver_sql("ROLLBACK")
    elif connection.dialect.name == "postgresql":
        row = connection.execute(_PG_READ_ONLY).one()
        if row.standby:
            raise StoreError("the database refuses writes: it is a standby (in recovery)")
        if row.ro == "on":
            raise StoreError(
                "the database refuses writes: transactions are read-only "
                "(default_transaction_read_only is on)"
            )
