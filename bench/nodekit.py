"""The shared Node tools (``loadgen.mjs``, ``holder.cjs``, ``prepop.cjs``, ``durwriters.cjs``)
and the tutorial's Node server, from a private copy of the read-only shared folder.

The copy lives in ``bench/results/node`` (git-ignored) and is refreshed when
the shared files change; the tutorial server's ``npm install`` runs once.
"""

from __future__ import annotations

import filecmp
import os
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from bench.system import REPO, RESULTS, BenchError, require_tool

#: Where the shared folder is looked for unless --shared-bench or this variable says.
SHARED_ENV = "CHATAPP_SHARED_BENCH"
DEFAULT_SHARED = REPO.parent / "shared" / "bench"
TOOLS = ("loadgen.mjs", "holder.cjs", "prepop.cjs", "durwriters.cjs")
SEED = Path("anchors") / "seed-node"
NPM_TIMEOUT = 300.0


@dataclass(frozen=True)
class NodeKit:
    """Paths of the Node tools in the private copy, and the ``node`` binary."""

    root: Path
    node: str

    def tool(self, name: str) -> str:
        return str(self.root / name)

    @property
    def seed_start(self) -> str:
        """``start.sh PORT``: the tutorial's server (express + ws), text protocol on ``/``."""
        return str(self.root / SEED / "start.sh")


def shared_folder(given: str | None) -> Path:
    """The shared bench folder: ``given``, else $CHATAPP_SHARED_BENCH, else ../shared/bench."""
    folder = Path(given or os.environ.get(SHARED_ENV) or DEFAULT_SHARED)
    missing = [name for name in TOOLS if not (folder / name).is_file()]
    if missing:
        raise BenchError(
            f"shared bench folder {str(folder)!r} lacks {', '.join(missing)}: "
            f"pass --shared-bench DIR or set {SHARED_ENV}"
        )
    return folder


def prepare(shared: Path, *, seed_server: bool) -> NodeKit:
    """Copy the shared folder if the copy is missing or stale; install the seed server's deps."""
    node = require_tool("node", "install Node.js 18 or later (apt-get install nodejs)")
    copy = RESULTS / "node"
    if not _same(shared, copy):
        shutil.rmtree(copy, ignore_errors=True)
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(shared, copy, symlinks=True)
        _make_writable(copy)
    if seed_server and not (copy / SEED / "node_modules" / "ws").is_dir():
        npm = require_tool("npm", "install npm to set up the tutorial's Node server")
        done = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund"],
            cwd=copy / SEED,
            capture_output=True,
            text=True,
            timeout=NPM_TIMEOUT,
            check=False,
        )
        if done.returncode != 0:
            failure = done.stderr[-2000:]
            raise BenchError(f"npm install for the tutorial's server failed:\n{failure}")
    return NodeKit(copy, node)


def _same(shared: Path, copy: Path) -> bool:
    names = [*TOOLS, "package.json", str(SEED / "server.js"), str(SEED / "start.sh")]
    return all(
        (copy / name).is_file() and filecmp.cmp(shared / name, copy / name, shallow=False)
        for name in names
        if (shared / name).exists()
    )


def _make_writable(root: Path) -> None:
    """The shared folder is read-only and copytree keeps modes; npm must write in the copy."""
    for folder, _dirs, files in os.walk(root):
        for name in [folder, *(os.path.join(folder, f) for f in files)]:
            if not os.path.islink(name):
                os.chmod(name, os.stat(name).st_mode | stat.S_IWUSR)
