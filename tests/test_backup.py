"""Backups of the live SQLite database, taken while messages are being written, restore."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
from contextlib import closing

from conftest import connect_json, post
from procs import run_chatapp_async

from chatapp.auth.tokens import Identity
from chatapp.model import User
from chatapp.server import build


async def test_a_backup_taken_during_writes_restores_every_acknowledged_message(
    ws_url, settings, tmp_path
):
    """The copy holds every message acked before the backup, gapless, and a server opens it."""
    writer, _, _ = await connect_json(ws_url)
    acked = [(await post(writer, f"before {i}"))["seq"] for i in range(20)]
    copy = tmp_path / "backup.db"

    async def keep_writing() -> None:
        for i in range(100):
            await post(writer, f"during {i}")

    _, backup = await asyncio.gather(
        keep_writing(),
        run_chatapp_async("backup", str(copy), "--data-dir", str(settings.data_dir)),
    )
    assert backup.returncode == 0, backup.stderr
    assert "backed up" in backup.stdout

    with closing(sqlite3.connect(copy)) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        seqs = [row[0] for row in db.execute("SELECT seq FROM messages ORDER BY seq")]
    assert seqs == list(range(1, len(seqs) + 1)) and set(acked) <= set(seqs)

    restored = await build(dataclasses.replace(settings, db_url=f"sqlite+aiosqlite:///{copy}"))
    try:
        page = await restored.service.page(Identity(User("admin", "Admin")), "general", None, 200)
        assert [m.seq for m in page.messages] == seqs
    finally:
        await restored.service.close()


async def test_backup_of_a_postgresql_url_explains_what_to_use(tmp_path):
    """Backup is for SQLite; other databases get a pointer to their own tools."""
    result = await run_chatapp_async(
        "backup", str(tmp_path / "x.db"), "--db", "postgresql+asyncpg://user:secret@localhost/chat"
    )
    assert result.returncode == 1
    assert "pg_dump" in result.stderr and "secret" not in result.stderr
