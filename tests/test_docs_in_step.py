"""The docs say what the code does: every option, error code and close code is documented."""

from __future__ import annotations

import re

from procs import REPO

from chatapp.errors import CloseCode, ErrorCode
from chatapp.settings import Declared, declared_fields

README = (REPO / "README.md").read_text()
DEPLOY = (REPO / "docs" / "deploy.md").read_text()

#: Codes a client of the WebSocket or the HTTP API can meet (the rest are local to tools).
WIRE_CODES = {
    code
    for code in ErrorCode
    if code.value
    not in {
        "bad_config",
        "bad_usage",
        "broker",
        "unknown_room",
        "bad_query",
        "read_only",
        "schema_mismatch",
        "refused",
        "unreachable",
        "http_error",
        "token_expired",
        "slow_consumer",
        "flooding",
        "shutting_down",
        "not_supported",
    }
}


def options_table() -> dict[str, tuple[str, str]]:
    """deploy.md's option rows: first flag -> (environment cell, default cell)."""
    section = DEPLOY[DEPLOY.index("## Options") :]
    section = section[: section.index("\n## ", 1)]
    rows = re.findall(r"^\| `(--[a-z-]+)[^|]*\| ([^|]*) \| ([^|]*) \|", section, re.MULTILINE)
    return {flag: (env.strip(), default.strip()) for flag, env, default in rows}


def test_every_option_is_in_the_deploy_table_with_its_variable():
    table = options_table()
    declared: dict[str, Declared] = {
        item.metadata["declared"].flag: item.metadata["declared"] for item in declared_fields()
    }
    assert sorted(table) == sorted(declared), "deploy.md's table and settings.py differ"
    for flag, spec in declared.items():
        assert table[flag][0] == f"`{spec.env}`", flag


def test_numeric_defaults_in_the_deploy_table_are_the_real_ones():
    table = options_table()
    for item in declared_fields():
        flag = item.metadata["declared"].flag
        if isinstance(item.default, bool):
            continue
        if isinstance(item.default, int):
            assert table[flag][1] == f"`{item.default}`", flag
        elif isinstance(item.default, float):
            assert table[flag][1] == f"`{item.default:g}`", flag


def test_every_wire_error_code_is_explained_in_the_readme():
    missing = [code.value for code in WIRE_CODES if f"`{code.value}`" not in README]
    assert missing == []


def test_every_close_code_is_explained_in_the_readme():
    missing = [int(code) for code in CloseCode if f"`{int(code)}`" not in README]
    assert missing == []
