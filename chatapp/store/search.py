"""Full-text search statements: FTS5 on SQLite, ``to_tsvector`` on PostgreSQL.

People type words, not query syntax. Each word is quoted before it reaches
the database, so FTS5 operators (``AND``, ``NEAR``, quotes, parentheses) are
matched as text and no input can be a syntax error; a word ending in ``*``
matches as a prefix. Every word must match. SQLite ranks with FTS5's bm25
and folds accents ("cafe" finds "café"); PostgreSQL ranks with ``ts_rank``
over the ``simple`` configuration and scans without an index, which suits
small deployments until a GIN index migration is added.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import reduce
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    Integer,
    Select,
    column,
    func,
    literal_column,
    select,
    table,
)
from sqlalchemy.orm import InstrumentedAttribute

from chatapp.errors import SearchUnsupported
from chatapp.store.schema import FTS_TABLE, MessageRow

_FTS = table(FTS_TABLE, column("rowid", Integer), column("rank", Float))
_PG_CONFIG: ColumnElement[Any] = literal_column("'simple'::regconfig")


@dataclass(frozen=True, slots=True)
class Word:
    text: str
    prefix: bool


#: Control characters separate words (NUL, for one, is not text to PostgreSQL or FTS5).
_CONTROLS = {code: " " for code in range(32)}


def words(query: str) -> list[Word]:
    """The query's words, split at whitespace and control characters; a trailing ``*``
    marks a prefix."""
    found = []
    for raw in query.translate(_CONTROLS).split():
        text = raw.rstrip("*")
        if text:
            found.append(Word(text, prefix=text != raw))
    return found


def fts5_query(query_words: Sequence[Word]) -> str:
    """An FTS5 MATCH expression in which every word is a quoted string (implicit AND)."""
    return " ".join(
        '"' + w.text.replace('"', '""') + '"' + ("*" if w.prefix else "") for w in query_words
    )


def _tsquery(word: Word) -> ColumnElement[Any]:
    if not word.prefix:
        return func.plainto_tsquery(_PG_CONFIG, word.text)
    lexeme = "'" + word.text.replace("\\", "\\\\").replace("'", "''") + "':*"
    return func.to_tsquery(_PG_CONFIG, lexeme)


def statement(
    dialect: str,
    query_words: Sequence[Word],
    columns: Sequence[InstrumentedAttribute[Any]],
    rooms: Sequence[str] | None,
    limit: int,
) -> Select[Any]:
    """Select ``columns`` plus ``score`` of the best ``limit`` matches, best (then newest) first."""
    if dialect == "sqlite":
        score: ColumnElement[Any] = -_FTS.c.rank
        query = (
            select(*columns, score.label("score"))
            .select_from(_FTS.join(MessageRow.__table__, MessageRow.id == _FTS.c.rowid))
            .where(literal_column(FTS_TABLE).op("MATCH")(fts5_query(query_words)))
            .order_by(_FTS.c.rank, MessageRow.id.desc())
        )
    elif dialect == "postgresql":
        vector = func.to_tsvector(_PG_CONFIG, MessageRow.text)
        tsquery = reduce(lambda a, b: a.op("&&")(b), [_tsquery(w) for w in query_words])
        score = func.ts_rank(vector, tsquery)
        query = (
            select(*columns, score.label("score"))
            .where(vector.op("@@")(tsquery))
            .order_by(score.desc(), MessageRow.id.desc())
        )
    else:
        raise SearchUnsupported(f"search is not implemented for {dialect!r} databases")
    if rooms is not None:
        query = query.where(MessageRow.room.in_(rooms))
    return query.limit(limit)
