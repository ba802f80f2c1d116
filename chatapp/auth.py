"""Who a connection is: verified JWTs, or generated guests when no key is configured.

Pure: no I/O. The accepted algorithm list comes from configuration, never
from the token's header, so ``alg: none`` and algorithm confusion are refused.
"""

from __future__ import annotations

import secrets

import jwt

from chatapp.model import User

#: Guests' ids carry this prefix, which a verified token's ``sub`` cannot take.
GUEST_PREFIX = "guest:"
#: Longest display name kept; longer ones are cut.
MAX_NAME_CHARS = 64
#: Clock skew tolerated on ``exp``/``nbf``/``iat``, in seconds.
LEEWAY_SECONDS = 30


class AuthError(Exception):
    """A token that must be refused; the message is safe to show (it holds no token)."""


class Authenticator:
    def __init__(self, hs256_secret: str | None) -> None:
        self._secret = hs256_secret

    @property
    def tokens_required(self) -> bool:
        return self._secret is not None

    def verify(self, token: str) -> User:
        """The user a valid HS256 token names; ``AuthError`` otherwise."""
        if self._secret is None:
            raise AuthError("this server does not accept tokens")
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=["HS256"],
                options={"require": ["exp", "sub"]},
                leeway=LEEWAY_SECONDS,
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("token expired") from None
        except jwt.InvalidTokenError as exc:
            raise AuthError(f"invalid token: {exc}") from None
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject or subject.startswith(GUEST_PREFIX):
            raise AuthError("invalid token: 'sub' must be a non-empty string")
        name = claims.get("name")
        if not isinstance(name, str) or not name.strip():
            name = subject
        return User(id=subject, name=name.strip()[:MAX_NAME_CHARS])

    def guest(self) -> User:
        """A fresh guest identity with a generated, readable name."""
        tag = secrets.token_hex(3)
        return User(id=f"{GUEST_PREFIX}{secrets.token_hex(8)}", name=f"guest-{tag}")
