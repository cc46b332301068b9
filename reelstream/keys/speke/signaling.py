"""DRM signaling the key provider returns per ``DRMSystem``: the PSSH box (ISO/IEC
23001-7 §8.1), the DASH ``ContentProtectionData`` and the HLS ``EXT-X-KEY`` /
``EXT-X-SESSION-KEY`` lines, for the systems ReelStream's provider can sign for.

ReelStream's own provider answers for W3C Clear Key (DASH-IF system id ``e2719d58-…``)
and the W3C Common PSSH (``1077efec-…``), both signalled with a Common PSSH box listing
the KID (W3C "Common SystemID and PSSH Box Format"). Widevine, PlayReady and FairPlay
signaling needs those vendors' license services: a commercial SPEKE provider answers them.
"""

from __future__ import annotations

import base64
import struct

from reelstream.keys.speke.cpix import CpixError, DrmSystem

COMMON_SYSTEM_ID = "1077efec-c0b2-4d02-ace3-3c1e52e2fb4b"
CLEARKEY_SYSTEM_ID = "e2719d58-a985-b3c9-781a-b030af78d30e"
SUPPORTED_SYSTEMS = (COMMON_SYSTEM_ID, CLEARKEY_SYSTEM_ID)

_HLS_METHOD = {"cenc": "SAMPLE-AES-CTR", "cens": "SAMPLE-AES-CTR", "cbcs": "SAMPLE-AES", "cbc1": "SAMPLE-AES"}


def common_pssh(kids: list[str]) -> bytes:
    """A version-1 ``pssh`` box with the Common system id and ``kids``, no data."""
    body = struct.pack(">I", len(kids)) + b"".join(bytes.fromhex(k) for k in kids) + struct.pack(">I", 0)
    payload = b"\x01\x00\x00\x00" + bytes.fromhex(COMMON_SYSTEM_ID.replace("-", "")) + body
    return struct.pack(">I", 8 + len(payload)) + b"pssh" + payload


def answer(system: DrmSystem, scheme: str | None) -> DrmSystem:
    """``system`` with every signaling child the request asked for filled in."""
    if system.system_id not in SUPPORTED_SYSTEMS:
        raise CpixError(f"DRMSystem@systemId {system.system_id} is not supported by ReelStream's key provider "
                        f"(supported: {', '.join(SUPPORTED_SYSTEMS)}); use a commercial SPEKE provider for it")
    pssh = base64.b64encode(common_pssh([system.kid])).decode()
    cpd = f'<cenc:pssh xmlns:cenc="urn:mpeg:cenc:2013">{pssh}</cenc:pssh>'
    key_line = (f'METHOD={_HLS_METHOD.get(scheme or "cenc", "SAMPLE-AES-CTR")},'
                f'URI="data:text/plain;base64,{pssh}",'
                f'KEYFORMAT="urn:uuid:{COMMON_SYSTEM_ID}",KEYFORMATVERSIONS="1"')

    def fill(asked: str | None, value: str) -> str | None:
        return None if asked is None else base64.b64encode(value.encode()).decode()

    return DrmSystem(
        system.kid, system.system_id,
        pssh=None if system.pssh is None else pssh,
        content_protection_data=fill(system.content_protection_data, cpd),
        hls_media=fill(system.hls_media, f"#EXT-X-KEY:{key_line}"),
        hls_master=fill(system.hls_master, f"#EXT-X-SESSION-KEY:{key_line}"),
    )
