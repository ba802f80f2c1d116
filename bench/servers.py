"""Starting the servers under test: chatapp (any variant, by command template) and the
tutorial's Node server. Each is ready when it answers, or fails with its last output.
"""

from __future__ import annotations

import shlex
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

from bench.nodekit import NodeKit
from bench.procs import Child, Processes, wait_until_ready
from bench.system import BenchError, check_port_free, free_port

#: The chatapp command, with the placeholders {python} {port} {db} {data_dir}.
#: --server-cmd replaces it, e.g. to add --workers 2 or to run under uvloop.
DEFAULT_SERVER_CMD = (
    "{python} -m chatapp --host 127.0.0.1 --port {port} --db {db} --data-dir {data_dir} "
    "--rate-limit 0 --log-level warning"
)
#: Every server setting also reads a variable with this prefix: none of the caller's may leak in.
SETTINGS_ENV_PREFIX = "CHATAPP_"
#: Creating the schema, and a variant's migrations on a large database, may take a while.
READY_TIMEOUT = 180.0
PLACEHOLDERS = ("python", "port", "db", "data_dir")


def chatapp_argv(template: str, *, port: int, db: str, data_dir: Path) -> list[str]:
    """The server command for one run; a clear error for an unknown placeholder."""
    try:
        command = template.format(
            python=shlex.quote(sys.executable),
            port=port,
            db=shlex.quote(db),
            data_dir=shlex.quote(str(data_dir)),
        )
    except (KeyError, IndexError, ValueError) as exc:
        known = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
        raise BenchError(f"--server-cmd: bad placeholder {exc} (known: {known})") from None
    return shlex.split(command)


def start_chatapp(
    procs: Processes,
    template: str,
    *,
    port: int,
    db: str,
    data_dir: Path,
    cores: str | None,
    env: Mapping[str, str] | None = None,
) -> Child:
    """Start chatapp and wait until ``/readyz`` says its database answers."""
    check_port_free(port)
    argv = chatapp_argv(template, port=port, db=db, data_dir=data_dir)
    child = procs.start("chatapp", argv, cores=cores, env=env, drop_env=SETTINGS_ENV_PREFIX)
    wait_until_ready(child, port, path="/readyz", timeout=READY_TIMEOUT)
    return child


def start_seed(procs: Processes, kit: NodeKit, *, port: int, cores: str | None) -> Child:
    """Start the tutorial's Node server (text protocol on ``/``) and wait for its port."""
    check_port_free(port)
    child = procs.start("node-seed", [kit.seed_start, str(port)], cores=cores)
    wait_until_ready(child, port, path=None, timeout=READY_TIMEOUT)
    return child


def schema_maker(procs: Processes) -> Callable[[str], None]:
    """Creates chatapp's schema on a database URL by running the plain server on it once."""

    def create(db: str) -> None:
        with tempfile.TemporaryDirectory(prefix="chatapp-schema-") as data_dir:
            child = start_chatapp(
                procs,
                DEFAULT_SERVER_CMD,
                port=free_port(),
                db=db,
                data_dir=Path(data_dir),
                cores=None,
            )
            if child.stop() != 0:
                raise BenchError(f"the schema server exited badly:\n{child.tail()}")

    return create
