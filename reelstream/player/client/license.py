"""Clear Key licenses as a CDM asks for them.

DASH: ``POST`` the W3C EME Clear Key license request (EME §9.1.3: ``{"kids": [base64url
KID], "type": "temporary"}``) to the MPD's ``dashif:Laurl``; the answer is a JSON Web Key
set (§9.1.4: ``{"keys": [{"kty": "oct", "kid": ..., "k": ...}]}``). The license server
returns only the keys this device may hold, so a missing key means the tracks under it
are not for this device, not an error. HLS: ``KEYFORMAT="identity"`` URIs return the 16
raw key bytes.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable

from reelstream.player.client.errors import PlayerError
from reelstream.player.client.fetch import Http


class LicenseInvalid(PlayerError):
    """The license server's answer is not a Clear Key JSON Web Key set."""


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def request_body(kids: Iterable[str], session_type: str = "temporary") -> bytes:
    """The EME Clear Key license request for KIDs given as 32 hex digits."""
    return json.dumps({"kids": [b64url(bytes.fromhex(k)) for k in kids], "type": session_type}).encode()


def parse_keys(body: bytes, url: str) -> dict[str, bytes]:
    """KID (32 hex) -> 16-byte key, from a JSON Web Key set."""
    try:
        doc = json.loads(body)
        keys = {unb64url(k["kid"]).hex(): unb64url(k["k"]) for k in doc["keys"] if k.get("kty") == "oct"}
    except (ValueError, KeyError, TypeError) as e:
        raise LicenseInvalid(f"license from {url.split('?')[0]} is not a Clear Key JWK set: {e}") from e
    bad = [kid for kid, key in keys.items() if len(key) != 16 or len(kid) != 32]
    if bad:
        raise LicenseInvalid(f"license from {url.split('?')[0]}: key {bad[0]} is not a 128-bit AES key")
    return keys


async def clearkey_license(http: Http, url: str, kids: Iterable[str]) -> tuple[dict[str, bytes], float]:
    """The keys the server granted for ``kids`` and the request's latency."""
    reply = await http.request("license", "POST", url, data=request_body(sorted(set(kids))),
                               headers={"Content-Type": "application/json"})
    return parse_keys(reply.body, url), reply.elapsed_s


async def identity_key(http: Http, uri: str) -> tuple[bytes, float]:
    """HLS identity key: the raw 16 bytes at ``uri``."""
    reply = await http.request("key", "GET", uri)
    if len(reply.body) != 16:
        raise LicenseInvalid(f"key from {uri.split('?')[0]} is {len(reply.body)} bytes, not 16")
    return reply.body, reply.elapsed_s
