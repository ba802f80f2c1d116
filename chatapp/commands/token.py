"""``python -m chatapp token``: mint an HS256 token with the configured secret.

For bots and scripts on a server started with ``--jwt-secret`` (or
``CHATAPP_JWT_SECRET``). Prints the token alone on stdout.
"""

from __future__ import annotations

import argparse
import re
import sys

from chatapp.auth.tokens import AuthError, KeyConfigError, mint_token
from chatapp.cli import JWT_SECRET_ENV, HelpFormatter, add_token_options, jwt_secret

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
    add_token_options(parser)
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    secret = jwt_secret(args)
    if secret is None:
        print(f"chatapp token: error: give --jwt-secret or set {JWT_SECRET_ENV}", file=sys.stderr)
        return 2
    try:
        token = mint_token(
            secret,
            args.sub,
            args.name,
            args.ttl,
            rooms=args.rooms,
            issuer=args.jwt_issuer,
            audience=args.jwt_audience,
        )
    except (AuthError, KeyConfigError) as exc:
        print(f"chatapp token: error: {exc}", file=sys.stderr)
        return 2
    print(token)
    return 0
