"""ReelStream's SPEKE v2.0 endpoint: ``POST /speke/v2/copyProtection`` with a CPIX 2.3
document, answered from the key service.

Protocol (AWS "SPEKE API v2"): the request carries ``X-Speke-Version: 2.0`` and
``Content-Type: application/xml``; the response echoes the version, names the server in
``X-Speke-User-Agent``, and returns the request document with each ``ContentKey``'s
``pskc:PlainValue`` and each requested DRM signaling element filled in. Errors are HTTP
422 with the SPEKE error text. Keys go back in the clear, so serve this only over TLS
(or loopback) and behind the encryptor's authentication.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from reelstream.keys.service import KeyIdConflict, KeyService
from reelstream.keys.speke import signaling
from reelstream.keys.speke.contract import key_classes
from reelstream.keys.speke.cpix import (
    CpixContentKey,
    CpixDocument,
    CpixError,
    build_cpix,
    parse_cpix,
)

SPEKE_PATH = "/speke/v2/copyProtection"
SPEKE_VERSION = "2.0"
USER_AGENT = "ReelStream-KeyService/0.1"
KEY_SERVICE = web.AppKey("key_service", KeyService)


def answer(service: KeyService, request: CpixDocument) -> CpixDocument:
    """The response document for ``request`` (pure apart from the key service)."""
    if request.delivery_data:
        raise CpixError("Encrypted content keys (DeliveryDataList) are not supported by ReelStream's key "
                        "provider; request clear keys over TLS")
    schemes = {k.common_encryption_scheme for k in request.keys}
    for key in request.keys:
        if key.common_encryption_scheme is None:
            raise CpixError(f"Missing ContentKey@commonEncryptionScheme for KID {key.kid}")
    if len(schemes) != 1:
        raise CpixError("Non compliant ContentKey@commonEncryptionScheme combination")
    classes = key_classes(request.usage_rules)
    missing = [k.kid for k in request.keys if k.kid not in classes]
    if missing:
        raise CpixError(f"ContentKey {missing[0]} has no ContentKeyUsageRule; ReelStream needs the rule "
                        "to know which class (AUDIO, SD, HD, UHD) it protects")
    wanted = {classes[k.kid]: k.kid for k in request.keys}
    scheme = next(iter(schemes))
    try:
        keys = service.keys_for(request.content_id, list(wanted), kids=wanted, scheme=scheme or "cenc")
    except KeyIdConflict as e:
        raise CpixError(str(e)) from e
    answered = tuple(CpixContentKey(k.kid, k.common_encryption_scheme, k.explicit_iv, keys[classes[k.kid]].key)
                     for k in request.keys)
    systems = tuple(signaling.answer(s, scheme) for s in request.drm_systems)
    return request.with_keys(answered, systems)


async def copy_protection(request: web.Request) -> web.Response:
    version = request.headers.get("X-Speke-Version")
    if version != SPEKE_VERSION:
        return _error("Unsupported SPEKE version")
    try:
        document = parse_cpix(await request.read())
        response = await asyncio.to_thread(answer, request.app[KEY_SERVICE], document)
    except CpixError as e:
        return _error(str(e))
    return web.Response(body=build_cpix(response), content_type="application/xml",
                        headers={"X-Speke-Version": version, "X-Speke-User-Agent": USER_AGENT})


def _error(message: str) -> web.Response:
    return web.Response(status=422, text=message,
                        headers={"X-Speke-Version": SPEKE_VERSION, "X-Speke-User-Agent": USER_AGENT})


def setup_speke(app: web.Application, service: KeyService) -> None:
    app[KEY_SERVICE] = service
    app.router.add_post(SPEKE_PATH, copy_protection)


def speke_app(service: KeyService) -> web.Application:
    app = web.Application()
    setup_speke(app, service)
    return app
