"""Retention: delete messages older than N days, in the background, without hurting the writer.

A pass runs at start-up and then every ``PRUNE_INTERVAL`` seconds. It walks
every room and deletes its oldest messages in transactions of at most
``PRUNE_BATCH`` rows, pausing between them, so the message writer never
waits long for the database. Only a prefix of each room is deleted (a
message goes once it and every earlier one are older than the cutoff), so
what remains keeps gapless seqs; ``rooms.last_seq`` is untouched, so seq
never restarts. Clients learn of the gap from ``pruned_before``.

Every process sharing the database runs this task, but a pass runs on one
at a time: it holds the store's ``RETENTION_LOCK``, and a process that finds
it taken skips that pass (the holder does the work).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from chatapp.store import Store

log = logging.getLogger(__name__)

#: Seconds between pruning passes.
PRUNE_INTERVAL = 3600.0
#: Most messages deleted in one transaction.
PRUNE_BATCH = 500
#: How much younger than the cutoff a message must be to count as surely kept.
KEEP_MARGIN = timedelta(minutes=1)
#: Seconds to yield to the writer between two batches.
PRUNE_PAUSE = 0.05
#: The lock that lets one process at a time prune.
RETENTION_LOCK = "retention"
#: Seconds a dead process keeps the lock where it is a lease (SQLite); renewed while it lives.
RETENTION_LEASE_TTL = 300.0


class Retention:
    """Keeps ``days`` of messages; ``start`` runs passes until ``close``."""

    def __init__(
        self,
        store: Store,
        days: float,
        *,
        interval: float = PRUNE_INTERVAL,
        batch: int = PRUNE_BATCH,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._store = store
        self._keep = timedelta(days=days)
        self._interval = interval
        self._batch = batch
        self._clock = clock
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def keeps(self, created_at: datetime) -> bool:
        """Whether a message this old is surely still stored (no pass can have deleted it)."""
        return created_at >= self._clock() - self._keep + KEEP_MARGIN

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="chatapp-retention")

    async def close(self) -> None:
        """Stop after the current batch (a transaction is never cut short)."""
        self._stopping.set()
        if self._task is not None:
            await self._task

    async def prune_once(self) -> int:
        """One pass over every room, unless another process is running one (then nothing
        happens); returns how many messages were deleted."""
        async with self._store.exclusive(RETENTION_LOCK, RETENTION_LEASE_TTL) as taken:
            if not taken:
                log.debug("another process is pruning old messages; skipping this pass")
                return 0
            return await self._prune_rooms()

    async def _prune_rooms(self) -> int:
        cutoff = self._clock() - self._keep
        deleted = 0
        for room in await self._store.room_names():
            while not self._stopping.is_set():
                count = await self._store.prune(room, cutoff, self._batch)
                deleted += count
                if count < self._batch:
                    break
                await asyncio.sleep(PRUNE_PAUSE)
        return deleted

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                deleted = await self.prune_once()
            except Exception:
                log.exception("pruning old messages failed; retrying in %.0f s", self._interval)
            else:
                if deleted:
                    log.info("retention deleted %d messages older than %s", deleted, self._keep)
            with contextlib.suppress(TimeoutError):  # the interval passed: next pass
                await asyncio.wait_for(self._stopping.wait(), self._interval)
