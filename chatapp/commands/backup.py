"""``python -m chatapp backup FILE``: a consistent copy of the SQLite database, while it runs.

Restore by stopping the server and putting the copy in place of ``chat.db``
(or pointing ``--db`` at it); the server migrates it forward if needed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from chatapp.cli import HelpFormatter, add_database_options, database_url
from chatapp.store import StoreError
from chatapp.store.backup import backup


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m chatapp backup",
        description="Copy the SQLite database to FILE, safely while the server is running.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("file", type=Path, help="where to write the copy (replaced if present)")
    add_database_options(parser)
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        size = backup(database_url(args), args.file)
    except StoreError as exc:
        print(f"chatapp backup: error: {exc}", file=sys.stderr)
        return 1
    print(f"backed up {size} bytes to {args.file}")
    return 0
