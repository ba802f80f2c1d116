"""Locks that every process sharing the database sees: who migrates, who runs retention.

PostgreSQL has advisory locks: a session-level one (``pg_try_advisory_lock``)
is held on a connection set aside for as long as the work runs, and the server
releases it the moment that connection ends, so a holder that dies frees it at
once. SQLite has no such thing: the lock is a row of ``leases`` taken by an
atomic ``UPDATE ... WHERE expires_at <= now``, renewed while held, and free
again ``ttl`` seconds after a dead holder's last renewal.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from chatapp.store.schema import LeaseRow
from chatapp.tasks import cancel_and_wait

log = logging.getLogger(__name__)

#: The lock taken around schema migrations (PostgreSQL, transaction-level).
MIGRATION_LOCK = "migrate"
#: A lease is renewed this many times per ``ttl`` while its holder lives.
RENEWALS_PER_TTL = 3
_NEVER = datetime(1970, 1, 1, tzinfo=UTC)


def advisory_key(name: str) -> int:
    """The PostgreSQL advisory lock key of lock ``name``: fixed, and unlikely to be anyone else's.

    The first 8 bytes of BLAKE2b over ``chatapp:NAME``, as a signed bigint.
    """
    digest = hashlib.blake2b(f"chatapp:{name}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@contextlib.asynccontextmanager
async def exclusive(engine: AsyncEngine, name: str, ttl: float) -> AsyncIterator[bool]:
    """Hold lock ``name`` for the body if no other process holds it; yields whether it did."""
    if engine.dialect.name == "postgresql":
        async with _advisory(engine, name) as taken:
            yield taken
    else:
        async with _lease(engine, name, timedelta(seconds=ttl)) as taken:
            yield taken


@contextlib.asynccontextmanager
async def _advisory(engine: AsyncEngine, name: str) -> AsyncIterator[bool]:
    key = advisory_key(name)
    async with engine.connect() as pooled:
        # autocommit: holding the lock must not hold a transaction open for the whole pass
        connection = await pooled.execution_options(isolation_level="AUTOCOMMIT")
        taken = bool(await connection.scalar(select(func.pg_try_advisory_lock(key))))
        try:
            yield taken
        finally:
            if taken:
                try:
                    await connection.execute(select(func.pg_advisory_unlock(key)))
                except (SQLAlchemyError, OSError):
                    # a pooled connection must never keep the lock: closing it frees it
                    await connection.invalidate()


@contextlib.asynccontextmanager
async def _lease(engine: AsyncEngine, name: str, ttl: timedelta) -> AsyncIterator[bool]:
    holder = uuid.uuid4().hex
    if not await _take_lease(engine, name, holder, ttl):
        yield False
        return
    renewing = asyncio.create_task(_renew(engine, name, holder, ttl), name=f"lease-{name}")
    try:
        yield True
    finally:
        await cancel_and_wait(renewing)
        try:
            await _set_expiry(engine, name, holder, datetime.now(UTC))
        except (SQLAlchemyError, OSError) as exc:  # it expires by itself
            log.warning("releasing the %r lease failed: %s", name, exc)


async def _take_lease(engine: AsyncEngine, name: str, holder: str, ttl: timedelta) -> bool:
    now = datetime.now(UTC)
    async with engine.begin() as connection:
        await connection.execute(
            sqlite_insert(LeaseRow)
            .values(name=name, holder="", expires_at=_NEVER)
            .on_conflict_do_nothing(index_elements=[LeaseRow.name])
        )
        taken = await connection.execute(
            update(LeaseRow)
            .where(LeaseRow.name == name, LeaseRow.expires_at <= now)
            .values(holder=holder, expires_at=now + ttl)
        )
    return taken.rowcount == 1


async def _set_expiry(engine: AsyncEngine, name: str, holder: str, expires_at: datetime) -> bool:
    """Move the lease's expiry while ``holder`` still holds it; whether it did."""
    async with engine.begin() as connection:
        moved = await connection.execute(
            update(LeaseRow)
            .where(LeaseRow.name == name, LeaseRow.holder == holder)
            .values(expires_at=expires_at)
        )
    return moved.rowcount == 1


async def _renew(engine: AsyncEngine, name: str, holder: str, ttl: timedelta) -> None:
    while True:
        await asyncio.sleep(ttl.total_seconds() / RENEWALS_PER_TTL)
        try:
            if not await _set_expiry(engine, name, holder, datetime.now(UTC) + ttl):
                log.warning("lost the %r lease to another process", name)
                return
        except (SQLAlchemyError, OSError) as exc:
            log.warning("renewing the %r lease failed: %s", name, exc)
