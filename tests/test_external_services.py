"""External services: tests that need PostgreSQL or Redis skip with a reason where it is
missing, and fail in CI. (The chat service itself is tested in test_service.py.)"""

from __future__ import annotations

import os
import subprocess
import sys

from factories import TICK
from procs import REPO, free_port

#: Two tests that need PostgreSQL: one by its marker, one through the ``db_url`` fixture.
NEEDS_POSTGRES = [
    "tests/test_store.py::test_open_store_on_missing_postgres_database_raises_store_error",
    "tests/test_store.py::test_first_message_of_a_room_gets_seq_1[postgres]",
]
#: Seconds a whole pytest run may take (it starts a fresh interpreter and imports the suite).
PYTEST_TIMEOUT = 1200 * TICK


def run_pytest(*, ci: bool) -> subprocess.CompletedProcess[str]:
    """Run ``NEEDS_POSTGRES`` in a fresh pytest whose PostgreSQL port nobody listens on."""
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PGPORT"] = str(free_port())
    if ci:
        env["CI"] = "true"
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:xdist",
            "-rsf",
            *NEEDS_POSTGRES,
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=PYTEST_TIMEOUT,
        check=False,
    )


def test_without_postgresql_its_tests_are_skipped_with_the_reason():
    """No PostgreSQL answering: both tests are skipped, saying where it was looked for."""
    result = run_pytest(ci=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 skipped" in result.stdout
    assert "postgres does not answer on" in result.stdout
    assert "ConnectionRefusedError" not in result.stdout


def test_in_ci_a_missing_postgresql_fails_its_tests():
    """With ``CI`` set, a missing PostgreSQL fails the tests instead, saying CI requires it."""
    result = run_pytest(ci=True)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "2 errors" in result.stdout  # failed in setup, before any connection is tried
    assert "CI requires it" in result.stdout
