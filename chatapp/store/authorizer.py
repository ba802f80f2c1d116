"""SQLite's authorizer for read-only connections: reads pass, anything else is refused.

``mode=ro`` and ``query_only`` stop writes to the database file, but not
ATTACH, which creates any file the process may write (``VACUUM INTO``
attaches its target first), nor PRAGMAs that change the connection, nor
temporary tables. SQLite asks the authorizer about every action of a
statement while compiling it, so a refusal fails the statement before
anything runs, whatever its SQL text looks like.
"""

from __future__ import annotations

import sqlite3

#: Authorizer actions a reader needs: reading, functions (but see below), CTEs, transactions.
_SQLITE_READS = frozenset(
    {
        sqlite3.SQLITE_SELECT,
        sqlite3.SQLITE_READ,
        sqlite3.SQLITE_FUNCTION,
        sqlite3.SQLITE_RECURSIVE,
        sqlite3.SQLITE_TRANSACTION,
        sqlite3.SQLITE_SAVEPOINT,
    }
)
#: PRAGMAs that only ever read; an argument names a table or an index.
_SQLITE_READ_PRAGMAS = frozenset(
    {
        "table_info",
        "table_xinfo",
        "table_list",
        "index_list",
        "index_info",
        "index_xinfo",
        "foreign_key_list",
        "foreign_key_check",
        "integrity_check",
        "quick_check",
        "database_list",
        "collation_list",
        "function_list",
        "module_list",
        "pragma_list",
        "compile_options",
    }
)
#: PRAGMAs that read a value when given none (and would set it when given one).
_SQLITE_VALUE_PRAGMAS = frozenset(
    {
        "application_id",
        "auto_vacuum",
        "data_version",
        "encoding",
        "foreign_keys",
        "freelist_count",
        "journal_mode",
        "page_count",
        "page_size",
        "schema_version",
        "user_version",
    }
)
#: Functions that reach outside the database; refused even if a build enables them.
_SQLITE_UNSAFE_FUNCTIONS = frozenset({"load_extension", "fts3_tokenizer"})
#: SQLite's own schema table, under both its names.
_SQLITE_SCHEMA = frozenset({"sqlite_master", "sqlite_schema"})


#: SQLite's authorizer action codes by name, for saying what was refused.
_SQLITE_ACTIONS = {
    getattr(sqlite3, f"SQLITE_{name}"): name.replace("_", " ")
    for name in (
        "CREATE_INDEX",
        "CREATE_TABLE",
        "CREATE_TEMP_INDEX",
        "CREATE_TEMP_TABLE",
        "CREATE_TEMP_TRIGGER",
        "CREATE_TEMP_VIEW",
        "CREATE_TRIGGER",
        "CREATE_VIEW",
        "DELETE",
        "DROP_INDEX",
        "DROP_TABLE",
        "DROP_TEMP_INDEX",
        "DROP_TEMP_TABLE",
        "DROP_TEMP_TRIGGER",
        "DROP_TEMP_VIEW",
        "DROP_TRIGGER",
        "DROP_VIEW",
        "INSERT",
        "PRAGMA",
        "UPDATE",
        "ATTACH",
        "DETACH",
        "ALTER_TABLE",
        "REINDEX",
        "ANALYZE",
        "CREATE_VTABLE",
        "DROP_VTABLE",
        "FUNCTION",
    )
}
#: Key of a connection's ``ReadsOnly`` in its pool record's ``info``.
AUTHORIZER = "chatapp_reads_only"


class ReadsOnly:
    """SQLite's authorizer for a read-only connection: reads pass, anything else is refused.

    SQLite asks it about every action of a statement as it compiles it, and a
    refusal fails the statement ("not authorized") before anything runs:
    every write, ATTACH (which ``VACUUM INTO`` does first), DETACH, PRAGMAs
    that set something, temporary objects, the functions in
    ``_SQLITE_UNSAFE_FUNCTIONS``. ``refused`` says what was refused first
    since it was last reset to None.
    """

    def __init__(self) -> None:
        self.refused: str | None = None

    def __call__(
        self, action: int, arg1: str | None, arg2: str | None, _db: str | None, _trig: str | None
    ) -> int:
        if _allowed(action, arg1, arg2):
            return sqlite3.SQLITE_OK
        if self.refused is None:  # the first refusal is the one the statement asked for
            what = " ".join(arg for arg in (arg1, arg2) if arg)
            self.refused = f"{_SQLITE_ACTIONS.get(action, f'action {action}')} {what}".strip()
        return sqlite3.SQLITE_DENY


def _allowed(action: int, arg1: str | None, arg2: str | None) -> bool:
    if action == sqlite3.SQLITE_FUNCTION:
        return arg2 not in _SQLITE_UNSAFE_FUNCTIONS
    if action in _SQLITE_READS:
        return True
    if action == sqlite3.SQLITE_PRAGMA:
        name = (arg1 or "").lower()
        return name in _SQLITE_READ_PRAGMAS or (name in _SQLITE_VALUE_PRAGMAS and arg2 is None)
    # Asked when a table-valued pragma (pragma_table_info) loads the schema; nothing can be
    # updated anyway: mode=ro and query_only refuse it.
    return action == sqlite3.SQLITE_UPDATE and arg1 in _SQLITE_SCHEMA
