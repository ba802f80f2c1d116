"""``python -m chatapp tail``: print a room's history, then live messages, until stopped.

After a dropped connection it reconnects with backoff and resumes with
``since`` = the last seq printed, so nothing is printed twice or skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
from collections.abc import AsyncIterator
from typing import Any

from chatapp.commands import fail
from chatapp.commands.client import Session, socket_url
from chatapp.commands.options import HelpFormatter, add_connection_options, token_of
from chatapp.errors import ConfigError, ExitCode, Refused, Unreachable
from chatapp.limits import DEFAULT_ROOM

MAX_BACKOFF = 30.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m chatapp tail",
        description="Print a room's messages: history, then live; reconnects and resumes.",
        formatter_class=HelpFormatter,
    )
    add_connection_options(parser)
    parser.add_argument("--room", default=DEFAULT_ROOM, help="room to follow")
    parser.add_argument(
        "--since", type=int, default=None, help="start after this seq (default: the newest page)"
    )
    parser.add_argument(
        "--format", choices=["text", "jsonl"], default="text", help="one line per message"
    )
    return parser


def render(message: dict[str, Any], fmt: str) -> str:
    if fmt == "jsonl":
        return json.dumps(message, ensure_ascii=False)
    user = message["user"]["name"]
    return f"{message['ts']} #{message['room']} {message['seq']} {user}: {message['text']}"


async def tail(args: argparse.Namespace) -> None:
    last = args.since
    backoff = 0.5
    while True:
        try:
            session, history = await Session.open(
                socket_url(args.url, room=args.room, since=last), token_of(args), args.timeout
            )
        except Unreachable as exc:
            print(f"chatapp tail: {exc}; retrying", file=sys.stderr)
            await asyncio.sleep(backoff * (0.5 + random.random()))
            backoff = min(backoff * 2, MAX_BACKOFF)
            continue
        backoff = 0.5
        try:
            async for frame in _with_history(history, session):
                messages = frame["messages"] if frame["type"] == "history" else [frame]
                if messages and last is not None and messages[0]["seq"] > last + 1:
                    gap = f"{last + 1}..{messages[0]['seq'] - 1}"
                    print(f"chatapp tail: messages {gap} were not replayed", file=sys.stderr)
                for message in messages:
                    if last is None or message["seq"] > last:
                        print(render(message, args.format), flush=True)
                        last = message["seq"]
        except Unreachable as exc:
            print(f"chatapp tail: {exc}; reconnecting", file=sys.stderr)
        finally:
            session.close()


async def _with_history(history: dict[str, Any], session: Session) -> AsyncIterator[dict[str, Any]]:
    """The frames that carry messages: the connect ``history``, then everything live."""
    yield history
    async for frame in session.frames():
        if frame.get("type") in ("history", "message"):
            yield frame


def main(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        socket_url(args.url)
        asyncio.run(tail(args))
    except ConfigError as exc:
        parser.error(exc.reason)
    except Refused as exc:
        return fail("tail", exc, "refused")
    except KeyboardInterrupt:
        pass
    return ExitCode.OK
