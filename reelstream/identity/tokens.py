"""Session tokens: compact JWS (RFC 7515) with HS256, signed by a ring of rotating keys.

Implemented with the standard library (``hmac``, ``hashlib``, ``base64``): HS256 JWTs
are a few lines, and a dependency would add nothing but an import. The header names
the signing key (``kid``), so keys rotate without downtime: new tokens are signed with
the newest key, and tokens signed with any key still in the ring verify until they
expire. Removing a key from the ring revokes every token it signed.

Verification is constant-time on the signature and rejects ``alg`` values other than
HS256 (no ``none``, no algorithm confusion).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reelstream.errors import ConfigError, ReelStreamError

ALGORITHM = "HS256"
MIN_KEY_BYTES = 32  # RFC 7518 §3.2: a key of at least the hash output size


class TokenInvalid(ReelStreamError):
    """A token is malformed, signed with an unknown or retired key, forged, or meant for
    another audience. The message says which; the caller answers 401."""


class TokenExpired(TokenInvalid):
    """A token's ``exp`` has passed: the client must sign in (or fetch a new ticket) again."""


def b64url(data: bytes) -> str:
    """base64url without padding (RFC 7515 §2), as JWS and the Clear Key JWK set use."""
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


_NOT_B64URL = re.compile(r"[+/= \n]")


def b64url_decode(text: str) -> bytes:
    """The inverse of ``b64url``; raises ValueError on characters outside the alphabet."""
    if not isinstance(text, str) or _NOT_B64URL.search(text):
        raise ValueError("not base64url without padding")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as e:
        raise ValueError(f"not base64url: {e}") from e


@dataclass(frozen=True)
class SigningKey:
    kid: str
    secret: bytes

    def __post_init__(self) -> None:
        if len(self.secret) < MIN_KEY_BYTES:
            raise ConfigError(f"signing key {self.kid!r}: {len(self.secret)} bytes, at least {MIN_KEY_BYTES} needed")

    def __repr__(self) -> str:
        return f"SigningKey({self.kid!r}, <redacted>)"


class KeyRing:
    """The keys tokens may be signed with; the first signs, all verify."""

    def __init__(self, keys: Sequence[SigningKey]) -> None:
        if not keys:
            raise ConfigError("REEL_GATEWAY_SIGNING_KEYS: at least one signing key is needed")
        self._keys = {k.kid: k for k in keys}
        self.current = keys[0]

    @classmethod
    def from_setting(cls, value: str, name: str = "REEL_GATEWAY_SIGNING_KEYS") -> KeyRing:
        """``kid:base64secret[,kid:base64secret...]``, newest first."""
        keys = []
        for position, item in enumerate((v.strip() for v in value.split(",")), start=1):
            if not item:
                continue
            kid, sep, secret = item.partition(":")
            if not sep or not kid:
                # Never echo the item: without its 'kid:' it is the secret itself, and this
                # message goes to the terminal, the role's log and the supervisor's.
                raise ConfigError(f"{name}: item {position} of {value.count(',') + 1} is not 'kid:base64secret' "
                                  "(a key id, a colon, then the base64 secret)")
            try:
                raw = base64.b64decode(secret, validate=True)
            except (binascii.Error, ValueError) as e:
                raise ConfigError(f"{name}: key {kid!r} is not valid base64: {e}") from e
            keys.append(SigningKey(kid, raw))
        return cls(keys)

    def get(self, kid: str) -> SigningKey | None:
        return self._keys.get(kid)


class TokenSigner:
    """Issues and verifies tokens; ``clock`` returns seconds since the epoch (injected)."""

    def __init__(self, ring: KeyRing, clock: Callable[[], float], issuer: str = "reelstream") -> None:
        self.ring = ring
        self.clock = clock
        self.issuer = issuer

    def issue(self, claims: Mapping[str, Any], ttl_s: int, audience: str) -> str:
        now = int(self.clock())
        key = self.ring.current
        header = {"alg": ALGORITHM, "typ": "JWT", "kid": key.kid}
        body = {**claims, "iss": self.issuer, "aud": audience, "iat": now, "exp": now + ttl_s}
        signing_input = f"{_segment(header)}.{_segment(body)}"
        return f"{signing_input}.{b64url(_mac(key, signing_input))}"

    def verify(self, token: str, audience: str) -> dict[str, Any]:
        parts = token.split(".") if isinstance(token, str) else []
        if len(parts) != 3:
            raise TokenInvalid("the token is not a compact JWS (three base64url parts)")
        header, body = _decode_json(parts[0], "header"), _decode_json(parts[1], "claims")
        if header.get("alg") != ALGORITHM:
            raise TokenInvalid(f"token algorithm {header.get('alg')!r} is not accepted; only {ALGORITHM}")
        key = self.ring.get(str(header.get("kid")))
        if key is None:
            raise TokenInvalid(f"the token's signing key {header.get('kid')!r} is unknown or retired; sign in again")
        try:
            signature = b64url_decode(parts[2])
        except ValueError:
            raise TokenInvalid("the token's signature is not base64url") from None
        if not hmac.compare_digest(signature, _mac(key, f"{parts[0]}.{parts[1]}")):
            raise TokenInvalid("the token's signature does not verify (forged or altered)")
        if body.get("iss") != self.issuer or body.get("aud") != audience:
            raise TokenInvalid(f"the token is not a {audience!r} token issued by {self.issuer}")
        exp = body.get("exp")
        if not isinstance(exp, int) or exp <= self.clock():
            raise TokenExpired("the token has expired; sign in again")
        return body


def _segment(obj: Mapping[str, Any]) -> str:
    return b64url(json.dumps(obj, separators=(",", ":"), sort_keys=True).encode())


def _mac(key: SigningKey, signing_input: str) -> bytes:
    return hmac.new(key.secret, signing_input.encode(), hashlib.sha256).digest()


def _decode_json(part: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(b64url_decode(part))
    except (ValueError, UnicodeDecodeError):
        raise TokenInvalid(f"the token's {what} is not base64url JSON") from None
    if not isinstance(value, dict):
        raise TokenInvalid(f"the token's {what} is not a JSON object")
    return value
