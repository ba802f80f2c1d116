"""Loading key material for the ``Authenticator`` from files and the database (the I/O
that tokens.py avoids)."""

from __future__ import annotations

import secrets

from chatapp.auth.tokens import Authenticator, VerificationKey
from chatapp.errors import ConfigError
from chatapp.settings import GUEST_SECRET_FILE, Settings
from chatapp.store import Store

#: Name of the guest-token secret in the database's ``secrets``.
GUEST_SECRET_NAME = "guest-token"  # noqa: S105 (a name, not a secret)


async def guest_secret(settings: Settings, store: Store) -> str:
    """The secret that signs guest tokens, the same on every process sharing the database.

    ``--guest-secret`` when given (the database's copy is then not used).
    Otherwise the one kept in the database, created once by the first process
    that asks: an install from before the database kept it proposes its
    ``guest-secret`` file, so the guest tokens it issued stay valid.
    """
    if settings.guest_secret is not None:
        VerificationKey.shared_secret(settings.guest_secret)  # refuse a weak one
        return settings.guest_secret
    path = settings.data_dir / GUEST_SECRET_FILE
    try:
        proposed = path.read_text().strip()
    except FileNotFoundError:
        proposed = ""
    except OSError as exc:
        raise ConfigError(
            f"cannot read the guest-token secret {str(path)!r}: {exc.strerror}"
        ) from None
    return await store.shared_secret(GUEST_SECRET_NAME, proposed or secrets.token_urlsafe(48))


def verification_key(settings: Settings) -> VerificationKey | None:
    """The key for tokens minted elsewhere, if one is configured."""
    if settings.jwt_secret is not None and settings.jwt_public_key is not None:
        raise ConfigError("give either --jwt-secret or --jwt-public-key, not both")
    if settings.jwt_secret is not None:
        return VerificationKey.shared_secret(settings.jwt_secret)
    if settings.jwt_public_key is not None:
        try:
            pem = settings.jwt_public_key.read_bytes()
        except OSError as exc:
            raise ConfigError(
                f"cannot read --jwt-public-key {str(settings.jwt_public_key)!r}: {exc.strerror}"
            ) from None
        return VerificationKey.public_key(pem)
    return None


def authenticator(
    settings: Settings, key: VerificationKey | None, guest_secret: str
) -> Authenticator:
    """Everything the server needs to tell who a connection is."""
    return Authenticator(
        key,
        guest_secret,
        allow_guests=settings.guests_allowed,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
    )
