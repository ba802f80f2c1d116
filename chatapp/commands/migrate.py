"""``python -m chatapp migrate [--check]``: bring the database's schema up to date, or check it.

The server migrates at start-up by itself; a deployment that starts servers
with ``--no-migrate`` runs this once per upgrade instead. It is safe while
servers run and beside other ``migrate`` runs: they wait for each other.
``--check`` changes nothing (read-only connection) and answers in the exit
code: 0 when the schema is current, 1 when it is not.
"""

from __future__ import annotations

import argparse
import asyncio

from chatapp.commands import fail
from chatapp.commands.options import HelpFormatter, add_settings_options, resolve_or_exit
from chatapp.errors import ExitCode, StoreError
from chatapp.settings import Group
from chatapp.store.engine import schema_revision, upgrade_schema


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m chatapp migrate",
        description="Upgrade the database to the newest schema revision and print it "
        "(servers do this at start-up unless run with --no-migrate).",
        formatter_class=HelpFormatter,
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="change nothing: report whether the schema is current (exit 0) or not (exit 1)",
    )
    add_settings_options(parser, Group.DATABASE)
    return parser


def main(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    url = resolve_or_exit(parser, args).database_url
    try:
        if args.check:
            return asyncio.run(_check(url))
        before = asyncio.run(upgrade_schema(url))
    except StoreError as exc:
        return fail("migrate", exc)
    if before.is_current:
        print(f"schema at revision {before.head}, the newest; nothing to do")
    else:
        print(f"schema upgraded from revision {before.shown} to {before.head}")
    return ExitCode.OK


async def _check(url: str) -> ExitCode:
    revision = await schema_revision(url)
    if revision.is_current:
        print(f"schema at revision {revision.head}, the newest")
        return ExitCode.OK
    print(revision.problem())
    return ExitCode.FAILED
