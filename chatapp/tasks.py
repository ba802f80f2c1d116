"""Stopping background tasks for good.

``task.cancel()`` is a request that the code a task awaits can swallow: a
library that turns the ``CancelledError`` into an error of its own, or
``asyncio.timeout`` on Python 3.11 when its deadline and the cancellation
meet. The task then loops on with the request spent, and a shutdown that
gathers it waits forever. That left a ``--workers`` worker serving on after
its supervisor died: Redis presence's flush loop, "cancelling" yet waiting
for more work. ``cancel_and_wait`` asks again until every task has ended.
"""

from __future__ import annotations

import asyncio
from typing import Any

#: Seconds between two requests to a task that is still running.
RECANCEL_INTERVAL = 0.5


async def cancel_and_wait(*tasks: asyncio.Task[Any] | None) -> None:
    """Cancel ``tasks`` (None is skipped) and return once all have ended, whatever they
    caught; their exceptions are taken, not raised (they were stopping anyway)."""
    pending = {task for task in tasks if task is not None}
    while pending:
        for task in pending:
            task.cancel()
        done, pending = await asyncio.wait(pending, timeout=RECANCEL_INTERVAL)
        for task in done:
            if not task.cancelled():
                task.exception()  # retrieved: no "exception was never retrieved" at exit
