"""Connections on which the database itself refuses every write.

The ``sql`` and ``export`` tools read a live database that the server
writes. Their safety must not depend on recognising writes in SQL text, so
the connection is opened read-only: SQLite opens the file with
``mode=ro`` (and ``query_only`` besides), PostgreSQL runs every transaction
``READ ONLY`` (``default_transaction_read_only``). Any write then fails
inside the database, whatever the SQL. Other databases are refused rather
than trusted.

Read-only mode still lets SQLite attach (create) other files, including
through ``VACUUM INTO``, and set PRAGMAs, so its connections also get an
authorizer (``authorizer.ReadsOnly``) that lets reads only. What
PostgreSQL allows a read-only transaction (``COPY ... TO`` a file or program,
advisory locks, signalling other sessions, ``set_config``) is a matter of
the role's privileges: docs/sql.md shows a SELECT-only role.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import URL, Engine, event

from chatapp.errors import StoreError
from chatapp.store import files, search_index
from chatapp.store.authorizer import AUTHORIZER, ReadsOnly

#: Dialects whose read-only mode this module knows how to switch on.
SUPPORTED = ("sqlite", "postgresql")


def read_only_url(url: URL) -> URL:
    """``url`` rewritten to open the database read-only where the URL can say so.

    For SQLite, a ``file:`` URI with ``mode=ro``; the file must exist (a
    read-only open never creates one). PostgreSQL URLs are unchanged: the
    session is switched on connect (``install``).
    """
    backend = url.get_backend_name()
    if backend not in SUPPORTED:
        raise StoreError(
            f"read-only access is implemented for SQLite and PostgreSQL, not {backend!r}"
        )
    if backend != "sqlite":
        return url
    database = url.database
    if not database or database == ":memory:":
        raise StoreError("an in-memory SQLite database has nothing to read")
    if url.query.get("uri") == "true" or database.startswith("file:"):
        return url.update_query_dict({"mode": "ro", "uri": "true"})
    if not Path(database).is_file():
        raise StoreError(f"no database at {database!r}")
    uri = "file:" + quote(str(Path(database).resolve()))
    return url.set(database=uri).update_query_dict({"mode": "ro", "uri": "true"})


def install(engine: Engine) -> None:
    """Make every new connection of ``engine`` refuse writes (after ``read_only_url``).

    On SQLite the search index (``search_index``), where there is one, is attached
    read-only as ``search``, so ``search.messages_fts`` can be queried beside the tables.
    """
    if engine.dialect.name == "sqlite":
        database = files.sqlite_file(engine.url)
        index = search_index.index_path(database) if database is not None else None
        event.listen(engine, "connect", partial(_sqlite_session, index=index))
    else:
        event.listen(engine, "connect", _postgresql_session)


def _sqlite_session(dbapi_connection: Any, record: Any, index: Path | None) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=5000")  # wait out the server's commits
    cursor.execute("PRAGMA query_only=ON")
    if index is not None and index.is_file():
        uri = "file:" + quote(str(index)) + "?mode=ro"
        cursor.execute(f"ATTACH DATABASE ? AS {search_index.SCHEMA}", (uri,))
    cursor.close()
    authorizer = record.info[AUTHORIZER] = ReadsOnly()
    dbapi_connection.run_async(lambda driver: driver.set_authorizer(authorizer))


def _postgresql_session(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("SET default_transaction_read_only = on")
    # Times without an offset in a query mean UTC, as they do on SQLite.
    cursor.execute("SET TIME ZONE 'UTC'")
    cursor.close()
    # SET is transactional: without a commit the pool's reset would undo it.
    dbapi_connection.commit()
