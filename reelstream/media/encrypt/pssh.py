"""Protection System Specific Header data for each DRM system ReelStream signals.

A ``pssh`` box (ISO/IEC 23001-7 8.1) carries, per DRM system id, the data that system's
CDM needs to build a license request. Builders here return ``Pssh`` boxes; the same
bytes go into init segments and (base64) into DASH ``cenc:pssh`` / the Package.

FairPlay has no pssh in CMAF for HLS: it is signalled in the playlist (``EXT-X-KEY``
with ``METHOD=SAMPLE-AES``, ``skd://`` URI, KEYFORMAT com.apple.streamingkeydelivery);
``fairplay_key_tag`` gives the manifest generator that line.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape

from Crypto.Cipher import AES

from reelstream.media.encrypt.keys import ContentKey, kid_bytes
from reelstream.media.package.boxes import Pssh

WIDEVINE = uuid.UUID("edef8ba9-79d6-4ace-a3c8-27dcd51d21ed")
PLAYREADY = uuid.UUID("9a04f079-9840-4286-ab92-e65be0885f95")
COMMON = uuid.UUID("1077efec-c0b2-4d02-ace3-3c1e52e2fb4b")  # W3C Common PSSH / Clear Key
FAIRPLAY = uuid.UUID("94ce86fb-07ff-4f43-adb8-93d2fa968ca2")  # for DASH-IF ContentProtection ids

PLAYREADY_NS = "http://schemas.microsoft.com/DRM/2007/03/PlayReadyHeader"


# --------------------------------------------------------------------------- W3C common


def common_pssh(kids: Sequence[bytes]) -> Pssh:
    """W3C "Common PSSH box format" (EME initData, cenc format): version 1, key ids, no data."""
    return Pssh(COMMON.bytes, b"", tuple(sorted(kids)), version=1)


# --------------------------------------------------------------------------- Widevine


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, wire_type: int, value: bytes | int) -> bytes:
    key = _varint(number << 3 | wire_type)
    if wire_type == 0:
        return key + _varint(int(value))
    assert isinstance(value, bytes)
    return key + _varint(len(value)) + value


def widevine_pssh_data(kids: Sequence[bytes], scheme: str, provider: str = "",
                       content_id: bytes = b"") -> bytes:
    """The WidevinePsshData protobuf, hand-encoded (fields in number order):
    2 key_ids (repeated bytes), 3 provider (string), 4 content_id (bytes),
    9 protection_scheme (uint32: the scheme's four characters as a big-endian integer).
    Field numbers as in Shaka Packager's widevine_pssh_data.proto (5 is the deprecated
    track_type string: a content id written there is read as a track type)."""
    out = b"".join(_field(2, 2, k) for k in sorted(kids))
    if provider:
        out += _field(3, 2, provider.encode())
    if content_id:
        out += _field(4, 2, content_id)
    out += _field(9, 0, int.from_bytes(scheme.encode("ascii"), "big"))
    return out


def widevine_pssh(kids: Sequence[bytes], scheme: str, provider: str = "",
                  content_id: bytes = b"") -> Pssh:
    return Pssh(WIDEVINE.bytes, widevine_pssh_data(kids, scheme, provider, content_id), version=0)


# --------------------------------------------------------------------------- PlayReady


def _guid_le(kid: bytes) -> bytes:
    """PlayReady writes key ids as little-endian GUIDs (first three fields byte-swapped)."""
    return uuid.UUID(bytes=kid).bytes_le


def playready_checksum(key: ContentKey) -> bytes:
    """PlayReady Header KID CHECKSUM for AESCTR: the first 8 bytes of the AES-128-ECB
    encryption of the little-endian-GUID key id with the content key."""
    return AES.new(key.key, AES.MODE_ECB).encrypt(_guid_le(kid_bytes(key)))[:8]


# PlayReady's name for each Common Encryption scheme's cipher mode (as Shaka Packager maps them).
_ALGID = {"cenc": "AESCTR", "cens": "AESCTR", "cbcs": "AESCBC", "cbc1": "AESCBC"}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def wrmheader(keys: Sequence[ContentKey], scheme: str, la_url: str = "") -> str:
    """The PlayReady Header (WRMHEADER), in the oldest version that can carry the keys
    (PlayReady Header Specification 3): a client rejects a version newer than it knows.

    - one AESCTR key: v4.0.0.0, understood by every PlayReady client (1.0+). Byte for
      byte what Shaka Packager 3.8 writes for 'cenc' (element order and all).
    - several AESCTR keys: v4.2.0.0 (PlayReady 3.0+), one ``KID`` element per key in ``KIDS``.
    - AESCBC ('cbcs'): v4.3.0.0 (PlayReady 4.0+), the first version with AESCBC; no
      CHECKSUM (none is defined for AESCBC). One key: byte for byte Shaka's 'cbcs' header.

    Attributes are in alphabetical order and every element has a closing tag (3.2).
    ``la_url`` is escaped as canonical XML text (3.2.1: & < > and CR).
    """
    if not keys:
        raise ValueError("a PlayReady header needs at least one key")
    if scheme not in _ALGID:
        raise ValueError(f"no PlayReady ALGID for scheme {scheme!r} (expected one of {sorted(_ALGID)})")
    algid = _ALGID[scheme]
    la = f"<LA_URL>{escape(la_url, {chr(13): '&#xD;'})}</LA_URL>" if la_url else ""
    ordered = sorted(keys, key=lambda k: k.kid)
    if algid == "AESCTR" and len(ordered) == 1:
        key = ordered[0]
        return (f'<WRMHEADER xmlns="{PLAYREADY_NS}" version="4.0.0.0"><DATA>'
                "<PROTECTINFO><KEYLEN>16</KEYLEN><ALGID>AESCTR</ALGID></PROTECTINFO>"
                f"<KID>{_b64(_guid_le(kid_bytes(key)))}</KID>"
                f"<CHECKSUM>{_b64(playready_checksum(key))}</CHECKSUM>{la}</DATA></WRMHEADER>")
    version = "4.2.0.0" if algid == "AESCTR" else "4.3.0.0"
    kid_elems = []
    for k in ordered:
        checksum = f' CHECKSUM="{_b64(playready_checksum(k))}"' if algid == "AESCTR" else ""
        kid_elems.append(f'<KID ALGID="{algid}"{checksum} VALUE="{_b64(_guid_le(kid_bytes(k)))}"></KID>')
    return (f'<WRMHEADER xmlns="{PLAYREADY_NS}" version="{version}"><DATA><PROTECTINFO><KIDS>'
            f'{"".join(kid_elems)}</KIDS></PROTECTINFO>{la}</DATA></WRMHEADER>')


def playready_header_object(keys: Sequence[ContentKey], scheme: str, la_url: str = "") -> bytes:
    """PlayReady Header Object: total length (u32 LE), record count (u16 LE), then one
    record of type 1 (Rights Management Header): type u16 LE, length u16 LE, UTF-16LE XML."""
    xml = wrmheader(keys, scheme, la_url).encode("utf-16-le")
    record = (1).to_bytes(2, "little") + len(xml).to_bytes(2, "little") + xml
    return (len(record) + 6).to_bytes(4, "little") + (1).to_bytes(2, "little") + record


def playready_pssh(keys: Sequence[ContentKey], scheme: str, la_url: str = "") -> Pssh:
    return Pssh(PLAYREADY.bytes, playready_header_object(keys, scheme, la_url), version=0)


# --------------------------------------------------------------------------- sets, HLS


def all_pssh(keys: Sequence[ContentKey], scheme: str) -> list[Pssh]:
    """Common, Widevine and PlayReady boxes for one set of keys."""
    kids = [kid_bytes(k) for k in keys]
    return [common_pssh(kids), widevine_pssh(kids, scheme), playready_pssh(keys, scheme)]


def pssh_base64(box: Pssh) -> str:
    return base64.b64encode(box.build()).decode()


@dataclass(frozen=True)
class HlsKey:
    """One ``EXT-X-KEY`` / ``EXT-X-SESSION-KEY`` attribute list (RFC 8216bis 4.4.4.4)."""

    method: str  # SAMPLE-AES (cbcs) or SAMPLE-AES-CTR (cenc)
    uri: str
    keyformat: str
    keyformatversions: str = "1"

    def attributes(self) -> str:
        return (f'METHOD={self.method},URI="{self.uri}",KEYFORMAT="{self.keyformat}",'
                f'KEYFORMATVERSIONS="{self.keyformatversions}"')

    def tag(self, session: bool = False) -> str:
        return f"#EXT-X-{'SESSION-' if session else ''}KEY:{self.attributes()}"


def fairplay_key(kid: bytes, host: str = "") -> HlsKey:
    """FairPlay-style signalling: SAMPLE-AES (cbcs only) with an ``skd://`` key URI naming
    the key id (``skd://{host}/{kid hex}`` or ``skd://{kid hex}``)."""
    path = f"{host.rstrip('/')}/{kid.hex()}" if host else kid.hex()
    return HlsKey("SAMPLE-AES", f"skd://{path}", "com.apple.streamingkeydelivery")


def fairplay_key_tag(kid: bytes, host: str = "", session: bool = False) -> str:
    return fairplay_key(kid, host).tag(session)


def pssh_hls_key(box: Pssh, scheme: str) -> HlsKey:
    """A Widevine/PlayReady/Common key line for HLS: the pssh box as a data: URI."""
    method = "SAMPLE-AES" if scheme == "cbcs" else "SAMPLE-AES-CTR"
    keyformat = f"urn:uuid:{uuid.UUID(bytes=box.system_id)}"
    return HlsKey(method, f"data:text/plain;base64,{pssh_base64(box)}", keyformat)
