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
DEFAULT_MAX_PER_USER = 100
DEFAULT_MAX_PER_ADDRESS = 1000
#: Name of the per-install secret that signs guest tokens, inside the data dir.
GUEST_SECRET_FILE = "guest-secret"  # noqa: S105 (a file name, not a secret)


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    #: Holds the default SQLite file and the guest-token secret.
    data_dir: Path = DEFAULT_DATA_DIR
    #: SQLAlchemy async URL; None means an SQLite file ``chat.db`` in ``data_dir``.
    db_url: str | None = None
    #: HS256 key for tokens minted elsewhere (at least 32 bytes).
    jwt_secret: str | None = None
    #: PEM file of an RSA or EC public key for RS256/ES256 tokens (instead of a secret).
    jwt_public_key: Path | None = None
    #: Required ``iss`` / ``aud`` of tokens, when set.
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    #: Guests (no token, or a server-minted guest token). None: only when no key is configured.
    allow_guests: bool | None = None
    #: Extra origins allowed to open WebSockets (same-origin is always allowed); "null" too.
    allowed_origins: tuple[str, ...] = ()
    #: Behind a reverse proxy: honour X-Forwarded-For/-Proto/-Host.
    trusted_proxy: bool = False
    #: Open connections one user may have, and one address (0: no cap; loopback is exempt).
    max_connections_per_user: int = DEFAULT_MAX_PER_USER
    max_connections_per_address: int = DEFAULT_MAX_PER_ADDRESS
    #: Frames per second per connection; 0 turns the limit off.
    rate_limit: float = DEFAULT_RATE_LIMIT
    #: Unsent bytes one client may have queued before it is disconnected.
    max_client_backlog: int = DEFAULT_MAX_CLIENT_BACKLOG
    #: Seconds between WebSocket pings; a client that misses a pong for as long is dropped.
    ping_interval: float = DEFAULT_PING_INTERVAL
    #: Delete messages older than this many days, in the background; 0 keeps everything.
    retention_days: float = 0.0

    @property
    def database_url(self) -> str:
        if self.db_url is not None:
            return self.db_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'chat.db').resolve()}"

    @property
    def rate_burst(self) -> int:
        return max(MIN_RATE_BURST, int(self.rate_limit))

    @property
    def guests_allowed(self) -> bool:
        if self.allow_guests is not None:
            return self.allow_guests
        return self.jwt_secret is None and self.jwt_public_key is None
