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
