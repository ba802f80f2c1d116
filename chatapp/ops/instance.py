"""This process's name among the processes that share one database and one broker.

A random tag, drawn again in every forked child (``--workers``), so that
connection ids, presence entries and connection counts of two processes
never mix, even when the children were forked after the import.
"""

from __future__ import annotations

import os
import secrets

_tag = secrets.token_hex(4)


def tag() -> str:
    """Eight hex digits naming this process; unique among the processes of one chat."""
    return _tag


def _renew() -> None:
    global _tag
    _tag = secrets.token_hex(4)


os.register_at_fork(after_in_child=_renew)
