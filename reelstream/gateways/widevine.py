"""Proxy mode for a commercial DRM system: the Widevine-style license proxy adapter.

The license server decides (entitlement, window, territory, streams, devices, and which
key classes this device may have); the vendor's license service builds the license for
the CDM's opaque challenge. So this adapter never parses the challenge: it forwards it,
with the decision, in the JSON request of Widevine's license proxy API (the "GetLicense"
message of the Widevine Cloud License Service and of Google's widevine license proxy
SDK samples), signed with the provider's key:

    {"request": base64(JSON), "signature": base64(AES-256-CBC(key, iv, SHA-1(JSON))), "signer": provider}

    JSON = {"payload": base64(challenge), "provider": ..., "content_id": base64(title id),
            "allowed_track_types": "SD_ONLY" | "SD_HD" | "SD_UHD1",
            "content_key_specs": [{"key_id": base64(kid), "track_type": "SD"|"HD"|"UHD1"|"AUDIO",
                                   "security_level": 1..5}],
            "policy_overrides": {"can_play": true, "can_persist": bool, "can_renew": false,
                                 "license_duration_seconds": n, "rental_duration_seconds": n,
                                 "playback_duration_seconds": n}}

and relays the license bytes of its answer ``{"status": "OK", "license": base64(...)}``.
Denials never reach the vendor: the license server only calls ``issue`` for a grant.
Configured by ``REEL_WIDEVINE_PROXY_URL``, ``REEL_WIDEVINE_PROVIDER`` and
``REEL_WIDEVINE_SIGNING_KEY`` (hex key ``:`` hex IV).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Sequence
from typing import Any

import aiohttp
from Crypto.Cipher import AES
from Crypto.Util.Padding import pad

from reelstream.errors import ConfigError, ReelStreamError
from reelstream.gateways.drm import DrmAdapter, InvalidLicenseRequest, LicenseRequest, LicenseTerms
from reelstream.keys.model import ContentKey

MAX_CHALLENGE = 64 * 1024
TRACK_TYPES = {"AUDIO": "AUDIO", "SD": "SD", "HD": "HD", "UHD": "UHD1"}
# Widevine's content key security levels: 1 SW_SECURE_CRYPTO ... 5 HW_SECURE_ALL. HD and UHD
# keys are released only to hardware-secure CDMs (the license server's policy decided it);
# the vendor enforces it again inside the license.
SECURITY_LEVELS = {"AUDIO": 1, "SD": 1, "HD": 5, "UHD": 5}


class VendorLicenseError(ReelStreamError):
    """The vendor's license service refused or failed (502): its status is in the message."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


class WidevineProxyAdapter(DrmAdapter):
    name = "widevine"
    content_type = "application/octet-stream"

    def __init__(self, url: str, provider: str, signing_key: bytes, signing_iv: bytes,
                 timeout_s: float = 5.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"REEL_WIDEVINE_PROXY_URL = {url!r}: must be an http(s) URL")
        if len(signing_key) != 32 or len(signing_iv) != 16:
            raise ConfigError("REEL_WIDEVINE_SIGNING_KEY: a 32-byte key and a 16-byte IV in hex, as KEY:IV")
        self.url = url
        self.provider = provider
        self._key = signing_key
        self._iv = signing_iv
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_settings(cls, url: str, provider: str, signing_key: str) -> WidevineProxyAdapter:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"REEL_WIDEVINE_PROXY_URL = {url!r}: must be an http(s) URL")
        key_hex, _, iv_hex = signing_key.partition(":")
        try:
            key, iv = bytes.fromhex(key_hex), bytes.fromhex(iv_hex)
        except ValueError:
            raise ConfigError("REEL_WIDEVINE_SIGNING_KEY: must be KEY:IV in hex (32 and 16 bytes)") from None
        if not provider:
            raise ConfigError("REEL_WIDEVINE_PROVIDER: the provider name the vendor issued is required")
        return cls(url, provider, key, iv)

    def parse(self, body: bytes) -> LicenseRequest:
        """The challenge is opaque: it asks for every key of the ticket's title (``kids=()``);
        the policy narrows that to the classes the device may have."""
        if not body:
            raise InvalidLicenseRequest("the body must be the CDM's license challenge (binary); it is empty")
        if len(body) > MAX_CHALLENGE:
            raise InvalidLicenseRequest(f"a license challenge is at most {MAX_CHALLENGE} bytes")
        return LicenseRequest((), "temporary")

    def license(self, request: LicenseRequest, keys: Sequence[ContentKey], terms: LicenseTerms) -> bytes:
        # Proxy mode has no local license format: only the vendor can answer the challenge.
        raise TypeError("the Widevine proxy adapter builds no license itself; call issue() with the "
                        "CDM's challenge, which it forwards to REEL_WIDEVINE_PROXY_URL")

    def proxy_request(self, challenge: bytes, keys: Sequence[ContentKey], terms: LicenseTerms) -> dict[str, Any]:
        """The signed GetLicense message for the allowed ``keys`` (pure)."""
        cls = terms.key_classes
        classes = {cls[k.kid] for k in keys}
        allowed = "SD_UHD1" if "UHD" in classes else "SD_HD" if "HD" in classes else "SD_ONLY"
        seconds = max(1, (terms.expires_ms - terms.issued_ms) // 1000)
        message = {
            "payload": _b64(challenge), "provider": self.provider, "content_id": _b64(terms.title_id.encode()),
            "allowed_track_types": allowed,
            # The keys are ReelStream's (its key service), so they travel to the vendor with the
            # request, over TLS in production, as in the proxy API's provider-managed-keys mode.
            "content_key_specs": [{"key_id": _b64(bytes.fromhex(k.kid)), "key": _b64(k.key),
                                   "track_type": TRACK_TYPES[cls[k.kid]],
                                   "security_level": SECURITY_LEVELS[cls[k.kid]]} for k in keys],
            "policy_overrides": {"can_play": True, "can_persist": terms.persistent, "can_renew": False,
                                 "license_duration_seconds": seconds, "rental_duration_seconds": seconds,
                                 "playback_duration_seconds": seconds},
        }
        body = json.dumps(message, separators=(",", ":"), sort_keys=True).encode()
        digest = hashlib.sha1(body).digest()  # the vendor protocol signs SHA-1 digests
        signature = AES.new(self._key, AES.MODE_CBC, self._iv).encrypt(pad(digest, 16))
        return {"request": _b64(body), "signature": _b64(signature), "signer": self.provider}

    async def issue(self, request: LicenseRequest, keys: Sequence[ContentKey], terms: LicenseTerms,
                    challenge: bytes) -> bytes:
        message = self.proxy_request(challenge, keys, terms)
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._session.post(self.url, json=message) as r:
                text = await r.text()
                if r.status != 200:
                    raise VendorLicenseError(f"the Widevine license service answered HTTP {r.status}: {text[:200]}")
        except (aiohttp.ClientError, TimeoutError) as e:
            raise VendorLicenseError(f"the Widevine license service at {self.url} did not answer: {e}") from e
        try:
            answer = json.loads(text)
            if answer.get("status") != "OK":
                raise VendorLicenseError(f"the Widevine license service refused: status {answer.get('status')!r}")
            return base64.b64decode(answer["license"], validate=True)
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise VendorLicenseError(f"the Widevine license service's answer is not a license: {e}") from e

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
