"""``python -m chatapp send``: post one message; the exit code says whether it was stored.

Exit 0 once the server acknowledged it (it is durable), 1 when the server
refused it (bad token, forbidden room, too long...), 3 when no ack came.
If the connection drops before the ack, the message is sent again with the
same ``client_id``, which the server never stores twice.
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from typing import Any

from chatapp.commands import fail
from chatapp.commands.client import Session, socket_url
from chatapp.commands.options import HelpFormatter, add_connection_options, token_of
from chatapp.errors import ConfigError, ExitCode, Refused, Unreachable
from chatapp.limits import DEFAULT_ROOM

ATTEMPTS = 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m chatapp send",
        description="Post a message and wait for the server's ack. Exit 0: stored; "
        "1: refused; 3: no ack (server unreachable or silent).",
        formatter_class=HelpFormatter,
    )
    add_connection_options(parser)
    parser.add_argument("--room", default=DEFAULT_ROOM, help="room to post in")
    parser.add_argument("text", nargs="+", help="the message (words are joined by spaces)")
    return parser


async def send(url: str, token: str | None, room: str, text: str, timeout: float) -> dict[str, Any]:
    """Post ``text`` and return the ack; retried with the same client_id on a dropped link."""
    frame = {"type": "message", "room": room, "text": text, "client_id": uuid.uuid4().hex}
    for attempt in range(ATTEMPTS):
        try:
            session, _ = await Session.open(socket_url(url, room=room, limit=1), token, timeout)
        except Unreachable:
            if attempt == ATTEMPTS - 1:
                raise
            await asyncio.sleep(0.5 * 2**attempt)
            continue
        try:
            await session.send(frame)
            async for reply in session.frames(timeout):
                if reply.get("type") == "ack" and reply.get("client_id") == frame["client_id"]:
                    return reply
                if reply.get("type") == "error":
                    raise Refused(f"{reply.get('code')}: {reply.get('reason')}")
        except Unreachable:
            if attempt == ATTEMPTS - 1:
                raise
        finally:
            session.close()
    raise Unreachable("no ack")


def main(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        ack = asyncio.run(
            send(args.url, token_of(args), args.room, " ".join(args.text), args.timeout)
        )
    except ConfigError as exc:
        parser.error(exc.reason)
    except Refused as exc:
        return fail("send", exc, "refused")
    except Unreachable as exc:
        return fail("send", exc, "not acknowledged")
    print(f"stored in #{ack['room']} as seq {ack['seq']}")
    return ExitCode.OK
