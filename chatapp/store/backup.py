"""Consistent copies of a live SQLite database, taken while the server writes.

SQLite's online backup API copies every page under one read transaction,
so the copy is exactly the database as of one commit: every message
acknowledged before that moment is in it, with its seq. WAL mode lets the
server keep committing meanwhile.
"""

from __future__ import annotations

import os
import sqlite3
from contextlib import closing
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from chatapp.errors import StoreError


def sqlite_path(url: str) -> Path:
    """The file behind an SQLite URL; ``StoreError`` for other databases."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError("bad database URL") from None
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        shown = parsed.render_as_string(hide_password=True)
        raise StoreError(
            f"backup copies SQLite databases; for {shown!r} use the database's own tools "
            "(for PostgreSQL: pg_dump)"
        )
    return Path(parsed.database)


def backup(url: str, destination: Path) -> int:
    """Copy the database to ``destination`` (replaced atomically); returns its size in bytes."""
    source_path = sqlite_path(url)
    if not source_path.is_file():
        raise StoreError(f"no database at {str(source_path)!r}")
    partial = destination.with_name(f".{destination.name}.partial")
    try:
        with (
            closing(sqlite3.connect(f"file:{source_path}?mode=ro", uri=True)) as source,
            closing(sqlite3.connect(partial)) as copy,
        ):
            source.backup(copy)
            copy.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        os.replace(partial, destination)
    except (sqlite3.Error, OSError) as exc:
        partial.unlink(missing_ok=True)
        raise StoreError(f"backup failed: {exc}") from None
    return destination.stat().st_size
