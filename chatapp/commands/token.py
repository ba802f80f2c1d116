"""``python -m chatapp token``: mint an HS256 token with the configured secret.

For bots and scripts on a server started with ``--jwt-secret`` (or
``CHATAPP_JWT_SECRET``). Prints the token alone on stdout.
"""

from __future__ import annotations

import argparse
import re

from chatapp.auth.tokens import mint_token
from chatapp.commands import fail
from chatapp.commands.options import HelpFormatter, add_settings_options, resolve_or_exit
from chatapp.errors import AuthError, ConfigError, ExitCode
from chatapp.settings import Group, env_of

SECRET_ENV = env_of("jwt_secret")

_DURATION = re.compile(r"(\d+)([smhd]?)")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(value: str) -> int:
    match = _DURATION.fullmatch(value.strip())
    if not match or int(match.group(1)) == 0:
        raise argparse.ArgumentTypeError(f"not a duration like 30m, 1h or 7d: {value!r}")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m chatapp token",
        description="Mint an HS256 token for a bot or script, signed with the server's secret.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--sub", required=True, help="user id (the token's 'sub')")
    parser.add_argument("--name", default=None, help="display name (default: the id)")
    parser.add_argument(
        "--ttl", type=_duration, default=_duration("1h"), help="lifetime: 90s, 30m, 1h, 7d"
    )
    parser.add_argument(
        "--rooms",
        nargs="+",
        metavar="ROOM",
        default=None,
        help="limit the token to these rooms; glob patterns such as 'team-*' allowed",
    )
    add_settings_options(parser, Group.TOKENS)
    return parser


def main(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    settings = resolve_or_exit(parser, args)
    try:
        if settings.jwt_secret is None:
            raise ConfigError(f"give --jwt-secret or set {SECRET_ENV}")
        token = mint_token(
            settings.jwt_secret,
            args.sub,
            args.name,
            args.ttl,
            rooms=args.rooms,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
        )
    except (AuthError, ConfigError) as exc:
        fail("token", exc)
        return ExitCode.USAGE  # every way to fail here is a matter of the options given
    print(token)
    return ExitCode.OK
