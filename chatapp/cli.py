"""``python -m chatapp``: parse options into ``Settings`` and run the server, or run a tool.

Every failure an operator can cause (bad option, port in use, unwritable
data directory, bad database URL) ends with one line on stderr and a
non-zero exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from chatapp import __version__
from chatapp.commands.options import HelpFormatter, add_settings_options, resolve_or_exit
from chatapp.errors import ChatError, ExitCode, exit_code
from chatapp.ops import logs
from chatapp.server import run


def commands() -> dict[str, Callable[[list[str]], int]]:
    """The tools besides the server, by name (imported on use: the server needs none)."""
    from chatapp.commands import backup, export, migrate, send, sql, tail, token

    return {
        "token": token.main,
        "send": send.main,
        "tail": tail.main,
        "backup": backup.main,
        "sql": sql.main,
        "export": export.main,
        "migrate": migrate.main,
    }


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m chatapp",
        description="Run the chatapp server: browser chat at /, JSON WebSocket at /ws, "
        "plain-text WebSocket at /, scrollback at /api/rooms/ROOM/messages. "
        "Every option can also be set in the environment variable named after it. "
        f"Tools: {', '.join(commands())} (`python -m chatapp TOOL --help`).",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"chatapp {__version__}")
    add_settings_options(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m chatapp [OPTIONS]`` serves; ``python -m chatapp COMMAND ...`` runs a tool."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in commands():
        return commands()[argv[0]](argv[1:])
    parser = build_parser()
    settings = resolve_or_exit(parser, parser.parse_args(argv))
    logs.configure(settings.log_level, settings.log_format)
    try:
        return run(settings)
    except ChatError as exc:
        print(f"chatapp: error: {exc.reason}", file=sys.stderr)
        return exit_code(exc.code)
    except KeyboardInterrupt:
        return ExitCode.OK
