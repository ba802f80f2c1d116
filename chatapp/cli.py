"""``python -m chatapp``: parse options into ``Settings`` and run the server.

Every failure an operator can cause (bad option, port in use, unwritable
data directory, bad database URL) ends with one line on stderr and a
non-zero exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from chatapp import __version__
from chatapp.codes import DEFAULT_MAX_CLIENT_BACKLOG
from chatapp.config import (
    DEFAULT_DATA_DIR,
    DEFAULT_HOST,
    DEFAULT_PING_INTERVAL,
    DEFAULT_PORT,
    DEFAULT_RATE_LIMIT,
    Settings,
)
from chatapp.server import StartupError, serve

EXIT_STARTUP_FAILED = 1
JWT_SECRET_ENV = "CHATAPP_JWT_SECRET"  # noqa: S105 (a variable name, not a secret)


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {value!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0-65535, not {port}")
    return port


def _non_negative(kind: type[int] | type[float]) -> Callable[[str], int | float]:
    def parse(value: str) -> int | float:
        try:
            number = kind(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
        if number < 0:
            raise argparse.ArgumentTypeError(f"must be >= 0, not {value}")
        return number

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m chatapp",
        description="Run the chatapp server: browser chat at /, JSON WebSocket at /ws, "
        "plain-text WebSocket at /, scrollback at /api/rooms/ROOM/messages.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"chatapp {__version__}")
    parser.add_argument("--host", default=DEFAULT_HOST, help="address to listen on")
    parser.add_argument(
        "--port", type=_port, default=DEFAULT_PORT, help="TCP port (0 picks a free one)"
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help="folder for the default SQLite database (chat.db); created if missing",
    )
    parser.add_argument(
        "--db",
        metavar="URL",
        default=argparse.SUPPRESS,
        help="SQLAlchemy async database URL, e.g. sqlite+aiosqlite:///path/chat.db or "
        "postgresql+asyncpg://user@host/db (default: chat.db in --data-dir)",
    )
    parser.add_argument(
        "--jwt-secret",
        metavar="SECRET",
        default=argparse.SUPPRESS,  # never echo a secret in --help
        help=f"HS256 key: require a valid token on every connection (or set {JWT_SECRET_ENV}); "
        "without one, clients join as guests with generated names",
    )
    parser.add_argument(
        "--rate-limit",
        type=_non_negative(float),
        default=DEFAULT_RATE_LIMIT,
        metavar="N",
        help="frames per second per connection, bursts of max(20, N); 0 turns it off",
    )
    parser.add_argument(
        "--max-client-backlog",
        type=_non_negative(int),
        default=DEFAULT_MAX_CLIENT_BACKLOG,
        metavar="BYTES",
        help="unsent bytes a client may fall behind before it is disconnected (code 4003)",
    )
    parser.add_argument(
        "--ping-interval",
        type=_non_negative(float),
        default=DEFAULT_PING_INTERVAL,
        metavar="SECONDS",
        help="WebSocket ping period; a client silent for as long after a ping is dropped "
        "(0 disables)",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="logging verbosity",
    )
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    return Settings(
        host=args.host,
        port=args.port,
        data_dir=args.data_dir,
        db_url=getattr(args, "db", None),
        jwt_secret=getattr(args, "jwt_secret", None) or os.environ.get(JWT_SECRET_ENV) or None,
        rate_limit=args.rate_limit,
        max_client_backlog=args.max_client_backlog,
        ping_interval=args.ping_interval,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        asyncio.run(serve(settings_from(args)))
    except StartupError as exc:
        print(f"chatapp: error: {exc}", file=sys.stderr)
        return EXIT_STARTUP_FAILED
    except KeyboardInterrupt:
        pass
    return 0
