"""Where content keys come from: the ``KeyProvider`` port.

Keys are per title and per track class (AUDIO, SD up to 576 lines, HD up to 1080, UHD
above), so a device allowed only SD never holds an HD key. The packager asks for the
classes it needs; the key service (SPEKE/CPIX behind this port, another module) answers.
``InMemoryKeyProvider`` is for tests and the embedded demo: it derives nothing, it only
returns what it was given or random keys it remembers.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from reelstream.media.package.errors import PackagingError

KeyClass = Literal["AUDIO", "SD", "HD", "UHD"]
KEY_CLASSES: tuple[KeyClass, ...] = ("AUDIO", "SD", "HD", "UHD")


class MissingKey(PackagingError):
    """The key provider has no key for a track class the package needs."""

    def __init__(self, title_id: str, key_class: str, file: str = "", box: str = "tenc") -> None:
        where = f" (for {file}, box '{box}')" if file else ""
        super().__init__(f"no content key for title {title_id!r}, class {key_class}{where}; "
                         "create the title's keys in the key service first")
        self.title_id = title_id
        self.key_class = key_class
        self.file = file
        self.box = box


@dataclass(frozen=True)
class ContentKey:
    """A 128-bit AES content key and its key id (the KID players ask a license for)."""

    kid: bytes
    key: bytes

    def __post_init__(self) -> None:
        if len(self.kid) != 16 or len(self.key) != 16:
            raise ValueError("a content key and its key id are 16 bytes each")

    @property
    def kid_hex(self) -> str:
        return self.kid.hex()

    def __repr__(self) -> str:  # never print key bytes (logs, tracebacks)
        return f"ContentKey(kid={self.kid.hex()}, key=<redacted>)"


def key_class_for(kind: str, height: int | None) -> KeyClass:
    """AUDIO for audio; SD up to 576 lines, HD up to 1080, UHD above."""
    if kind == "audio":
        return "AUDIO"
    if height is None or height <= 576:
        return "SD"
    return "HD" if height <= 1080 else "UHD"


class KeyProvider(ABC):
    """Gives the packager the content keys of a title, per track class."""

    @abstractmethod
    def keys_for(self, title_id: str, classes: Iterable[KeyClass]) -> dict[KeyClass, ContentKey]:
        """One key per requested class. Raises MissingKey when one cannot be had."""


class InMemoryKeyProvider(KeyProvider):
    """Keys held in a dict: given up front, or (``generate=True``) made on first request."""

    def __init__(self, keys: Mapping[str, Mapping[KeyClass, ContentKey]] | None = None,
                 generate: bool = False) -> None:
        self._keys: dict[str, dict[KeyClass, ContentKey]] = {
            t: dict(k) for t, k in (keys or {}).items()}
        self._generate = generate

    def keys_for(self, title_id: str, classes: Iterable[KeyClass]) -> dict[KeyClass, ContentKey]:
        held = self._keys.setdefault(title_id, {})
        out: dict[KeyClass, ContentKey] = {}
        for c in classes:
            if c not in held:
                if not self._generate:
                    raise MissingKey(title_id, c)
                held[c] = ContentKey(os.urandom(16), os.urandom(16))
            out[c] = held[c]
        return out
