"""Background tasks stop for good at shutdown, even one whose code swallowed a cancellation."""

from __future__ import annotations

import asyncio

from chatapp.tasks import cancel_and_wait


async def test_a_task_that_swallows_the_cancellation_is_asked_again_and_ends() -> None:
    """Like presence's flush loop when a library turned the CancelledError into its own
    error: the task goes on to wait for more work. One cancel() leaves it waiting forever."""
    wake = asyncio.Event()
    swallowed = asyncio.Event()

    async def loop_that_swallows_once() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            swallowed.set()  # what a library did: the request is spent
        while True:
            await wake.wait()

    task = asyncio.create_task(loop_that_swallows_once())
    await asyncio.sleep(0)
    await asyncio.wait_for(cancel_and_wait(task), 5)
    assert swallowed.is_set()
    assert task.cancelled()


async def test_failed_finished_and_missing_tasks_are_taken_quietly() -> None:
    """A task that failed earlier, one already done, and None: nothing raised, and the
    failure is retrieved (no "exception was never retrieved" at exit)."""

    async def fail() -> None:
        raise RuntimeError("broken")

    failed = asyncio.create_task(fail())
    done = asyncio.create_task(asyncio.sleep(0))
    await asyncio.sleep(0.01)
    await cancel_and_wait(failed, done, None)
    assert failed.done() and done.done()
    assert failed._log_traceback is False  # retrieved


async def test_cancelling_the_caller_cancels_the_caller() -> None:
    """The caller's own cancellation is never swallowed by the wait."""
    released = asyncio.Event()

    async def never_ends() -> None:
        while not released.is_set():
            try:
                await released.wait()
            except asyncio.CancelledError:
                continue  # refuses every request

    task = asyncio.create_task(never_ends())
    await asyncio.sleep(0)
    caller = asyncio.create_task(cancel_and_wait(task))
    await asyncio.sleep(0.05)
    caller.cancel()
    await asyncio.wait([caller], timeout=5)
    assert caller.cancelled()
    released.set()  # let the stubborn task end: the test leaves nothing behind
    await asyncio.wait([task], timeout=5)
    assert task.done()
