"""``python -m chatapp``: parse options into ``Settings`` and run the server.

Every failure an operator can cause (bad option, port in use, unwritable
data directory, bad database URL) ends with one line on stderr and a
non-zero exit code, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from chatapp import __version__
from chatapp.codes import DEFAULT_MAX_CLIENT_BACKLOG
from chatapp.ops import logs
from chatapp.server import StartupError, serve
from chatapp.settings import (
    DEFAULT_DATA_DIR,
    DEFAULT_HOST,
    DEFAULT_MAX_PER_ADDRESS,
    DEFAULT_MAX_PER_USER,
    DEFAULT_PING_INTERVAL,
    DEFAULT_PORT,
    DEFAULT_RATE_LIMIT,
    Settings,
)

EXIT_STARTUP_FAILED = 1
JWT_SECRET_ENV = "CHATAPP_JWT_SECRET"  # noqa: S105 (a variable name, not a secret)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a default only where it says something (not None, flags or empty lists)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default in (None, True, False, []) or action.default is argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


def commands() -> dict[str, Callable[[list[str]], int]]:
    """The tools besides the server, by name (imported on use: the server needs none)."""
    from chatapp.commands import backup, export, send, sql, tail, token

    return {
        "token": token.main,
        "send": send.main,
        "tail": tail.main,
        "backup": backup.main,
        "sql": sql.main,
        "export": export.main,
    }


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


def add_database_options(parser: argparse.ArgumentParser) -> None:
    """Where the data is: options the server and the data tools share."""
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help="folder for the default SQLite database (chat.db); the server creates it if missing",
    )
    parser.add_argument(
        "--db",
        metavar="URL",
        default=argparse.SUPPRESS,
        help="SQLAlchemy async database URL, e.g. sqlite+aiosqlite:///path/chat.db or "
        "postgresql+asyncpg://user@host/db (default: chat.db in --data-dir)",
    )


def database_url(args: argparse.Namespace) -> str:
    """The URL the options name, as the server would resolve it."""
    return Settings(data_dir=args.data_dir, db_url=getattr(args, "db", None)).database_url


def add_token_options(parser: argparse.ArgumentParser) -> None:
    """Options the server and the ``token`` command share."""
    parser.add_argument(
        "--jwt-secret",
        metavar="SECRET",
        default=argparse.SUPPRESS,  # never echo a secret in --help
        help=f"HS256 key of at least 32 bytes (better: set {JWT_SECRET_ENV}, since command "
        "lines are visible to other local users); with a key, tokens are required",
    )
    parser.add_argument("--jwt-issuer", metavar="ISS", default=None, help="required 'iss' claim")
    parser.add_argument("--jwt-audience", metavar="AUD", default=None, help="required 'aud' claim")


def jwt_secret(args: argparse.Namespace) -> str | None:
    return getattr(args, "jwt_secret", None) or os.environ.get(JWT_SECRET_ENV) or None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m chatapp",
        description="Run the chatapp server: browser chat at /, JSON WebSocket at /ws, "
        "plain-text WebSocket at /, scrollback at /api/rooms/ROOM/messages. "
        "Tools: `python -m chatapp token --help` mints tokens for bots and scripts.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"chatapp {__version__}")
    parser.add_argument("--host", default=DEFAULT_HOST, help="address to listen on")
    parser.add_argument(
        "--port", type=_port, default=DEFAULT_PORT, help="TCP port (0 picks a free one)"
    )
    add_database_options(parser)
    add_token_options(parser)
    parser.add_argument(
        "--jwt-public-key",
        metavar="FILE",
        type=Path,
        default=None,
        help="PEM file of an RSA or EC public key: verify RS256/ES256 tokens minted by your "
        "identity service (instead of --jwt-secret)",
    )
    guests = parser.add_mutually_exclusive_group()
    guests.add_argument(
        "--allow-guests",
        dest="allow_guests",
        action="store_true",
        default=None,
        help="let clients without a token in as guests (the default when no key is configured)",
    )
    guests.add_argument(
        "--no-guests",
        dest="allow_guests",
        action="store_false",
        help="refuse clients without a valid token (the default when a key is configured)",
    )
    parser.add_argument(
        "--allowed-origins",
        metavar="ORIGIN",
        nargs="+",
        action="extend",
        default=[],
        help="extra page origins (e.g. https://chat.example.com) allowed to open WebSockets; "
        "same-origin pages always are. 'null' admits pages opened from disk, and also "
        "sandboxed frames of any site: only for trusted local use",
    )
    parser.add_argument(
        "--trusted-proxy",
        action="store_true",
        help="behind a reverse proxy that sets X-Forwarded-For/-Proto/-Host: trust them "
        "(never enable when clients can reach the server directly)",
    )
    parser.add_argument(
        "--max-connections-per-user",
        type=_non_negative(int),
        default=DEFAULT_MAX_PER_USER,
        metavar="N",
        help="open connections one user may have; 0 for no cap",
    )
    parser.add_argument(
        "--max-connections-per-address",
        type=_non_negative(int),
        default=DEFAULT_MAX_PER_ADDRESS,
        metavar="N",
        help="open connections from one IP address (loopback exempt); 0 for no cap",
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
        "--retention-days",
        type=_non_negative(float),
        default=0,
        metavar="N",
        help="delete messages older than N days, hourly in the background (seq never "
        "restarts; clients see pruned_before); 0 keeps everything",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="logging verbosity",
    )
    parser.add_argument(
        "--log-format",
        default="text",
        choices=["text", "json"],
        help="log lines as text or as one JSON object each; both carry the connection id",
    )
    return parser


def settings_from(args: argparse.Namespace) -> Settings:
    return Settings(
        host=args.host,
        port=args.port,
        data_dir=args.data_dir,
        db_url=getattr(args, "db", None),
        jwt_secret=jwt_secret(args),
        jwt_public_key=args.jwt_public_key,
        jwt_issuer=args.jwt_issuer,
        jwt_audience=args.jwt_audience,
        allow_guests=args.allow_guests,
        allowed_origins=tuple(args.allowed_origins),
        trusted_proxy=args.trusted_proxy,
        max_connections_per_user=args.max_connections_per_user,
        max_connections_per_address=args.max_connections_per_address,
        rate_limit=args.rate_limit,
        max_client_backlog=args.max_client_backlog,
        ping_interval=args.ping_interval,
        retention_days=args.retention_days,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m chatapp [OPTIONS]`` serves; ``python -m chatapp COMMAND ...`` runs a tool."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in commands():
        return commands()[argv[0]](argv[1:])
    args = build_parser().parse_args(argv)
    logs.configure(args.log_level, args.log_format)
    try:
        asyncio.run(serve(settings_from(args)))
    except StartupError as exc:
        print(f"chatapp: error: {exc}", file=sys.stderr)
        return EXIT_STARTUP_FAILED
    except KeyboardInterrupt:
        pass
    return 0
