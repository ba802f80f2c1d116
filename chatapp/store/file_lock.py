"""One server per SQLite file: an OS lock that dies with the process that holds it.

Two servers on one SQLite file would each deliver only their own clients'
messages live (delivery and presence are per process), so people would be
split between them without anyone noticing. The server therefore takes an
exclusive ``flock`` on ``<database>.lock`` before it migrates and holds it
until it exits. The kernel drops the lock when the process dies, even by
``kill -9``, so no stale lock survives a crash. PostgreSQL takes none, and
neither do processes that share a broker: they are meant to share the database.
"""

from __future__ import annotations

import fcntl
import os

from chatapp.errors import ConfigError
from chatapp.store.files import sqlite_file

#: The lock file sits beside the database: ``chat.db`` is locked through ``chat.db.lock``.
LOCK_SUFFIX = ".lock"


class DatabaseLock:
    """A held lock (or none, where none is needed); ``release`` lets another server start."""

    def __init__(self, fd: int | None = None) -> None:
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __enter__(self) -> DatabaseLock:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()


def lock_database(url: str, *, shared: bool) -> DatabaseLock:
    """Hold the SQLite file of ``url`` for this process, or raise ``ConfigError``.

    ``shared`` (processes that share a broker) and non-SQLite URLs take no
    lock. The lock file is created with mode 0600 and records the holder's
    pid, which the refusal names.
    """
    path = sqlite_file(url)
    if shared or path is None or not path.parent.is_dir():
        return DatabaseLock()  # a missing folder: opening the store says so
    lock_path = path.with_name(path.name + LOCK_SUFFIX)
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise ConfigError(
            f"cannot open the lock file {str(lock_path)!r} beside the database: {exc.strerror}"
        ) from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip()
        os.close(fd)
        by = f" (pid {holder})" if holder.isdigit() else ""
        raise ConfigError(
            f"another chatapp server{by} is using {str(path)!r}; stop it first, or give "
            "this one its own --data-dir or --db"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return DatabaseLock(fd)
