"""Who a connection is: verified JWTs, server-minted guest tokens, or anonymous guests.

Pure apart from reading key material handed in as bytes. The accepted
algorithms come from the configured key (HS256 for a shared secret, RS256 or
ES256/384/512 for a PEM public key), never from the token header, so
``alg: none`` and algorithm confusion (an HS256 token "signed" with the RSA
public key) are refused.

Guest tokens are signed by the server itself with a per-install secret and
carry the issuer ``GUEST_ISSUER`` and a ``sub`` starting with ``GUEST_PREFIX``;
tokens from the configured key may not use that prefix, so neither kind can
pose as the other.
"""

from __future__ import annotations

import fnmatch
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from chatapp.errors import AuthError, ConfigError
from chatapp.model import User

#: Guests' ids carry this prefix, which a verified token's ``sub`` cannot take.
GUEST_PREFIX = "guest:"
#: ``iss`` of the tokens this server mints for guests.
GUEST_ISSUER = "chatapp-guest"
#: How long a guest token lives; the browser renews it before then.
GUEST_TOKEN_TTL = 3600
#: A guest token this much past its expiry can still be renewed (keeping its id).
GUEST_RENEWAL_WINDOW = 7 * 24 * 3600
#: Longest user id (``sub``) accepted: the column that stores it holds 255.
MAX_SUBJECT_CHARS = 255
#: Longest display name kept; longer ones are cut.
MAX_NAME_CHARS = 64
#: Clock skew tolerated on ``nbf``/``iat``, in seconds. ``exp`` is strict: a token is
#: refused from the moment an open connection with it would be closed, so a client
#: cannot loop on reconnects that are accepted and closed at once.
LEEWAY_SECONDS = 30
#: Shortest HS256 secret accepted (RFC 7518 section 3.2: at least the hash size).
MIN_SECRET_BYTES = 32

_EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}


@dataclass(frozen=True, slots=True)
class Identity:
    """A verified user, the rooms they may use, and when their credential ends."""

    user: User
    #: Room names or glob patterns from the ``rooms`` claim; None means every room.
    rooms: tuple[str, ...] | None = None
    #: Unix time when the token expires; None for token-less guests.
    expires_at: float | None = None

    def may_use(self, room: str) -> bool:
        if self.rooms is None:
            return True
        return any(fnmatch.fnmatchcase(room, pattern) for pattern in self.rooms)


@dataclass(frozen=True, slots=True)
class VerificationKey:
    """The key that checks tokens minted elsewhere, and the one algorithm family it allows."""

    key: Any
    algorithms: tuple[str, ...]

    @classmethod
    def shared_secret(cls, secret: str) -> VerificationKey:
        if len(secret.encode()) < MIN_SECRET_BYTES:
            raise ConfigError(
                f"the HS256 secret is too weak: use at least {MIN_SECRET_BYTES} bytes "
                "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(48))'`)"
            )
        return cls(secret, ("HS256",))

    @classmethod
    def public_key(cls, pem: bytes) -> VerificationKey:
        try:
            key = load_pem_public_key(pem)
        except ValueError as exc:
            raise ConfigError(f"not a PEM public key: {exc}") from None
        if isinstance(key, rsa.RSAPublicKey):
            return cls(key, ("RS256",))
        if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in _EC_ALGORITHMS:
            return cls(key, (_EC_ALGORITHMS[key.curve.name],))
        raise ConfigError("the public key must be RSA or EC (P-256, P-384, P-521)")


class Authenticator:
    def __init__(
        self,
        key: VerificationKey | None,
        guest_secret: str,
        *,
        allow_guests: bool,
        issuer: str | None = None,
        audience: str | None = None,
    ) -> None:
        self._key = key
        self._guest_secret = guest_secret
        self.allow_guests = allow_guests
        self._issuer = issuer
        self._audience = audience

    @property
    def tokens_configured(self) -> bool:
        return self._key is not None

    def verify(self, token: str) -> Identity:
        """The identity a valid token names; ``AuthError`` otherwise."""
        if _unverified_issuer(token) == GUEST_ISSUER:
            return self._verify_guest(token)
        if self._key is None:
            raise AuthError("this server has no key for tokens; sign in as a guest")
        claims = _decode(
            token,
            self._key.key,
            self._key.algorithms,
            issuer=self._issuer,
            audience=self._audience,
        )
        subject = claims["sub"]
        if (
            not isinstance(subject, str)
            or not subject
            or len(subject) > MAX_SUBJECT_CHARS
            or subject.startswith(GUEST_PREFIX)
            or subject != subject.encode("utf-8", "replace").decode("utf-8")
        ):
            raise AuthError("invalid token: 'sub' must be a non-empty string")
        return Identity(
            user=User(id=subject, name=_display_name(claims.get("name"), subject)),
            rooms=_rooms_claim(claims.get("rooms")),
            expires_at=float(claims["exp"]),
        )

    def _verify_guest(self, token: str, renewing: bool = False) -> Identity:
        if not self.allow_guests:
            raise AuthError("guests are not allowed on this server")
        claims = _decode(
            token,
            self._guest_secret,
            ("HS256",),
            issuer=GUEST_ISSUER,
            leeway=GUEST_RENEWAL_WINDOW if renewing else LEEWAY_SECONDS,
            strict_exp=not renewing,
        )
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject.startswith(GUEST_PREFIX):
            raise AuthError("invalid guest token")
        return Identity(
            user=User(id=subject, name=_display_name(claims.get("name"), "guest")),
            expires_at=float(claims["exp"]),
        )

    def anonymous_guest(self) -> Identity:
        """A fresh guest for a client without a token (the tutorial's text client)."""
        if not self.allow_guests:
            raise AuthError("a token is required")
        return Identity(User(id=_new_guest_id(), name=f"guest-{secrets.token_hex(3)}"))

    def guest_token(self, name: str, previous: str | None = None) -> tuple[str, Identity]:
        """Mint a guest token for ``name``; renewing a recent one keeps the same guest id."""
        if not self.allow_guests:
            raise AuthError("guests are not allowed on this server")
        display = _display_name(name, "")
        if not display:
            raise AuthError("a display name is required")
        subject = _new_guest_id()
        if previous:
            subject = self._verify_guest(previous, renewing=True).user.id
        expires = int(time.time()) + GUEST_TOKEN_TTL
        claims = {"sub": subject, "name": display, "iss": GUEST_ISSUER, "exp": expires}
        token = jwt.encode(claims, self._guest_secret, algorithm="HS256")
        return token, Identity(User(subject, display), expires_at=float(expires))


def mint_token(
    secret: str,
    subject: str,
    name: str | None,
    ttl_seconds: int,
    rooms: Sequence[str] | None = None,
    issuer: str | None = None,
    audience: str | None = None,
) -> str:
    """An HS256 token for bots and scripts (``python -m chatapp token``)."""
    VerificationKey.shared_secret(secret)  # refuse weak secrets here too
    if subject.startswith(GUEST_PREFIX):
        raise AuthError(f"'sub' may not start with {GUEST_PREFIX!r}")
    now = int(time.time())
    claims: dict[str, Any] = {"sub": subject, "iat": now, "exp": now + ttl_seconds}
    for claim, value in (("name", name), ("iss", issuer), ("aud", audience)):
        if value:
            claims[claim] = value
    if rooms:
        claims["rooms"] = list(rooms)
    return jwt.encode(claims, secret, algorithm="HS256")


def _decode(
    token: str,
    key: Any,
    algorithms: Sequence[str],
    *,
    issuer: str | None = None,
    audience: str | None = None,
    leeway: float = LEEWAY_SECONDS,
    strict_exp: bool = True,
) -> dict[str, Any]:
    if not token.isascii():  # a JWT is base64url and dots; PyJWT fails on lone surrogates
        raise AuthError("invalid token")
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=list(algorithms),
            issuer=issuer,
            audience=audience,
            options={"require": ["exp", "sub"], "verify_aud": audience is not None},
            leeway=leeway,
        )
    except jwt.ExpiredSignatureError:
        raise AuthError("token expired") from None
    except jwt.ImmatureSignatureError:
        raise AuthError("token not valid yet") from None
    except jwt.InvalidIssuerError:
        raise AuthError("token has the wrong issuer") from None
    except jwt.InvalidAudienceError:
        raise AuthError("token has the wrong audience") from None
    except jwt.InvalidAlgorithmError:
        raise AuthError("token signed with an algorithm this server does not accept") from None
    except jwt.MissingRequiredClaimError as exc:
        raise AuthError(f"token lacks the '{exc.claim}' claim") from None
    except jwt.InvalidTokenError:
        raise AuthError("invalid token") from None
    if strict_exp and claims["exp"] <= time.time():
        raise AuthError("token expired")
    return claims


def _unverified_issuer(token: str) -> object:
    """The ``iss`` claim before verification: only to pick which key verifies it."""
    if not token.isascii():
        return None  # not a JWT: ``_decode`` refuses it
    try:
        return jwt.decode(token, options={"verify_signature": False}).get("iss")
    except jwt.InvalidTokenError:
        return None


def _display_name(value: object, fallback: str) -> str:
    """Whitespace folded, cut to MAX_NAME_CHARS; lone surrogates (which no database can
    store) replaced."""
    if isinstance(value, str) and value.strip():
        name = " ".join(value.split())[:MAX_NAME_CHARS]
        return name.encode("utf-8", "replace").decode("utf-8")
    return fallback


def _rooms_claim(value: object) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(r, str) for r in value):
        raise AuthError("invalid token: 'rooms' must be a list of room names or patterns")
    return tuple(value)


def _new_guest_id() -> str:
    return f"{GUEST_PREFIX}{secrets.token_hex(8)}"
