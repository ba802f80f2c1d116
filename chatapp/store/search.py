"""Full-text search statements: FTS5 on SQLite, ``to_tsvector`` on PostgreSQL.

People type words, not query syntax. Each word is quoted before it reaches
the database, so FTS5 operators (``AND``, ``NEAR``, quotes, parentheses) are
matched as text and no input can be a syntax error; a word ending in ``*``
matches as a prefix. Every word must match. Both databases fold case and
accents ("cafe" finds "Café"), rank by relevance and then newest first, and
read an index: SQLite ranks with FTS5's bm25 over ``search.messages_fts`` (a file of
its own, ``chatapp.store.search_index``);
PostgreSQL with ``ts_rank`` over the ``chatapp_search`` configuration
(``simple`` plus ``unaccent``), whose GIN index ``ix_messages_text_search``
covers the same expression (migration 0005). A word that is several tokens
to the database (``o'neil``) must match as a phrase, as FTS5 takes a quoted
string.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import reduce
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    FromClause,
    Integer,
    Select,
    column,
    func,
    literal,
    literal_column,
    select,
    table,
)
from sqlalchemy.orm import InstrumentedAttribute

from chatapp.errors import SearchUnsupported
from chatapp.store.schema import FTS_TABLE, PG_SEARCH_CONFIG, MessageRow
from chatapp.store.search_index import SCHEMA as SEARCH_SCHEMA

_FTS = table(FTS_TABLE, column("rowid", Integer), column("rank", Float), schema=SEARCH_SCHEMA)
_PG_CONFIG: ColumnElement[Any] = literal_column(f"'{PG_SEARCH_CONFIG}'::regconfig")
#: ``ts_rank`` divides by the message's length in words, so that, as with bm25,
#: a word counts for more in a short message than in a long one.
_PG_RANK_NORMALIZATION = 2


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
        return func.phraseto_tsquery(_PG_CONFIG, word.text)
    lexeme = "'" + word.text.replace("\\", "\\\\").replace("'", "''") + "':*"
    return func.to_tsquery(_PG_CONFIG, lexeme)


@dataclass(frozen=True, slots=True)
class _Match:
    """Which messages match, on one dialect: the rows to read, the condition, the score."""

    source: FromClause
    condition: ColumnElement[Any]
    score: ColumnElement[Any]
    order: tuple[ColumnElement[Any], ...]


def _match(dialect: str, query_words: Sequence[Word]) -> _Match:
    if dialect == "sqlite":
        return _Match(
            source=_FTS.join(MessageRow.__table__, MessageRow.id == _FTS.c.rowid),
            condition=literal_column(FTS_TABLE).op("MATCH")(fts5_query(query_words)),
            score=-_FTS.c.rank,
            order=(_FTS.c.rank, MessageRow.id.desc()),
        )
    if dialect == "postgresql":
        vector = func.to_tsvector(_PG_CONFIG, MessageRow.text)
        tsquery = reduce(lambda a, b: a.op("&&")(b), [_tsquery(w) for w in query_words])
        score = func.ts_rank(vector, tsquery, _PG_RANK_NORMALIZATION)
        return _Match(
            source=MessageRow.__table__,
            condition=vector.op("@@")(tsquery),
            score=score,
            order=(score.desc(), MessageRow.id.desc()),
        )
    raise SearchUnsupported(f"search is not implemented for {dialect!r} databases")


def _in_rooms(query: Select[Any], rooms: Sequence[str] | None) -> Select[Any]:
    return query if rooms is None else query.where(MessageRow.room.in_(rooms))


def statement(
    dialect: str,
    query_words: Sequence[Word],
    columns: Sequence[InstrumentedAttribute[Any]],
    rooms: Sequence[str] | None,
    limit: int,
) -> Select[Any]:
    """Select ``columns`` plus ``score`` of the best ``limit`` matches, best (then newest) first."""
    match = _match(dialect, query_words)
    query = (
        select(*columns, match.score.label("score"))
        .select_from(match.source)
        .where(match.condition)
        .order_by(*match.order)
    )
    return _in_rooms(query, rooms).limit(limit)


def count_statement(
    dialect: str, query_words: Sequence[Word], rooms: Sequence[str] | None, up_to: int
) -> Select[Any]:
    """Count the matches, reading at most ``up_to`` of them (the same index as ``statement``)."""
    match = _match(dialect, query_words)
    matching = _in_rooms(select(literal(1)).select_from(match.source).where(match.condition), rooms)
    return select(func.count()).select_from(matching.limit(up_to).subquery())
