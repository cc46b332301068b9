"""Where content keys come from: the ``KeyProvider`` port.

Keys are per title, per track class (AUDIO; video SD up to 1024x576 pixels, HD up
to 1920x1080, UHD above: SPEKE v2 PRESET-VIDEO-3), so a device allowed only SD never
holds an HD key, and per encryption scheme ('cenc' and 'cbcs' packages of one title use
different keys: ``reelstream.keys.model.key_slot`` gives the reason). The packager asks for the
classes it needs; the key service (``reelstream.keys``: ``KeyService``, or
``SpekeKeyProvider`` for a SPEKE v2 endpoint) answers. ``ContentKey`` and the classes
are the key service's own (``reelstream.keys.model``), so either plugs in as is.
``InMemoryKeyProvider`` is for tests and the embedded demo: it derives nothing, it only
returns what it was given or random keys it remembers.
"""

from __future__ import annotations

import os
from abc import abstractmethod
from collections.abc import Iterable, Mapping
from typing import Protocol, runtime_checkable

from reelstream.keys.model import (
    KEY_CLASSES,
    LEGACY_SCHEME,
    ContentKey,
    KeyClass,
    key_slot,
    video_key_class,
)
from reelstream.media.package.errors import PackagingError

__all__ = ["KEY_CLASSES", "ContentKey", "InMemoryKeyProvider", "KeyClass", "KeyProvider",
           "MissingKey", "key_class_for", "kid_bytes"]


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


def key_class_for(kind: str, width: int | None, height: int | None) -> KeyClass:
    """AUDIO for audio; video by pixel count, the SPEKE v2 PRESET-VIDEO-3 bands."""
    if kind == "audio":
        return "AUDIO"
    return video_key_class(width or 0, height or 0)


def kid_bytes(key: ContentKey) -> bytes:
    return bytes.fromhex(key.kid)


@runtime_checkable
class KeyProvider(Protocol):
    """Gives the packager the content keys of a title, per track class.

    A protocol, not an ABC: the key service and the SPEKE client implement ``keys_for``
    without importing this port, and the type checker still holds them to it.
    """

    @abstractmethod
    def keys_for(self, title_id: str, classes: Iterable[KeyClass], *,
                 scheme: str = LEGACY_SCHEME) -> dict[KeyClass, ContentKey]:
        """One key per requested class, for ``scheme`` only (never a key another scheme
        uses). Raises MissingKey when one cannot be had. ``scheme`` is keyword-only: the
        key service takes ``kids`` in third place."""


class InMemoryKeyProvider(KeyProvider):
    """Keys held in a dict: given up front (those are 'cenc' keys, or any scheme's with a
    ``"SD:cbcs"``-style ``key_slot``), or (``generate=True``) made on first request."""

    def __init__(self, keys: Mapping[str, Mapping[str, ContentKey]] | None = None,
                 generate: bool = False) -> None:
        self._keys: dict[str, dict[str, ContentKey]] = {t: dict(k) for t, k in (keys or {}).items()}
        self._generate = generate

    def keys_for(self, title_id: str, classes: Iterable[KeyClass],
                 scheme: str = LEGACY_SCHEME) -> dict[KeyClass, ContentKey]:
        held = self._keys.setdefault(title_id, {})
        out: dict[KeyClass, ContentKey] = {}
        for c in classes:
            slot = key_slot(c, scheme)
            if slot not in held:
                if not self._generate:
                    raise MissingKey(title_id, c if scheme == LEGACY_SCHEME else f"{c} ({scheme})")
                held[slot] = ContentKey(os.urandom(16).hex(), os.urandom(16))
            out[c] = held[slot]
        return out
