"""Session tokens: HS256 JWTs with rotating keys; forged, expired, retired and
algorithm-confused tokens are refused."""

from __future__ import annotations

import base64
import json

import pytest

from reelstream.errors import ConfigError
from reelstream.identity.tokens import (
    KeyRing,
    SigningKey,
    TokenExpired,
    TokenInvalid,
    TokenSigner,
    b64url,
)
from tests.unit.gateways.support import Clock

K1, K2 = SigningKey("k1", b"1" * 32), SigningKey("k2", b"2" * 32)


def test_round_trip_and_rotation() -> None:
    clock = Clock(1_000_000.0)
    old = TokenSigner(KeyRing([K1]), clock)
    token = old.issue({"sub": "acc"}, 60, "session")
    rotated = TokenSigner(KeyRing([K2, K1]), clock)  # new key signs, old still verifies
    assert rotated.verify(token, "session")["sub"] == "acc"
    assert json.loads(base64.urlsafe_b64decode(rotated.issue({}, 60, "session").split(".")[0] + "=="))["kid"] == "k2"
    with pytest.raises(TokenInvalid, match="retired"):
        TokenSigner(KeyRing([K2]), clock).verify(token, "session")


def test_expiry_audience_forgery_and_alg_none() -> None:
    clock = Clock(1_000_000.0)
    signer = TokenSigner(KeyRing([K1]), clock)
    token = signer.issue({"sub": "acc"}, 60, "session")
    with pytest.raises(TokenInvalid, match="not a 'playback' token"):
        signer.verify(token, "playback")
    head, body, sig = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=="))
    forged_body = b64url(json.dumps({**claims, "sub": "someone-else"}).encode())
    with pytest.raises(TokenInvalid, match="does not verify"):
        signer.verify(f"{head}.{forged_body}.{sig}", "session")
    none_head = b64url(json.dumps({"alg": "none", "kid": "k1"}).encode())
    with pytest.raises(TokenInvalid, match="algorithm"):
        signer.verify(f"{none_head}.{body}.", "session")
    for junk in ("", "a.b", "a.b.c", "!!.??.**"):
        with pytest.raises(TokenInvalid):
            signer.verify(junk, "session")
    clock.advance(61)
    with pytest.raises(TokenExpired):
        signer.verify(token, "session")


def test_key_ring_setting_is_validated() -> None:
    ring = KeyRing.from_setting("a:" + base64.b64encode(b"x" * 32).decode())
    assert ring.current.kid == "a"
    for bad in ("", "nocolon", "a:not-base64!", "a:" + base64.b64encode(b"short").decode()):
        with pytest.raises(ConfigError, match="REEL_GATEWAY_SIGNING_KEYS|signing key"):
            KeyRing.from_setting(bad)


def test_a_key_ring_setting_without_its_kid_is_refused_without_echoing_the_secret() -> None:
    secret = base64.b64encode(b"s3cret-bytes-of-the-signing-key!").decode()
    with pytest.raises(ConfigError) as refused:
        KeyRing.from_setting(f"k2:{base64.b64encode(b'x' * 32).decode()},{secret}")
    message = str(refused.value)
    assert "item 2 of 2 is not 'kid:base64secret'" in message
    assert secret[:6] not in message  # before: the first 12 characters of the secret
