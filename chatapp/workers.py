"""``--workers N``: N server processes on one port, forked from a supervisor.

The parent binds the port first (so a taken port fails once, before any
fork), then forks the workers and does nothing else: each worker binds the
port again with ``SO_REUSEPORT`` (the kernel spreads new connections over
them), runs its own event loop, writer and broker, and shuts down on its
own. The parent forwards SIGTERM and SIGINT to every worker and exits once
all have: 0 when all drained cleanly. A worker that dies by a signal (a
crash, ``kill -9``) is replaced; one that exits with an error (it could not
start) stops the group with that exit code, so a broken set-up does not
fork forever. Workers get SIGTERM when the supervisor dies, even by
``kill -9``: none is left behind holding the port.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
from contextlib import suppress
from types import FrameType

from chatapp.errors import ExitCode

log = logging.getLogger(__name__)

_FORWARDED = (signal.SIGTERM, signal.SIGINT)
#: prctl(2) option: the signal this process gets when its parent dies.
PR_SET_PDEATHSIG = 1


def _stop_with_parent(supervisor: int) -> None:
    """Have the kernel send this worker SIGTERM when the supervisor dies, however it dies
    (``kill -9`` included), so that no worker is left serving on its own (Linux only)."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != supervisor:  # it died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)


def fork_workers(count: int) -> int | None:
    """Fork ``count`` workers and supervise them. Returns None in a worker (which goes on to
    serve), and in the parent the group's exit code once every worker has exited."""
    children: set[int] = set()
    stopping = False
    status = int(ExitCode.OK)

    def forward(sig: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for pid in children:
            with suppress(ProcessLookupError):
                os.kill(pid, sig)

    previous = {sig: signal.signal(sig, forward) for sig in _FORWARDED}
    supervisor = os.getpid()
    while True:
        while not stopping and len(children) < count:
            # a signal between fork and bookkeeping would miss the new worker: hold it
            signal.pthread_sigmask(signal.SIG_BLOCK, _FORWARDED)
            pid = os.fork()
            if pid == 0:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
                _stop_with_parent(supervisor)
                signal.pthread_sigmask(signal.SIG_UNBLOCK, _FORWARDED)
                return None
            children.add(pid)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _FORWARDED)
        if not children:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            return status
        pid, wait_status = os.wait()
        children.discard(pid)
        code = os.waitstatus_to_exitcode(wait_status)
        if stopping:  # one stopped by the forwarded signal before it could catch it is fine
            failed = code > 0 or (code < 0 and -code not in _FORWARDED)
            status = status or (ExitCode.FAILED if failed else ExitCode.OK)
        elif code < 0:
            log.warning("worker %d died by signal %d; starting another", pid, -code)
        else:
            log.error("worker %d exited with code %d; stopping the others", pid, code)
            status = code or ExitCode.FAILED
            forward(signal.SIGTERM, None)
