"""Envelope encryption of content keys: the key-encryption-key (KEK) port and its
AES-256-GCM adapter.

A wrapped key is ``01 | nonce (12) | ciphertext (16) | tag (16)``. The associated data
binds it to its row (``title_id/key_class/kid``), so a wrapped key copied onto another
title's row fails to unwrap instead of decrypting the wrong content. A KMS adapter
(AWS KMS ``Encrypt``/``Decrypt`` with the same associated data as encryption context)
implements the same two methods.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
from abc import ABC, abstractmethod

from Crypto.Cipher import AES

from reelstream.errors import ConfigError, ReelStreamError

_VERSION = b"\x01"
_NONCE = 12
_TAG = 16


class KeyUnwrapFailed(ReelStreamError):
    """A stored wrapped key does not authenticate under the KEK: wrong ``REEL_KEK``, a
    row tampered with, or a wrapped key moved to another title's row. Not transient: a
    retry fails the same way until an operator fixes it."""

    @property
    def transient(self) -> bool:
        return False


class KeyEncryptionKey(ABC):
    """Wraps and unwraps content keys. Implementations: ``AesGcmKek`` (a key from
    configuration); a KMS adapter would call the KMS for both operations."""

    @property
    @abstractmethod
    def kek_id(self) -> str:
        """Names the KEK (never its bytes), stored beside each wrapped key for rotation."""

    @abstractmethod
    def wrap(self, plaintext: bytes, context: bytes) -> bytes: ...

    @abstractmethod
    def unwrap(self, wrapped: bytes, context: bytes) -> bytes:
        """Raises KeyUnwrapFailed when ``wrapped`` does not authenticate with ``context``."""


class AesGcmKek(KeyEncryptionKey):
    """AES-256-GCM with a 32-byte key held in memory (from ``REEL_KEK``)."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError(f"the KEK must be 32 bytes, got {len(key)}")
        self._key = key
        # A public fingerprint: lets an operator tell which KEK wrapped a row.
        self._id = "aesgcm:" + hashlib.sha256(b"reelstream-kek-id" + key).hexdigest()[:16]

    @property
    def kek_id(self) -> str:
        return self._id

    def wrap(self, plaintext: bytes, context: bytes) -> bytes:
        nonce = secrets.token_bytes(_NONCE)  # random 96-bit nonces: far below 2^32 wraps per KEK
        cipher = AES.new(self._key, AES.MODE_GCM, nonce=nonce, mac_len=_TAG)
        cipher.update(_VERSION + context)
        ciphertext, tag = cipher.encrypt_and_digest(plaintext)
        return _VERSION + nonce + ciphertext + tag

    def unwrap(self, wrapped: bytes, context: bytes) -> bytes:
        if len(wrapped) < 1 + _NONCE + _TAG or wrapped[:1] != _VERSION:
            raise KeyUnwrapFailed(f"wrapped key for {context.decode(errors='replace')}: unknown format")
        nonce, body = wrapped[1:1 + _NONCE], wrapped[1 + _NONCE:]
        cipher = AES.new(self._key, AES.MODE_GCM, nonce=nonce, mac_len=_TAG)
        cipher.update(_VERSION + context)
        try:
            return cipher.decrypt_and_verify(body[:-_TAG], body[-_TAG:])
        except ValueError as e:
            raise KeyUnwrapFailed(
                f"wrapped key for {context.decode(errors='replace')} does not authenticate "
                f"under KEK {self._id}: wrong REEL_KEK or a tampered row") from e

    def __repr__(self) -> str:
        return f"AesGcmKek({self._id})"


def kek_from_setting(value: str | None, name: str = "REEL_KEK") -> AesGcmKek:
    """The KEK from a base64 setting; a missing, malformed or short value fails with ``name``."""
    if not value:
        raise ConfigError(
            f"{name} is not set: the key service needs a 32-byte key-encryption key, base64-encoded "
            f"(e.g. `python -c \"import base64,secrets;print(base64.b64encode(secrets.token_bytes(32)).decode())\"`)")
    try:
        key = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ConfigError(f"{name} is not valid base64: {e}") from e
    if len(key) != 32:
        raise ConfigError(f"{name} decodes to {len(key)} bytes; it must be 32 (AES-256)")
    return AesGcmKek(key)
