"""The server's settings: one frozen object, every default stated here once."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from chatapp.codes import DEFAULT_MAX_CLIENT_BACKLOG, MIN_RATE_BURST

DEFAULT_PORT = 3000
DEFAULT_HOST = "127.0.0.1"
DEFAULT_DATA_DIR = Path("chatapp-data")
DEFAULT_RATE_LIMIT = 10.0
DEFAULT_PING_INTERVAL = 20.0


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    data_dir: Path = DEFAULT_DATA_DIR
    #: SQLAlchemy async URL; None means an SQLite file ``chat.db`` in ``data_dir``.
    db_url: str | None = None
    #: HS256 key; when set, every connection needs a valid token.
    jwt_secret: str | None = None
    #: Frames per second per connection; 0 turns the limit off.
    rate_limit: float = DEFAULT_RATE_LIMIT
    #: Unsent bytes one client may have queued before it is disconnected.
    max_client_backlog: int = DEFAULT_MAX_CLIENT_BACKLOG
    #: Seconds between WebSocket pings; a client that misses a pong for as long is dropped.
    ping_interval: float = DEFAULT_PING_INTERVAL

    @property
    def database_url(self) -> str:
        if self.db_url is not None:
            return self.db_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'chat.db').resolve()}"

    @property
    def rate_burst(self) -> int:
        return max(MIN_RATE_BURST, int(self.rate_limit))
