"""Command-line tools besides the server itself: ``python -m chatapp COMMAND``."""

from __future__ import annotations

import os
import sys

#: Exit code of a tool whose reader closed the pipe early (e.g. ``| head``).
EXIT_PIPE_CLOSED = 1


def stdout_gone() -> int:
    """After ``BrokenPipeError``: silence the interpreter's final flush of stdout."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return EXIT_PIPE_CLOSED
