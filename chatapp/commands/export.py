"""``python -m chatapp export --room R``: one room's messages as JSON lines or CSV.

Reads the database read-only, like ``sql``, from one query whose rows
arrive in chunks, so a room of any size exports in constant memory and
as one consistent snapshot. Messages come in seq order; ``--since`` and
``--until`` select by ``created_at`` (from inclusive, to exclusive; a time
without an offset is UTC). Each record has the columns of docs/sql.md,
with ``created_at`` as ISO-8601 UTC (``Z``).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import sys
from contextlib import aclosing
from datetime import UTC, datetime
from typing import Any, TextIO

from chatapp.commands import fail, stdout_gone
from chatapp.commands.options import HelpFormatter, add_settings_options, resolve_or_exit
from chatapp.core import protocol
from chatapp.errors import ExitCode, RequestError, StoreError
from chatapp.model import StoredMessage
from chatapp.settings import Group
from chatapp.store.readonly_database import ReadOnlyDatabase
from chatapp.web.wire import iso_utc

FIELDS = ("room", "seq", "id", "user_id", "user_name", "text", "created_at", "client_id")


def _room(value: str) -> str:
    try:
        return protocol.room_name(value)
    except RequestError as exc:
        raise argparse.ArgumentTypeError(exc.reason) from None


def _instant(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO-8601 date or time: {value!r} (e.g. 2026-11-26 or 2026-11-26T09:30:00Z)"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m chatapp export",
        description="Write one room's messages to stdout in seq order, read-only and streaming.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--room", required=True, type=_room, help="the room to export")
    parser.add_argument(
        "--since", type=_instant, metavar="ISO", help="only messages created at or after this"
    )
    parser.add_argument(
        "--until", type=_instant, metavar="ISO", help="only messages created before this"
    )
    parser.add_argument(
        "--format", choices=["jsonl", "csv"], default="jsonl", help="one line per message"
    )
    add_settings_options(parser, Group.DATABASE)
    return parser


def record(message: StoredMessage) -> dict[str, Any]:
    """A message as one export record, flat, with the SQL interface's column names."""
    return {
        "room": message.room,
        "seq": message.seq,
        "id": message.id,
        "user_id": message.user.id,
        "user_name": message.user.name,
        "text": message.text,
        "created_at": iso_utc(message.created_at),
        "client_id": message.client_id,
    }


class Output:
    """Writes records in one format; CSV starts with a header row."""

    def __init__(self, kind: str, out: TextIO) -> None:
        self._out = out
        self._csv = csv.writer(out, lineterminator="\n") if kind == "csv" else None

    def header(self) -> None:
        if self._csv is not None:
            self._csv.writerow(FIELDS)

    def write(self, message: StoredMessage) -> None:
        if self._csv is not None:
            self._csv.writerow(record(message).values())
        else:
            self._out.write(json.dumps(record(message), ensure_ascii=False) + "\n")


async def _export(url: str, args: argparse.Namespace, output: Output) -> int:
    database = await ReadOnlyDatabase.open(url)
    try:
        messages = database.export(args.room, args.since, args.until)
        async with aclosing(messages):
            first = await anext(messages, None)  # an unknown room fails before any output
            output.header()
            if first is None:
                return 0
            output.write(first)
            count = 1
            async for message in messages:
                output.write(message)
                count += 1
        return count
    finally:
        await database.close()


def main(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.since and args.until and args.since >= args.until:
        parser.error("--since must be earlier than --until")
    try:
        url = resolve_or_exit(parser, args).database_url
        count = asyncio.run(_export(url, args, Output(args.format, sys.stdout)))
        sys.stdout.flush()
    except StoreError as exc:
        return fail("export", exc)
    except BrokenPipeError:
        return stdout_gone()
    noun = "message" if count == 1 else "messages"
    print(f"chatapp export: {count} {noun} from room {args.room!r}", file=sys.stderr)
    return ExitCode.OK
