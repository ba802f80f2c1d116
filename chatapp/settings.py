"""The server's settings: one frozen object, each setting declared once.

(Long because it is the one list of every option, with its help text.)

Every field carries its command-line flag, help text and environment
variable in its metadata (``setting(...)``); ``chatapp.commands.options``
builds the argument parsers from them and ``Settings.resolve`` fills the
object from what was given, then the environment, then the default here.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import MISSING, Field, dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

from chatapp.errors import ConfigError
from chatapp.limits import (
    DEFAULT_DB_TIMEOUT,
    DEFAULT_MAX_ROOMS,
    GUEST_BURST,
    MIN_HTTP_BURST,
    MIN_RATE_BURST,
)

#: Name of the per-install secret that signs guest tokens, inside the data dir.
GUEST_SECRET_FILE = "guest-secret"  # noqa: S105 (a file name, not a secret)
ENV_PREFIX = "CHATAPP_"


class Group(StrEnum):
    """Which commands take a setting: the data tools share ``DATABASE``, ``token`` ``TOKENS``."""

    SERVER = "server"
    DATABASE = "database"
    TOKENS = "tokens"


def port_number(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise ValueError(f"not a port number: {value!r}") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"port must be 0-65535, not {port}")
    return port


def _non_negative(kind: Callable[[str], float]) -> Callable[[str], Any]:
    def parse(value: str) -> Any:
        try:
            number = kind(value)
        except ValueError:
            raise ValueError(f"not a number: {value!r}") from None
        if not number >= 0:  # also refuses NaN
            raise ValueError(f"must be >= 0, not {value}")
        return number

    return parse


count = _non_negative(int)
seconds = _non_negative(float)


def positive(value: str) -> int:
    number: int = count(value)
    if number < 1:
        raise ValueError(f"must be >= 1, not {value}")
    return number


def switch(value: str) -> bool:
    """A yes/no from the environment: 1/0, true/false, yes/no, on/off."""
    word = value.strip().lower()
    if word in ("1", "true", "yes", "on"):
        return True
    if word in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"not a yes/no value: {value!r}")


def words(value: str) -> tuple[str, ...]:
    """A list from the environment: separated by spaces or commas."""
    return tuple(value.replace(",", " ").split())


@dataclass(frozen=True, slots=True)
class Declared:
    """How one setting is given: flag, help, parser, and where it is offered."""

    flag: str
    help: str
    parse: Callable[[str], Any] = str
    group: Group = Group.SERVER
    metavar: str | None = None
    choices: tuple[str, ...] | None = None
    #: ``flag`` is a switch (``store_true``); ``off_flag`` also makes it one with a "no" form.
    is_switch: bool = False
    off_flag: str | None = None
    #: Several values after the flag (``nargs="+"``).
    is_list: bool = False
    #: Never shown in --help (defaults) or echoed back.
    secret: bool = False
    env_name: str | None = None
    #: What --help says the default is, where the value itself says nothing useful.
    shown_default: str | None = None

    @property
    def env(self) -> str:
        return self.env_name or ENV_PREFIX + self.flag.lstrip("-").replace("-", "_").upper()


def setting(default: Any, flag: str, help: str, **declared: Any) -> Any:
    """A settings field with its default and its ``Declared`` metadata."""
    return field(default=default, metadata={"declared": Declared(flag, help, **declared)})


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = setting("127.0.0.1", "--host", "address to listen on")
    port: int = setting(3000, "--port", "TCP port (0 picks a free one)", parse=port_number)
    data_dir: Path = setting(
        Path("chatapp-data"),
        "--data-dir",
        "folder for the default SQLite database (chat.db) and the guest-token secret; "
        "created if missing",
        parse=Path,
        group=Group.DATABASE,
        metavar="DIR",
    )
    db_url: str | None = setting(
        None,
        "--db",
        "SQLAlchemy async database URL, e.g. sqlite+aiosqlite:///path/chat.db or "
        "postgresql+asyncpg://user@host/db",
        group=Group.DATABASE,
        metavar="URL",
        env_name="CHATAPP_DB_URL",
        shown_default="chat.db in --data-dir",
    )
    no_migrate: bool = setting(
        False,
        "--no-migrate",
        "never change the database schema: refuse to start unless it is at this chatapp's "
        "revision (run `python -m chatapp migrate` first)",
        parse=switch,
        is_switch=True,
    )
    redis_url: str | None = setting(
        None,
        "--redis",
        "Redis URL (redis://host:6379/0): processes sharing this Redis and one database "
        "(--db) act as one server: messages, presence, typing and per-user caps span them",
        metavar="URL",
        env_name="CHATAPP_REDIS_URL",
    )
    workers: int = setting(
        1,
        "--workers",
        "server processes sharing the port, each with its own event loop (needs --redis "
        "when more than 1)",
        parse=positive,
        metavar="N",
    )
    presence_ttl: float = setting(
        30.0,
        "--presence-ttl",
        "with --redis: seconds after which the members of a process that stopped sending "
        "heartbeats (it died) leave presence and free their connection counts",
        parse=seconds,
        metavar="SECONDS",
    )
    guest_secret: str | None = setting(
        None,
        "--guest-secret",
        "key of at least 32 bytes that signs guest tokens, for every process alike (better "
        "given in the environment); by default one is created once and kept in the database",
        metavar="SECRET",
        secret=True,
    )
    jwt_secret: str | None = setting(
        None,
        "--jwt-secret",
        "HS256 key of at least 32 bytes; with a key, tokens are required (better given "
        "in the environment: command lines are visible to other local users)",
        group=Group.TOKENS,
        metavar="SECRET",
        secret=True,
    )
    jwt_public_key: Path | None = setting(
        None,
        "--jwt-public-key",
        "PEM file of an RSA or EC public key: verify RS256/ES256 tokens minted by your "
        "identity service (instead of --jwt-secret)",
        parse=Path,
        metavar="FILE",
    )
    jwt_issuer: str | None = setting(
        None, "--jwt-issuer", "required 'iss' claim", group=Group.TOKENS, metavar="ISS"
    )
    jwt_audience: str | None = setting(
        None, "--jwt-audience", "required 'aud' claim", group=Group.TOKENS, metavar="AUD"
    )
    #: None: guests only when no key is configured.
    allow_guests: bool | None = setting(
        None,
        "--allow-guests",
        "let clients without a token in as guests; --no-guests refuses them "
        "(default: guests only when no key is configured)",
        parse=switch,
        is_switch=True,
        off_flag="--no-guests",
    )
    allowed_origins: tuple[str, ...] = setting(
        (),
        "--allowed-origins",
        "extra page origins (e.g. https://chat.example.com) allowed to open WebSockets; "
        "same-origin pages always are. 'null' admits pages opened from disk, and also "
        "sandboxed frames of any site: only for trusted local use",
        parse=words,
        metavar="ORIGIN",
        is_list=True,
    )
    trusted_proxy: bool = setting(
        False,
        "--trusted-proxy",
        "behind a reverse proxy that sets X-Forwarded-For/-Proto/-Host: trust them "
        "(never enable when clients can reach the server directly)",
        parse=switch,
        is_switch=True,
    )
    max_connections: int = setting(
        0,
        "--max-connections",
        "open connections this server accepts in all; past it a WebSocket upgrade is "
        "refused with HTTP 503 (0: no cap)",
        parse=count,
        metavar="N",
    )
    max_connections_per_user: int = setting(
        100,
        "--max-connections-per-user",
        "open connections one user may have; 0 for no cap",
        parse=count,
        metavar="N",
    )
    max_connections_per_address: int = setting(
        1000,
        "--max-connections-per-address",
        "open connections from one IP address (loopback exempt); 0 for no cap",
        parse=count,
        metavar="N",
    )
    max_rooms_per_connection: int = setting(
        DEFAULT_MAX_ROOMS,
        "--max-rooms-per-connection",
        "rooms one connection may be in at once; a join past it gets error too_many_rooms",
        parse=count,
        metavar="N",
    )
    rate_limit: float = setting(
        10.0,
        "--rate-limit",
        f"frames per second per connection, bursts of max({MIN_RATE_BURST}, N); 0 turns it off",
        parse=seconds,
        metavar="N",
    )
    http_rate_limit: float = setting(
        20.0,
        "--http-rate-limit",
        f"scrollback, search and room-list requests per second from one address, bursts of "
        f"max({MIN_HTTP_BURST}, 2N); past it: HTTP 429 with Retry-After (0 turns it off)",
        parse=seconds,
        metavar="N",
    )
    guest_rate_limit: float = setting(
        30.0,
        "--guest-rate-limit",
        f"guest sign-ins per minute from one address, bursts of {GUEST_BURST}; past it: "
        "HTTP 429 with Retry-After (0 turns it off)",
        parse=seconds,
        metavar="N",
    )
    max_client_backlog: int = setting(
        4 * 1024 * 1024,
        "--max-client-backlog",
        "unsent bytes queued for a client; past it, it gets live traffic from the database "
        "once it has taken what waits, instead of from memory",
        parse=count,
        metavar="BYTES",
    )
    slow_client_timeout: float = setting(
        15.0,
        "--slow-client-timeout",
        "a client that takes nothing of its backlog for this long is disconnected (code 4003)",
        parse=seconds,
        metavar="SECONDS",
    )
    db_timeout: float = setting(
        DEFAULT_DB_TIMEOUT,
        "--db-timeout",
        "how long a message may wait for the database before its sender is told 'unavailable' "
        "(send again with the same client_id); also bounds waits for locks and connections",
        parse=seconds,
        metavar="SECONDS",
    )
    ping_interval: float = setting(
        20.0,
        "--ping-interval",
        "WebSocket ping period; a client silent for as long after a ping is dropped (0 disables)",
        parse=seconds,
        metavar="SECONDS",
    )
    retention_days: float = setting(
        0.0,
        "--retention-days",
        "delete messages older than N days, hourly in the background (seq never "
        "restarts; clients see pruned_before); 0 keeps everything",
        parse=seconds,
        metavar="N",
    )
    shutdown_timeout: float = setting(
        10.0,
        "--shutdown-timeout",
        "on SIGTERM, how long to wait for queued messages to be stored and acknowledged; "
        "after it (a database that does not answer) their senders are told 'unavailable'",
        parse=seconds,
        metavar="SECONDS",
    )
    log_level: str = setting(
        "info",
        "--log-level",
        "logging verbosity",
        choices=("debug", "info", "warning", "error"),
    )
    log_format: str = setting(
        "text",
        "--log-format",
        "log lines as text or as one JSON object each; both carry the connection id",
        choices=("text", "json"),
    )

    @classmethod
    def resolve(
        cls, given: Mapping[str, Any], environ: Mapping[str, str] | None = None
    ) -> Settings:
        """Settings from ``given`` (by field name), else the environment, else the defaults.

        ``ConfigError`` names the environment variable whose value cannot be parsed.
        """
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for item in declared_fields():
            declared: Declared = item.metadata["declared"]
            if item.name in given:
                values[item.name] = given[item.name]
            elif declared.env in environ and environ[declared.env] != "":
                try:
                    values[item.name] = declared.parse(environ[declared.env])
                except ValueError as exc:
                    raise ConfigError(f"{declared.env}: {exc}") from None
        return cls(**values)

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


def declared_fields(*groups: Group) -> list[Field[Any]]:
    """The settings offered as options, in declaration order; all of them without ``groups``."""
    return [
        item
        for item in fields(Settings)
        if "declared" in item.metadata and (not groups or item.metadata["declared"].group in groups)
    ]


def env_of(name: str) -> str:
    """The environment variable of the setting ``name``."""
    [item] = [item for item in declared_fields() if item.name == name]
    env: str = item.metadata["declared"].env
    return env


def default_of(item: Field[Any]) -> Any:
    return None if item.default is MISSING else item.default
