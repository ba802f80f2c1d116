"""Logging set-up: text or JSON lines, each tagged with the connection it concerns.

The connection id lives in a context variable that the socket handlers set;
asyncio copies context into the tasks they spawn, so every line logged on
behalf of a connection carries its id without passing it around.
"""

from __future__ import annotations

import contextvars
import json
import logging
from datetime import UTC, datetime

#: The connection being served, or "-" outside of one.
connection_id: contextvars.ContextVar[str] = contextvars.ContextVar("connection_id", default="-")

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(conn)s] %(message)s"


class _ConnectionFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.conn = connection_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line, for log shippers."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "conn": getattr(record, "conn", "-"),
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure(level: str, fmt: str) -> None:
    """Log to stderr at ``level`` in ``fmt`` ("text" or "json")."""
    handler = logging.StreamHandler()
    handler.addFilter(_ConnectionFilter())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("alembic").setLevel(logging.WARNING)  # a line per migration step is noise
    # the driver logs every statement with its parameters at debug: messages, secrets
    logging.getLogger("aiosqlite").setLevel(logging.INFO)
