"""``python -m chatapp backup FILE``: a consistent copy of the SQLite database, while it runs.

Restore by stopping the server and putting the copy in place of ``chat.db``
(or pointing ``--db`` at it); the server migrates it forward if needed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from chatapp.commands import fail
from chatapp.commands.options import HelpFormatter, add_settings_options, resolve_or_exit
from chatapp.errors import ExitCode, StoreError
from chatapp.settings import Group
from chatapp.store.backup import backup


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m chatapp backup",
        description="Copy the SQLite database to FILE, safely while the server is running.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("file", type=Path, help="where to write the copy (replaced if present)")
    add_settings_options(parser, Group.DATABASE)
    return parser


def main(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        size = backup(resolve_or_exit(parser, args).database_url, args.file)
    except StoreError as exc:
        return fail("backup", exc)
    print(f"backed up {size} bytes to {args.file}")
    return ExitCode.OK
