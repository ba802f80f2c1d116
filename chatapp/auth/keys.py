"""Loading key material from disk for the ``Authenticator`` (the I/O that auth.py avoids)."""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from chatapp.auth.tokens import Authenticator, VerificationKey
from chatapp.errors import ConfigError
from chatapp.settings import GUEST_SECRET_FILE, Settings


def guest_secret(data_dir: Path) -> str:
    """The per-install secret that signs guest tokens, created (mode 0600) on first use."""
    path = data_dir / GUEST_SECRET_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if stat.S_IMODE(path.stat().st_mode) & 0o077:
            path.chmod(0o600)  # someone loosened it; nobody else should read it
        return path.read_text().strip()
    with os.fdopen(fd, "w") as file:
        file.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


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


def authenticator(settings: Settings) -> Authenticator:
    """Everything the server needs to tell who a connection is."""
    return Authenticator(
        verification_key(settings),
        guest_secret(settings.data_dir),
        allow_guests=settings.guests_allowed,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
    )
