"""SQLite's full-text index, in a file of its own beside the database, filled after commits.

Why not triggers in the database: FTS5 merges its index segments as it
grows, and on a database of a million messages a merge takes 100-200 ms.
Run by a trigger, it ran inside the writer's transaction, holding the only
write lock while every sender waited (p99 at 1000 msg/s went from 30 ms on
an empty database to 100-400 ms). In ``chat-search.db`` the index has its
own write lock: the writer never waits for it.

The index is derived data. ``catch_up`` reads the messages committed since
it last ran (ids only grow: ``AUTOINCREMENT``) and adds them in one
transaction of the index file, on a thread of its own. A background task
does this soon after each commit; a search first catches up too, so it
always sees every message committed before it. Retention's deletions are
removed by id. Losing the file loses nothing: it is rebuilt from the
messages on the next start, and backups need only ``chat.db``.

Queries read it through ``ATTACH ... AS search`` on the store's read
connections (``attach``), as ``search.messages_fts``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from chatapp.errors import StoreError
from chatapp.store import files

log = logging.getLogger(__name__)

#: The schema name the index is attached under on the store's connections.
SCHEMA = "search"
#: Messages indexed per transaction of the index file.
CHUNK = 2000
#: A search catches the index up first, unless more than this many messages wait (a new
#: index being built): it is then refused as unavailable for a moment, never given
#: results that miss messages.
MOST_BEHIND_FOR_SEARCH = 20 * CHUNK
#: Seconds between catch-ups when no commit asks for one sooner.
IDLE_INTERVAL = 1.0
#: Seconds to keep trying to set up the index file while other processes do the same.
OPEN_PATIENCE = 15.0
#: The indexing thread's nice value: the lowest priority.
INDEXER_NICENESS = 19

_CREATE = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS messages_fts USING fts5(text, "
    # unicode61 with remove_diacritics 2: "cafe" finds "café", in any script with spaces
    "tokenize='unicode61 remove_diacritics 2')",
    "CREATE TABLE IF NOT EXISTS indexed (id INTEGER PRIMARY KEY CHECK (id = 1), up_to INTEGER)",
    "INSERT OR IGNORE INTO indexed (id, up_to) VALUES (1, 0)",
)


def index_path(database: Path) -> Path:
    """``chat.db`` -> ``chat-search.db``, beside it."""
    return database.with_name(f"{database.stem}-search{database.suffix}")


def attach(dbapi_connection: Any, path: Path) -> None:
    """Make the index readable as ``search.messages_fts`` on a connection to the database."""
    cursor = dbapi_connection.cursor()
    cursor.execute(f"ATTACH DATABASE ? AS {SCHEMA}", (str(path),))
    cursor.close()


class SearchIndex:
    """The index file: created on open, filled by ``catch_up`` on its own thread."""

    def __init__(self, database: Path) -> None:
        self.database = database
        self.path = index_path(database)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="chatapp-search-index")
        self._db: sqlite3.Connection | None = None
        self._wanted = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    # --- life ------------------------------------------------------------------

    async def open(self) -> None:
        """Create the index file (private) and its tables; start filling it in the background."""
        await self._run(self._open)
        self._task = asyncio.get_running_loop().create_task(self._fill())

    def _open(self) -> None:
        _yield_to_the_server()
        files.create_private(self.path)
        deadline = time.monotonic() + OPEN_PATIENCE
        while True:
            try:
                self._db = self._connect()
                return
            except sqlite3.OperationalError as exc:
                # processes starting together race to set up a new file; SQLite answers
                # some of those races "locked" at once, without waiting (journal mode,
                # schema): try again shortly
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise StoreError(
                        f"cannot open the search index {str(self.path)!r}: {exc}"
                    ) from None
                time.sleep(0.05)
            except sqlite3.Error as exc:
                raise StoreError(
                    f"cannot open the search index {str(self.path)!r}: {exc}"
                ) from None

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA busy_timeout=5000")
            db.execute("PRAGMA journal_mode=WAL")
            # derived data: a crash may lose the last commits of the index, which the next
            # catch-up redoes (it restarts from what the index says it holds)
            db.execute("PRAGMA synchronous=NORMAL")
            for statement in _CREATE:
                db.execute(statement)
            # read only, in transactions that write nothing there: the writer's lock is never
            # taken (BEGIN IMMEDIATE would take it on every attached database: never used here)
            db.execute("ATTACH DATABASE ? AS chat", (str(self.database),))
            _forget_a_future(db)
        except BaseException:
            db.close()
            raise
        return db

    async def close(self) -> None:
        # Asked to stop, not cancelled: on Python 3.11 a cancellation that meets the
        # event's wake-up inside wait_for can be lost, and the task would run on.
        self._closing = True
        self._wanted.set()
        if self._task is not None:
            await self._task
            self._task = None
        if self._db is not None:
            await self._run(self._db.close)
            self._db = None
        self._thread.shutdown(wait=False)

    # --- filling -----------------------------------------------------------------

    def committed(self) -> None:
        """Messages were committed: index them soon."""
        self._wanted.set()

    async def _fill(self) -> None:
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wanted.wait(), IDLE_INTERVAL)
            self._wanted.clear()
            try:
                await self._index_pending()
            except StoreError as exc:
                log.warning("search index: catching up failed, will try again: %s", exc)

    async def catch_up(self, most_behind: int | None = MOST_BEHIND_FOR_SEARCH) -> None:
        """Index every message committed so far; ``StoreError`` if that is more than
        ``most_behind`` (None: wait for any number)."""
        behind = await self._run(self._behind) if most_behind is not None else 0
        if most_behind is not None and behind > most_behind:
            raise StoreError(
                f"the search index is being built ({behind} messages to go); try again in a moment"
            )
        await self._index_pending()

    async def _index_pending(self) -> None:
        """Index chunk after chunk until none is full (or the index is closing)."""
        while not self._closing and await self._run(self._catch_up_chunk) == CHUNK:
            pass

    def _up_to(self, db: sqlite3.Connection) -> int:
        row = db.execute("SELECT up_to FROM indexed WHERE id = 1").fetchone()
        return int(row[0]) if row else 0

    def _behind(self) -> int:
        db = self._connection()
        row = db.execute(
            "SELECT count(*) FROM chat.messages WHERE id > ?", (self._up_to(db),)
        ).fetchone()
        return int(row[0])

    def _catch_up_chunk(self) -> int:
        """Index up to CHUNK of the messages committed since the last call; how many.

        The messages are read in a statement of their own, so no snapshot of the
        database is held while FTS5 writes and merges (a reader that stays keeps the
        writer's checkpoints from finishing)."""
        db = self._connection()
        start = self._up_to(db)
        rows = db.execute(
            "SELECT id, text FROM chat.messages WHERE id > ? ORDER BY id LIMIT ?",
            (start, CHUNK),
        ).fetchall()
        if not rows:
            return 0
        with _index_transaction(db):
            if self._up_to(db) != start:
                return 0  # another process sharing the file indexed them meanwhile
            db.executemany("INSERT INTO messages_fts (rowid, text) VALUES (?, ?)", rows)
            db.execute("UPDATE indexed SET up_to = ? WHERE id = 1", (rows[-1][0],))
        return len(rows)

    async def forget(self, ids: Iterable[int]) -> None:
        """Remove deleted messages (retention) from the index."""
        doomed = [(i,) for i in ids]
        if doomed:
            await self._run(self._forget, doomed)

    def _forget(self, doomed: list[tuple[int]]) -> None:
        db = self._connection()
        with _index_transaction(db):
            db.executemany("DELETE FROM messages_fts WHERE rowid = ?", doomed)

    def _connection(self) -> sqlite3.Connection:
        if self._db is None:
            raise StoreError("the search index is closed")
        return self._db

    async def _run(self, work: Any, *args: Any) -> Any:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._thread, work, *args)
        except sqlite3.Error as exc:
            raise StoreError(f"the search index did not answer: {exc}") from None


def _yield_to_the_server() -> None:
    """Run this thread at the lowest priority: its merges then take idle CPU instead of
    time slices from the event loop on the same core (a 200 ms merge at equal priority
    stalled deliveries for about half that). On Linux a thread has its own nice value."""
    with contextlib.suppress(OSError, AttributeError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), INDEXER_NICENESS)


@contextlib.contextmanager
def _index_transaction(db: sqlite3.Connection) -> Iterator[None]:
    """A transaction that writes the index file only; its first statement takes the index's
    write lock, so processes sharing the file take turns and never index a message twice."""
    db.execute("BEGIN")
    try:
        db.execute("UPDATE indexed SET up_to = up_to WHERE id = 1")
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _forget_a_future(db: sqlite3.Connection) -> None:
    """An index that holds messages the database never gave out (``chat.db`` was restored
    from a backup, so its ids will be given out again) is started afresh."""
    with _index_transaction(db):
        up_to = db.execute("SELECT up_to FROM indexed WHERE id = 1").fetchone()[0]
        issued = 0
        if db.execute(
            "SELECT 1 FROM chat.sqlite_master WHERE name = 'sqlite_sequence'"
        ).fetchone():  # made by SQLite at the first AUTOINCREMENT insert
            issued = db.execute(
                "SELECT coalesce(max(seq), 0) FROM chat.sqlite_sequence WHERE name = 'messages'"
            ).fetchone()[0]
        if up_to > issued:
            log.warning("search index: ahead of the database (restored?); rebuilding it")
            db.execute("DELETE FROM messages_fts")
            db.execute("UPDATE indexed SET up_to = 0 WHERE id = 1")
