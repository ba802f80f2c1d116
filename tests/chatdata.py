"""A small, known chat history stored through the real store, for the SQL-facing tests.

Rooms ``general`` (seq 1-6) and ``random`` (seq 1-4, the first one pruned by
retention, the last one an hour old); users ``u-alice`` and ``u-bob``; times
around 2026-11-26 UTC, so that every example in docs/sql.md finds rows.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from factories import ALICE, BOB

from chatapp.model import NewMessage
from chatapp.store.engine import open_store


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


#: (room, user, text, created_at) in commit order.
MESSAGES = [
    ("general", ALICE, "hello everyone", at("2026-11-25 23:59:59.999999")),
    ("general", BOB, "Hello Alice, café?", at("2026-11-26 00:00:00")),
    ("general", ALICE, "yes, the usual place", at("2026-11-26 09:30:00")),
    ("random", BOB, "first post, soon pruned", at("2026-11-26 10:00:00")),
    ("random", ALICE, "a cat picture", at("2026-11-26 10:05:00")),
    ("general", BOB, "see you at noon", at("2026-11-26 11:00:00")),
    ("random", BOB, 'quotes " and AND ( NEAR', at("2026-11-26 12:00:00")),
    ("general", ALICE, "back home", at("2026-11-26 23:59:59.999999")),
    ("general", BOB, "good morning", at("2026-11-27 00:00:00")),
]
#: The general messages created on 2026-11-26 (UTC), by seq.
GENERAL_ON_26TH = [2, 3, 4, 5]


async def populate(url: str) -> None:
    """Migrate ``url`` and store MESSAGES, one recent message, and prune random's seq 1."""
    store = await open_store(url)
    try:
        for room, user, text, created in MESSAGES:
            await store.append([NewMessage(room, user, text, None, created)])
        recent = datetime.now(UTC) - timedelta(hours=1)
        await store.append([NewMessage("random", BOB, "hello again", "c-1", recent)])
        assert await store.prune("random", at("2026-11-26 10:01:00"), 10) == 1
    finally:
        await store.close()
