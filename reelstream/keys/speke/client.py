"""``SpekeKeyProvider``: content keys from any SPEKE v2.0 key provider (ReelStream's own
endpoint or a commercial DRM vendor's), behind the same ``keys_for`` as the key service.

KIDs are the encryptor's to choose (SPEKE v2 constraints): they are derived from the
content id and class, so packaging a title again asks for the same KIDs and gets the
same keys. KIDs are public (they are in every manifest); only keys are secret.
"""

from __future__ import annotations

import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable

from reelstream.errors import ReelStreamError
from reelstream.events.model import Event, new_event
from reelstream.keys.model import KEY_CLASSES, ContentKey, KeyClass, key_slot
from reelstream.keys.speke.contract import usage_rules
from reelstream.keys.speke.cpix import (
    CpixContentKey,
    CpixDocument,
    CpixError,
    DrmSystem,
    build_cpix,
    parse_cpix,
)
from reelstream.keys.speke.server import SPEKE_VERSION
from reelstream.keys.speke.signaling import COMMON_SYSTEM_ID

_KID_NAMESPACE = uuid.UUID("2f7f8f0e-5a3c-4d0b-9b55-6a1d3c0e7b21")


class KeyProviderError(ReelStreamError):
    """The SPEKE key provider could not be reached, refused the request (its 4xx/5xx text
    is in the message), or answered without a key that was asked for."""


class SpekeKeyProvider:
    """Asks a SPEKE v2.0 endpoint for a title's keys (PRESET-VIDEO-3 + PRESET-AUDIO-1)."""

    def __init__(self, url: str, *, scheme: str = "cenc", systems: Iterable[str] = (COMMON_SYSTEM_ID,),
                 timeout_s: float = 10.0, publish: Callable[[Event], None] | None = None,
                 producer: str = "reelstream", name: str | None = None) -> None:
        self.url = url
        self.scheme = scheme
        self.systems = tuple(systems)
        self.timeout_s = timeout_s
        self._publish = publish
        self._producer = producer
        self.name = name or f"speke:{url}"

    def kid_for(self, title_id: str, key_class: KeyClass, scheme: str | None = None) -> str:
        """A KID per class and scheme (``key_slot``: one key per scheme); 'cenc' KIDs are
        what they were before keys were per scheme."""
        return uuid.uuid5(_KID_NAMESPACE, f"{title_id}/{key_slot(key_class, scheme or self.scheme)}"
                          .replace(":", "/")).hex

    def request_document(self, title_id: str, classes: Iterable[KeyClass],
                         scheme: str | None = None) -> CpixDocument:
        scheme = scheme or self.scheme
        kids = {c: self.kid_for(title_id, c, scheme) for c in KEY_CLASSES if c in set(classes)}
        keys = tuple(CpixContentKey(kid, scheme) for kid in kids.values())
        systems = tuple(DrmSystem(kid, s, pssh="", content_protection_data="", hls_media="", hls_master="")
                        for kid in kids.values() for s in self.systems)
        return CpixDocument(title_id, keys, systems, usage_rules(kids))

    def keys_for(self, title_id: str, classes: Iterable[KeyClass],
                 scheme: str | None = None) -> dict[KeyClass, ContentKey]:
        request = self.request_document(title_id, classes, scheme)
        response = self._post(build_cpix(request))
        by_kid = {k.kid: k for k in response.keys}
        result: dict[KeyClass, ContentKey] = {}
        for rule in request.usage_rules:
            answered = by_kid.get(rule.kid)
            if answered is None or answered.value is None:
                raise KeyProviderError(f"{self.url}: no key for KID {rule.kid} ({rule.intended_track_type}) "
                                       f"of content {title_id}")
            result[rule.intended_track_type] = ContentKey(rule.kid, answered.value)  # type: ignore[index]
        if self._publish is not None:
            self._publish(new_event("ContentKeysCreated", {
                "title_id": title_id, "key_provider": self.name,
                "keys": [{"key_id": k.kid, "key_class": c} for c, k in result.items()],
            }, producer=self._producer, correlation_id=title_id))
        return result

    def _post(self, body: bytes) -> CpixDocument:
        request = urllib.request.Request(self.url, data=body, method="POST", headers={
            "Content-Type": "application/xml", "X-Speke-Version": SPEKE_VERSION})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as reply:
                data = reply.read()
        except urllib.error.HTTPError as e:
            detail = e.read().decode(errors="replace")[:500]
            raise KeyProviderError(f"{self.url} answered HTTP {e.code}: {detail}") from e
        except (urllib.error.URLError, OSError) as e:
            raise KeyProviderError(f"{self.url} is unreachable: {e}") from e
        try:
            return parse_cpix(data)
        except CpixError as e:
            raise KeyProviderError(f"{self.url} answered an unusable CPIX document: {e}") from e

    def __repr__(self) -> str:
        return f"SpekeKeyProvider({self.url!r}, scheme={self.scheme!r})"
