"""Key classes and content keys.

A title has one content key per class, so a device allowed only SD (software-secure
CDM) never receives the key that decrypts HD or UHD. The classes are the SPEKE v2
key-usage bands of PRESET-VIDEO-3 + PRESET-AUDIO-1 (AWS "SPEKE v2.0 presets"):
SD up to 1024x576 pixels, HD up to 1920x1080, UHD above; one key for all audio.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, get_args

KeyClass = Literal["AUDIO", "SD", "HD", "UHD"]
KEY_CLASSES: tuple[KeyClass, ...] = get_args(KeyClass)

# The Common Encryption schemes a content key can be made for (23001-7 4.2).
EncryptionScheme = Literal["cenc", "cens", "cbc1", "cbcs"]
ENCRYPTION_SCHEMES: tuple[EncryptionScheme, ...] = get_args(EncryptionScheme)
LEGACY_SCHEME: EncryptionScheme = "cenc"  # what every key stored before per-scheme keys was made for

SD_MAX_PIXELS = 1024 * 576  # PRESET-VIDEO-3 "SD": <= 1024x576
HD_MAX_PIXELS = 1920 * 1080  # PRESET-VIDEO-3 "HD": > 1024x576, <= 1920x1080; "UHD" above

_KID = re.compile(r"^[0-9a-f]{32}$")


def video_key_class(width: int, height: int) -> KeyClass:
    """The key class protecting a video track of ``width`` x ``height`` pixels."""
    pixels = width * height
    if pixels <= SD_MAX_PIXELS:
        return "SD"
    if pixels <= HD_MAX_PIXELS:
        return "HD"
    return "UHD"


def key_slot(key_class: KeyClass, scheme: str) -> str:
    """Where a title's key for ``key_class`` under ``scheme`` is kept: one key per class
    *and per scheme*, never one key for two schemes.

    Why: packaging a title in 'cenc' (AES-CTR) and in 'cbcs' (AES-CBC) with one key puts
    one key under two modes of operation over the same plaintext. Known plaintext in the
    'cenc' copy (the bitstream is predictable in places) reveals CTR keystream blocks,
    which are raw AES outputs under the very key that 'cbcs' chains with a constant IV;
    a slip in either scheme (an IV or counter reused, a partial-block rule broken) then
    exposes both copies. Key separation is the general rule (NIST SP 800-57 Part 1 Rev. 5,
    5.2: use a key for one purpose only), and the content-protection exchange format
    encodes it: DASH-IF CPIX 2.3 added ``ContentKey@commonEncryptionScheme``, binding
    each content key to one scheme, together with a section on using one content key with
    different schemes, which we read as: avoid it; SPEKE v2 likewise refuses a request
    mixing schemes. So each scheme gets its own key and KID, and a device that plays
    'cbcs' never holds the 'cenc' key.

    'cenc' keys keep the bare class name, so keys stored before this rule (all made for
    the packager's default, 'cenc') stay the title's 'cenc' keys.
    """
    if scheme not in ENCRYPTION_SCHEMES:
        raise ValueError(f"unknown encryption scheme {scheme!r}; known: {', '.join(ENCRYPTION_SCHEMES)}")
    return key_class if scheme == LEGACY_SCHEME else f"{key_class}:{scheme}"


def slot_parts(slot: str) -> tuple[KeyClass, EncryptionScheme]:
    """The inverse of ``key_slot``."""
    key_class, _, scheme = slot.partition(":")
    return key_class, scheme or LEGACY_SCHEME  # type: ignore[return-value]


def check_kid(kid: str) -> str:
    """``kid`` as 32 lowercase hex digits (dashes of the UUID form removed)."""
    normal = kid.replace("-", "").lower()
    if not _KID.match(normal):
        raise ValueError(f"key id {kid!r} is not 16 bytes of hex")
    return normal


@dataclass(frozen=True)
class ContentKey:
    """A content key and its id (KID). ``repr`` never shows the key bytes."""

    kid: str  # 32 lowercase hex digits
    key: bytes  # 16 bytes (AES-128, ISO/IEC 23001-7)

    def __post_init__(self) -> None:
        object.__setattr__(self, "kid", check_kid(self.kid))
        if len(self.key) != 16:
            raise ValueError(f"content key {self.kid}: {len(self.key)} bytes, expected 16")

    @property
    def kid_uuid(self) -> str:
        """The KID in the UUID form CPIX and ``cenc:default_KID`` use."""
        k = self.kid
        return f"{k[:8]}-{k[8:12]}-{k[12:16]}-{k[16:20]}-{k[20:]}"

    def __repr__(self) -> str:
        return f"ContentKey(kid={self.kid!r}, key=<redacted>)"

    __str__ = __repr__
