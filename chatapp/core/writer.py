"""The single writer: group commit of incoming messages.

Every message goes through ``BatchWriter.submit``. One loop drains whatever
has queued up while the previous commit was in flight and stores it as one
batch, so under load many messages share one transaction (and one fsync),
while a lone message is committed at once: no timer adds latency. After each
commit ``on_commit`` receives the new messages (with the connection each came
from) in commit order, before any submitter hears back, so the broadcast
always precedes the ``ack``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from chatapp.errors import Unavailable
from chatapp.model import Appended, MessageEvent, NewMessage
from chatapp.store import Store

log = logging.getLogger(__name__)

#: Most messages committed in one transaction.
MAX_BATCH = 512


@dataclass(slots=True)
class _Pending:
    message: NewMessage
    origin: str
    done: asyncio.Future[Appended]


class BatchWriter:
    def __init__(
        self,
        store: Store,
        on_commit: Callable[[Sequence[MessageEvent]], Awaitable[None]],
        on_batch: Callable[[int, float], None] = lambda size, seconds: None,
    ) -> None:
        self._store = store
        self._on_commit = on_commit
        self._on_batch = on_batch
        self._queue: list[_Pending] = []
        self._wakeup = asyncio.Event()
        self._closed = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="chatapp-writer")

    async def submit(self, message: NewMessage, origin: str) -> Appended:
        """Queue a message from connection ``origin``; wait for its commit.

        Raises ``Unavailable`` if it could not be stored (or the writer is closed).
        """
        if self._closed:
            raise Unavailable("the server is shutting down")
        done: asyncio.Future[Appended] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(message, origin, done))
        self._wakeup.set()
        return await done

    async def close(self) -> None:
        """Refuse new messages, commit everything already queued, then stop."""
        self._closed = True
        self._wakeup.set()
        if self._task is not None:
            await self._task

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                try:
                    await self._commit(batch)
                except Exception:  # never let one batch stop the only writer
                    log.exception("committing a batch failed unexpectedly")
                    for pending in batch:
                        if not pending.done.done():
                            pending.done.set_exception(Unavailable("internal error"))
            if self._closed:
                return

    async def _commit(self, batch: list[_Pending]) -> None:
        started = time.perf_counter()
        try:
            results = await self._store.append([p.message for p in batch])
        except Exception:
            if len(batch) > 1:
                # One bad message must not sink the others: retry them one by one.
                for pending in batch:
                    await self._commit([pending])
                return
            log.exception("storing a message failed")
            if not batch[0].done.done():
                batch[0].done.set_exception(Unavailable("the message could not be stored"))
            return
        try:
            self._on_batch(len(batch), time.perf_counter() - started)  # size, commit time
        except Exception:
            log.exception("the batch observer failed")
        fresh = [
            MessageEvent(r.message, p.origin)
            for p, r in zip(batch, results, strict=True)
            if not r.duplicate
        ]
        if fresh:
            try:
                await self._on_commit(fresh)
            except Exception:
                log.exception("publishing committed messages failed")
        for pending, result in zip(batch, results, strict=True):
            if not pending.done.done():  # the submitter may have been cancelled
                pending.done.set_result(result)
