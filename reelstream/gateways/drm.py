"""The DRM-system adapter interface of the license server, and its Clear Key adapter.

The license server owns the decision (entitlement, territory, window, security level,
streams, devices); an adapter only speaks one DRM system's wire format:

- ``parse`` turns the CDM's license request (the EME "license request" message) into
  the key ids and session type it asks for;
- ``license`` builds the response for keys the policy allowed.

``ClearKeyAdapter`` implements W3C EME §9.1 (Clear Key): the request is
``{"kids": [base64url KID...], "type": "temporary"|"persistent-license"}`` and the
response a JSON Web Key set ``{"keys": [{"kty": "oct", "kid": ..., "k": ...}], "type": ...}``,
base64url without padding (RFC 7515 §2).

Widevine, PlayReady and FairPlay run in *proxy mode*: their adapter forwards the opaque
challenge, with the allowed keys and the policy (expiry, persistence, security level), to
the vendor's license service and relays its answer, through ``issue``. A request whose
``kids`` is empty (an opaque challenge) asks for every key of the ticket's title.
``widevine.WidevineProxyAdapter`` is one (Widevine's license proxy API).
"""

from __future__ import annotations

import binascii
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from reelstream.errors import ReelStreamError
from reelstream.identity.tokens import b64url, b64url_decode
from reelstream.jsontext import NESTED_TOO_DEEPLY
from reelstream.keys.model import ContentKey

SessionType = Literal["temporary", "persistent-license"]
SESSION_TYPES: tuple[SessionType, ...] = ("temporary", "persistent-license")
MAX_KIDS = 16


class InvalidLicenseRequest(ReelStreamError):
    """The CDM's license request is malformed (not JSON, no key ids, bad base64url...): 400."""


@dataclass(frozen=True)
class LicenseRequest:
    kids: tuple[str, ...]  # 32 lowercase hex digits each, in request order, no duplicates
    session_type: SessionType


@dataclass(frozen=True)
class LicenseTerms:
    """What the policy allowed, for adapters whose license format carries it."""

    expires_ms: int
    persistent: bool
    title_id: str = ""
    key_classes: Mapping[str, str] = field(default_factory=dict)  # kid -> AUDIO/SD/HD/UHD, allowed keys
    issued_ms: int = 0


class DrmAdapter(ABC):
    """One DRM system's license protocol.

    ``security_ceiling`` is the most a license of this system can be trusted with, whatever
    level the device registered: a vendor's license names the security each key needs and
    the CDM enforces it ("hardware"), while Clear Key hands its keys to JavaScript, so a
    device that registers as "hardware" and asks for Clear Key keys gets a software CDM's."""

    name: str
    content_type: str
    security_ceiling: str = "hardware"

    @abstractmethod
    def parse(self, body: bytes) -> LicenseRequest:
        """Raises InvalidLicenseRequest with a message naming what is wrong."""

    @abstractmethod
    def license(self, request: LicenseRequest, keys: Sequence[ContentKey], terms: LicenseTerms) -> bytes:
        """The license message for ``keys`` (those of ``request``: the allowed subset of what
        the CDM asked for, in its order)."""

    async def issue(self, request: LicenseRequest, keys: Sequence[ContentKey], terms: LicenseTerms,
                    challenge: bytes) -> bytes:
        """The license for an allowed request. ``challenge`` is the CDM's original message:
        a proxy-mode adapter forwards it to the vendor's license service; local ones ignore it."""
        return self.license(request, keys, terms)

    async def close(self) -> None:
        """Release connections (proxy adapters' HTTP sessions)."""


class ClearKeyAdapter(DrmAdapter):
    name = "clearkey"
    content_type = "application/json"

    def __init__(self, security_ceiling: str = "software") -> None:
        self.security_ceiling = security_ceiling  # "hardware" only to exercise HD keys without a vendor (tests)

    def parse(self, body: bytes) -> LicenseRequest:
        try:
            doc = json.loads(body)
        except RecursionError:
            raise InvalidLicenseRequest(NESTED_TOO_DEEPLY) from None
        except (ValueError, UnicodeDecodeError):
            raise InvalidLicenseRequest("the license request is not JSON; send "
                                        '{"kids": [base64url key ids], "type": "temporary"}') from None
        if not isinstance(doc, dict) or not isinstance(doc.get("kids"), list) or not doc["kids"]:
            raise InvalidLicenseRequest("the license request must be an object with a non-empty 'kids' list")
        if len(doc["kids"]) > MAX_KIDS:
            raise InvalidLicenseRequest(f"at most {MAX_KIDS} key ids per request")
        session_type = doc.get("type", "temporary")
        if session_type not in SESSION_TYPES:
            raise InvalidLicenseRequest(f"'type' must be one of {', '.join(SESSION_TYPES)}")
        kids = []
        for kid in doc["kids"]:
            try:
                raw = b64url_decode(kid)
            except (ValueError, binascii.Error):
                raise InvalidLicenseRequest(f"key id {str(kid)[:40]!r} is not base64url without padding") from None
            if len(raw) != 16:
                raise InvalidLicenseRequest(f"key id {kid!r} is {len(raw)} bytes; key ids are 16 bytes")
            if raw.hex() not in kids:
                kids.append(raw.hex())
        return LicenseRequest(tuple(kids), session_type)

    def license(self, request: LicenseRequest, keys: Sequence[ContentKey], terms: LicenseTerms) -> bytes:
        jwks = [{"kty": "oct", "kid": b64url(bytes.fromhex(k.kid)), "k": b64url(k.key)} for k in keys]
        return json.dumps({"keys": jwks, "type": request.session_type}, separators=(",", ":")).encode()
