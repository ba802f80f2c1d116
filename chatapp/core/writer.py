"""The single writer: group commit of incoming messages, with a bound on every wait.

Every message goes through ``BatchWriter.submit``. One loop drains whatever
has queued up while the previous commit was in flight and stores it as one
batch, so under load many messages share one transaction (and one fsync),
while a lone message is committed at once: no timer adds latency. After
each commit ``on_commit`` receives the batch's messages (with the
connection each came from) in commit order, before any submitter hears
back, so the broadcast always precedes the ``ack``. It runs while the next
batch is being written, never beside the previous batch's: the two threads'
work overlaps (durable writes +10 %) and broadcasts keep commit order.

When the database fails, nobody waits long: a batch is retried as a whole
(never message by message) until ``timeout`` seconds have passed, then
every sender in it gets ``Unavailable``; a message still queued after
``timeout`` is withdrawn with ``Unavailable`` too. Retrying is safe because
every message carries an idempotency key: a batch whose commit reached the
database though its answer was lost is found, not stored again. Its
messages are published all the same (the hub drops what it has delivered),
so each stored message is broadcast exactly once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from chatapp.errors import StoreError, Unavailable
from chatapp.limits import DEFAULT_DB_TIMEOUT
from chatapp.model import Appended, MessageEvent, NewMessage
from chatapp.store import Store
from chatapp.tasks import cancel_and_wait

log = logging.getLogger(__name__)

#: Most messages committed in one transaction.
MAX_BATCH = 512
#: Pauses between attempts at a failing batch (the last one repeats).
RETRY_PAUSES = (0.05, 0.1, 0.25, 0.5)


@dataclass(slots=True, eq=False)
class _Pending:
    message: NewMessage
    origin: str
    done: asyncio.Future[Appended]
    queued_at: float


class BatchWriter:
    def __init__(
        self,
        store: Store,
        on_commit: Callable[[Sequence[MessageEvent]], Awaitable[None]],
        on_batch: Callable[[int, int, float], None] = lambda size, duplicates, seconds: None,
        *,
        timeout: float = DEFAULT_DB_TIMEOUT,
    ) -> None:
        self._store = store
        self._on_commit = on_commit
        self._on_batch = on_batch
        self._timeout = timeout
        self._queue: list[_Pending] = []
        self._wakeup = asyncio.Event()
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        self._expiry: asyncio.TimerHandle | None = None
        self._in_flight: list[_Pending] = []
        self._unanswered: list[_Pending] = []  # stored, not published and answered yet

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="chatapp-writer")

    async def submit(self, message: NewMessage, origin: str) -> Appended:
        """Queue a message from connection ``origin``; wait for its commit.

        Raises ``Unavailable`` if it could not be stored in time (or the writer
        is closed): it was not stored, and may be sent again with its key.
        """
        return await self.enqueue(message, origin)

    def enqueue(self, message: NewMessage, origin: str) -> asyncio.Future[Appended]:
        """``submit`` without a coroutine: the future resolves as ``submit`` returns (a
        connection that pipelines messages then needs no task per message)."""
        if self._closed:
            raise Unavailable("the server is shutting down")
        loop = asyncio.get_running_loop()
        pending = _Pending(message, origin, loop.create_future(), loop.time())
        self._queue.append(pending)
        self._wakeup.set()
        return pending.done

    async def close(self, timeout: float | None = None) -> None:
        """Refuse new messages, commit everything already queued, then stop.

        After ``timeout`` seconds (a database that does not answer) the writer
        stops where it is: every sender still waiting gets ``Unavailable``.
        """
        self._closed = True
        self._wakeup.set()
        if self._task is None:
            return
        await asyncio.wait([self._task], timeout=timeout)
        stuck = [*self._unanswered, *self._in_flight, *self._queue]
        await cancel_and_wait(self._task)
        _fail(stuck, Unavailable("the server is shutting down"))
        self._queue.clear()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        publishing: asyncio.Task[None] | None = None
        try:
            while True:
                await self._wakeup.wait()
                self._wakeup.clear()
                while self._queue:
                    batch = [p for p in self._queue[:MAX_BATCH] if not p.done.done()]
                    del self._queue[:MAX_BATCH]
                    if not batch:
                        continue
                    self._expiry = loop.call_later(self._timeout, self._withdraw_stale)
                    self._in_flight = batch
                    try:
                        stored = await self._write(batch)
                        self._unanswered.extend(pending for pending, _ in stored)
                        # Publishing runs while the next batch is written (on SQLite, in a
                        # thread of its own), never beside or before the batch before's.
                        if publishing is not None:
                            await publishing
                    finally:
                        self._expiry.cancel()
                        self._in_flight = []
                    publishing = loop.create_task(self._publish(stored))
                if self._closed:
                    if publishing is not None:
                        await publishing
                    return
        finally:  # cancelled: close() timed out, and answers whoever is left
            if publishing is not None:
                publishing.cancel()

    def _withdraw_stale(self) -> None:
        """A commit is taking long: messages queued behind it for ``timeout`` are withdrawn
        (their senders may send them again); the rest are checked again later."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() - self._timeout
        stale = [p for p in self._queue if p.queued_at <= deadline]
        _fail(stale, Unavailable("the database did not answer in time; send the message again"))
        self._queue = [p for p in self._queue if not p.done.done()]
        if self._queue:
            wait = self._queue[0].queued_at + self._timeout - loop.time()
            self._expiry = loop.call_later(max(wait, 0.01), self._withdraw_stale)

    async def _write(self, batch: list[_Pending]) -> list[tuple[_Pending, Appended]]:
        """Store a batch; what was stored, in commit order. Whoever could not be stored
        has heard back (``Unavailable``)."""
        started = time.perf_counter()
        deadline = min(p.queued_at for p in batch) + self._timeout
        try:
            results = await self._append([p.message for p in batch], deadline)
        except Unavailable as exc:
            _fail(batch, exc)
            return []
        except Exception:  # a fault of the data, not of the database: find the culprit
            if len(batch) == 1:
                log.exception("storing a message failed")
                _fail(batch, Unavailable("the message could not be stored"))
                return []
            log.warning("a batch of %d failed; committing its halves apart", len(batch))
            middle = len(batch) // 2
            return [*await self._write(batch[:middle]), *await self._write(batch[middle:])]
        try:
            duplicates = sum(1 for result in results if result.duplicate)
            self._on_batch(len(batch), duplicates, time.perf_counter() - started)
        except Exception:
            log.exception("the batch observer failed")
        return list(zip(batch, results, strict=True))

    async def _publish(self, stored: list[tuple[_Pending, Appended]]) -> None:
        """Publish what was stored, then answer its submitters: the broadcast precedes the
        ``ack``."""
        try:
            if stored:
                await self._on_commit([MessageEvent(r.message, p.origin) for p, r in stored])
        except Exception:
            log.exception("publishing committed messages failed")
        for pending, result in stored:
            if not pending.done.done():  # the submitter may have been cancelled
                pending.done.set_result(result)
        del self._unanswered[: len(stored)]  # published in order: they lead the list

    async def _append(self, messages: list[NewMessage], deadline: float) -> list[Appended]:
        """``store.append``, retried as a whole while the database fails, until ``deadline``
        (loop time: the oldest message's arrival plus ``timeout``). Each attempt gets at
        least a quarter of ``timeout``, so a batch that waited long still has a real try."""
        loop = asyncio.get_running_loop()
        attempt = 0
        while True:
            allowed = max(deadline - loop.time(), self._timeout / 4)
            try:
                return await asyncio.wait_for(
                    self._store.append(messages, retry=attempt > 0), allowed
                )
            except (StoreError, TimeoutError) as exc:
                reason = exc.reason if isinstance(exc, StoreError) else "it did not answer"
                pause = RETRY_PAUSES[min(attempt, len(RETRY_PAUSES) - 1)]
                if loop.time() + pause >= deadline:
                    log.warning("storing %d messages failed: %s", len(messages), reason)
                    raise Unavailable("storage is unavailable; send the message again") from None
                attempt += 1
                await asyncio.sleep(pause)


def _fail(batch: list[_Pending], error: Unavailable) -> None:
    for pending in batch:
        if not pending.done.done():
            pending.done.set_exception(Unavailable(error.reason))
