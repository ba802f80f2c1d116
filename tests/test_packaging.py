"""``pip install .`` (not only the editable install the tests use) ships every module and file."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from procs import REPO


def test_the_wheel_holds_every_module_migration_and_static_file(tmp_path: Path) -> None:
    """A package missing from pyproject.toml would break the README's first command."""
    source = tmp_path / "src"  # a clean copy: an old build/ folder could hide a gap
    shutil.copytree(
        REPO, source, ignore=shutil.ignore_patterns(".*", "build", "*.egg-info", "__pycache__")
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-q",
            "-w",
            str(tmp_path),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    [wheel] = tmp_path.glob("chatapp-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"chatapp/{p.relative_to(REPO / 'chatapp')}" for p in REPO.glob("chatapp/**/*.py")}
    expected |= {
        f"chatapp/migrations/{p.relative_to(REPO / 'migrations')}"
        for p in REPO.glob("migrations/**/*")
        if p.is_file() and p.suffix in {".py", ".mako"} and "__pycache__" not in p.parts
    }
    expected |= {f"chatapp/static/{p.name}" for p in (REPO / "static").iterdir() if p.is_file()}
    assert expected - shipped == set()
