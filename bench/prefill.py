"""A large, realistic chat history written straight into chatapp's tables.

Posting a million messages through the server takes many minutes; this
writes the same rows in seconds, in the exact shape the server leaves them:
the server creates the schema first (its migrations), then rows go into
``rooms`` and ``messages`` directly. What holds afterwards, as if the server
had stored every message:

- ``seq`` counts each room from 1 without gaps, in ``id`` (= time) order, and
  ``rooms.last_seq`` is each room's highest ``seq``;
- rooms interleave in time, so a room's history is spread over the table as
  in a real deployment; the benchmark room holds a long share of it;
- ``(user_id, client_id)`` is unique: UUIDs like the browser's, none for a
  tenth of the messages (the tutorial's text clients send none);
- on SQLite the search index file (``chat-search.db``, chatapp's
  ``search_index``) is filled at the end by chatapp's own indexer, complete
  before the server starts, as a long-running server's would be.

Generation is seeded, so a spec always yields the same rows.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import random
import sqlite3
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.system import REPO, BenchError
from chatapp.store.search_index import SearchIndex

CHUNK = 50_000
#: Texts are cut from one long random run of words this long.
CORPUS_WORDS = 1 << 20
HISTORY_SPAN = timedelta(days=365)
#: Share of users with an account (``u-N``); the rest are guests (``guest:HEX``).
ACCOUNT_SHARE = 0.7
NO_CLIENT_ID_SHARE = 0.1
_MESSAGE_COLUMNS = ("room", "seq", "user_id", "user_name", "text", "created_at", "client_id")
_SYLLABLES = ("ka", "lo", "mi", "ne", "ru", "ta", "shi", "po", "de", "van", "ber", "qu", "ix", "zo")

Row = tuple[str, int, str, str, str, datetime, str | None]


#: Part of the cache key: raised when the way a pre-filled database is finished changes,
#: so that databases cached by older code are built again (2: VACUUM on PostgreSQL).
FORMAT = 2


@dataclass(frozen=True)
class PrefillSpec:
    """What to generate. ``room`` (the one benchmarks use) gets ``room_share`` of it."""

    messages: int = 1_000_000
    rooms: int = 1000
    room: str = "bench"
    room_share: float = 0.1
    users: int = 5000
    seed: int = 1

    def key(self) -> str:
        """Names the cached database: changes with the spec and with the migrations."""
        digest = hashlib.sha256(repr((FORMAT, sorted(asdict(self).items()))).encode())
        for migration in sorted((REPO / "migrations" / "versions").glob("*.py")):
            digest.update(migration.read_bytes())
        return digest.hexdigest()[:12]


@dataclass(frozen=True)
class RoomSummary:
    name: str
    last_seq: int
    created_at: datetime


class History:
    """The rows of one spec, generated lazily in chunks, and the rooms they fill."""

    def __init__(self, spec: PrefillSpec, *, start: datetime | None = None) -> None:
        if spec.messages < 0 or spec.rooms < 0 or not 0 <= spec.room_share <= 1:
            raise BenchError("prefill: messages and rooms must be >= 0, room share within 0..1")
        self.spec = spec
        self._rng = random.Random(spec.seed)
        self._start = start or (datetime.now(UTC) - HISTORY_SPAN).replace(tzinfo=None)
        self._step = HISTORY_SPAN / max(1, spec.messages)
        names = [spec.room, *(f"room-{i:05d}" for i in range(1, spec.rooms + 1))]
        others = [1 / (k**0.8) for k in range(1, spec.rooms + 1)]  # a few busy rooms, a long tail
        scale = (1 - spec.room_share) / sum(others) if others else 0
        weights = [spec.room_share if others else 1.0, *(w * scale for w in others)]
        self._room_of = self._rng.choices(
            names, cum_weights=list(itertools.accumulate(weights)), k=spec.messages
        )
        self.rooms = self._summaries(names)
        self._users = [self._user(i) for i in range(max(1, spec.users))]
        self._words = self._vocabulary()

    def _summaries(self, names: list[str]) -> list[RoomSummary]:
        counts = dict.fromkeys(names, 0)
        first: dict[str, int] = {}
        for index, room in enumerate(self._room_of):
            counts[room] += 1
            first.setdefault(room, index)
        return [RoomSummary(name, counts[name], self._moment(first.get(name, 0))) for name in names]

    def _moment(self, index: int) -> datetime:
        return self._start + self._step * index

    def _user(self, index: int) -> tuple[str, str]:
        if index < self.spec.users * ACCOUNT_SHARE:
            return f"u-{index}", f"user{index}"
        token = f"{self._rng.getrandbits(64):016x}"
        return f"guest:{token}", f"guest-{token[:6]}"

    def _vocabulary(self) -> list[str]:
        words: set[str] = set()
        while len(words) < 3000:
            words.add("".join(self._rng.choices(_SYLLABLES, k=self._rng.randint(1, 4))))
        return sorted(words)

    def chunks(self, size: int = CHUNK) -> Iterator[list[Row]]:
        """Every message in id order, ``size`` at a time: (room, seq, user_id, ...).

        Texts are runs of a long random word list (cheap to cut, varied for the
        full-text index): mostly 1-12 words, a fifth 13-120.
        """
        rng, random_ = self._rng, self._rng.random
        corpus = rng.choices(self._words, k=CORPUS_WORDS)
        users, n_users = self._users, len(self._users)
        seqs = dict.fromkeys((r.name for r in self.rooms), 0)
        chunk: list[Row] = []
        for index, room in enumerate(self._room_of):
            seqs[room] += 1
            user_id, user_name = users[int(random_() * n_users)]
            words = 1 + int(random_() * 12) if random_() < 0.8 else 13 + int(random_() * 108)
            start = int(random_() * (CORPUS_WORDS - words))
            client_id = None
            if random_() >= NO_CLIENT_ID_SHARE:
                h = f"{rng.getrandbits(128):032x}"  # a version-4-looking UUID, like the browser's
                client_id = f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{h[16:20]}-{h[20:]}"
            text = " ".join(corpus[start : start + words])
            moment = self._moment(index)
            chunk.append((room, seqs[room], user_id, user_name, text, moment, client_id))
            if len(chunk) == size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk


def fill_sqlite(path: Path, spec: PrefillSpec) -> None:
    """Fill the (migrated, empty) SQLite database at ``path``."""
    history = History(spec)
    db = sqlite3.connect(path, isolation_level=None)
    try:
        _refuse_non_empty(db.execute("SELECT count(*) FROM messages").fetchone()[0])
        db.execute("PRAGMA journal_mode=DELETE")  # one big transaction: no WAL the size of the db
        db.execute("PRAGMA synchronous=OFF")
        db.execute("PRAGMA cache_size=-262144")
        # Indexes are rebuilt once at the end, with their own SQL.
        deferred = db.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE tbl_name = 'messages' "
            "AND type IN ('index', 'trigger') AND sql IS NOT NULL AND name NOT LIKE 'sqlite_%'"
        ).fetchall()
        db.execute("BEGIN")
        for kind, name, _sql in deferred:
            db.execute(f'DROP {kind.upper()} "{name}"')
        db.executemany(
            "INSERT INTO rooms (name, last_seq, created_at) VALUES (?, ?, ?)",
            [(r.name, r.last_seq, _sqlite_time(r.created_at)) for r in history.rooms],
        )
        insert = (
            f"INSERT INTO messages ({', '.join(_MESSAGE_COLUMNS)}) VALUES (?, ?, ?, ?, ?, ?, ?)"
        )
        for chunk in history.chunks():
            db.executemany(insert, [(*row[:5], _sqlite_time(row[5]), row[6]) for row in chunk])
        for _kind, _name, sql in deferred:
            db.execute(sql)
        db.execute("COMMIT")
        db.execute("PRAGMA journal_mode=WAL")
        _verify(db.execute(_CONSISTENCY).fetchall())
    finally:
        db.close()
    asyncio.run(_index_everything(path))


async def _index_everything(path: Path) -> None:
    index = SearchIndex(path)
    await index.open()
    try:
        await index.catch_up(most_behind=None)
    finally:
        await index.close()


async def fill_postgres(dsn: str, spec: PrefillSpec) -> None:
    """Fill the (migrated, empty) PostgreSQL database at ``dsn`` with COPY, then VACUUM."""
    asyncpg = import_asyncpg()
    history = History(spec)
    db = await asyncpg.connect(dsn)
    try:
        _refuse_non_empty(await db.fetchval("SELECT count(*) FROM messages"))
        await db.copy_records_to_table(
            "rooms",
            records=[(r.name, r.last_seq, r.created_at.replace(tzinfo=UTC)) for r in history.rooms],
            columns=["name", "last_seq", "created_at"],
        )
        for chunk in history.chunks():
            await db.copy_records_to_table(
                "messages",
                records=[(*row[:5], row[5].replace(tzinfo=UTC), row[6]) for row in chunk],
                columns=list(_MESSAGE_COLUMNS),
            )
        # A long-lived deployment has statistics and a vacuumed table. Without this, the
        # clone's first autovacuum (a million rows inserted since none) runs during the
        # measurement: it was the whole of a 3-7x p99 on PostgreSQL (0.95x after).
        await db.execute("VACUUM (FREEZE, ANALYZE)")
        _verify(await db.fetch(_CONSISTENCY))
    finally:
        await db.close()


def fill_postgres_sync(dsn: str, spec: PrefillSpec) -> None:
    asyncio.run(fill_postgres(dsn, spec))


def import_asyncpg() -> Any:
    try:
        import asyncpg  # type: ignore[import-untyped]
    except ImportError:
        raise BenchError("PostgreSQL needs asyncpg: pip install -e '.[postgres]'") from None
    return asyncpg


# Rooms whose counter disagrees with their messages (count, highest seq): none, or a bug here.
_CONSISTENCY = """
SELECT r.name, r.last_seq, count(m.id), coalesce(max(m.seq), 0), coalesce(min(m.seq), 1)
FROM rooms r LEFT JOIN messages m ON m.room = r.name
GROUP BY r.name, r.last_seq
HAVING r.last_seq <> count(m.id) OR r.last_seq <> coalesce(max(m.seq), 0)
    OR coalesce(min(m.seq), 1) <> 1
"""


def _verify(bad: list[Any]) -> None:
    if bad:
        raise BenchError(f"prefill: rooms with seq gaps or a wrong last_seq: {list(bad[:5])}")


def _refuse_non_empty(count: int) -> None:
    if count:
        raise BenchError(f"prefill: the database already holds {count} messages")


def _sqlite_time(moment: datetime) -> str:
    """How SQLAlchemy stores a UTC DateTime in SQLite (naive, always with microseconds)."""
    return moment.isoformat(sep=" ", timespec="microseconds")
