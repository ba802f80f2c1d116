"""The files behind an SQLite database: where they are, created private, whether they take writes.

SQLite writes three files, ``chat.db`` and, in WAL mode, ``chat.db-wal`` and
``chat.db-shm`` beside it, which it creates on open: its folder must be
writable too. SQLite gives the -wal and -shm files the mode of the database
file, so creating that one 0600 keeps all three private.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

#: Files SQLite keeps beside the database in WAL mode.
WAL_SUFFIXES = ("-wal", "-shm")


def sqlite_file(url: str | URL) -> Path | None:
    """The file behind an SQLite URL (a path or a ``file:`` URI); None for anything else."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return None  # opening the store reports a bad URL
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    if database.startswith("file:"):
        uri = urlsplit(database)
        if "mode=memory" in uri.query or not uri.path:
            return None
        database = unquote(uri.path)
    return Path(database).resolve()


def create_private(path: Path) -> None:
    """Create the empty database file with mode 0600 unless it exists (SQLite would use 0644)."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))


def write_problem(path: Path) -> str | None:
    """Why SQLite could not write the database at ``path`` now, or None.

    Checks permissions (and, for root, immutable flags) with ``access(2)``:
    the folder, for the -wal and -shm files SQLite creates, and each file there is.
    """
    folder = path.parent
    if not os.access(folder, os.W_OK | os.X_OK):
        return (
            f"its folder {str(folder)!r} is not writable "
            f"(SQLite creates {path.name}-wal and {path.name}-shm there)"
        )
    if path.exists() and not os.access(path, os.W_OK):
        return "it is read-only"
    for name in (path.name + suffix for suffix in WAL_SUFFIXES):
        if (folder / name).exists() and not os.access(folder / name, os.W_OK):
            return f"{name} beside it is read-only"
    return None
