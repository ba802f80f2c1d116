"""Command-line tools besides the server itself: ``python -m chatapp COMMAND``."""

from __future__ import annotations

import os
import sys

from chatapp.errors import ChatError, ExitCode, exit_code


def fail(tool: str, error: ChatError, what: str = "error") -> ExitCode:
    """Report ``error`` on one line of stderr; the exit code its code maps to."""
    print(f"chatapp {tool}: {what}: {error.reason}", file=sys.stderr)
    return exit_code(error.code)


def stdout_gone() -> ExitCode:
    """After ``BrokenPipeError`` (e.g. ``| head``): silence the interpreter's final flush."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return ExitCode.FAILED
