"""The CPIX 2.3 document as SPEKE v2.0 uses it (DASH-IF CPIX 2.3; AWS "SPEKE API v2 -
Standard payload components" and "Encryption contract"), as typed values with a parser
and a builder.

Supported: ``ContentKeyList`` (``kid``, ``commonEncryptionScheme``, ``explicitIV``, clear
``pskc:PlainValue``), ``DRMSystemList`` (``PSSH``, ``ContentProtectionData``,
``HLSSignalingData`` for ``media``/``master``), ``ContentKeyUsageRuleList``
(``intendedTrackType``, ``VideoFilter`` min/maxPixels, hdr, min/maxFps; ``AudioFilter``
min/maxChannels). A ``DeliveryDataList`` (content keys encrypted to a certificate) is
parsed only to be refused: ReelStream answers clear keys over TLS, as SPEKE allows.
"""

from __future__ import annotations

import base64
import binascii
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field, replace

from reelstream.errors import ReelStreamError
from reelstream.keys.model import check_kid

CPIX_NS = "urn:dashif:org:cpix"
PSKC_NS = "urn:ietf:params:xml:ns:keyprov:pskc"
XMLDSIG_NS = "http://www.w3.org/2000/09/xmldsig#"
XMLENC_NS = "http://www.w3.org/2001/04/xmlenc#"
CPIX_VERSION = "2.3"
SCHEMES = ("cenc", "cbc1", "cens", "cbcs")

for _prefix, _uri in (("cpix", CPIX_NS), ("pskc", PSKC_NS), ("ds", XMLDSIG_NS), ("enc", XMLENC_NS)):
    ET.register_namespace(_prefix, _uri)


def _c(name: str) -> str:
    return f"{{{CPIX_NS}}}{name}"


def _p(name: str) -> str:
    return f"{{{PSKC_NS}}}{name}"


class CpixError(ReelStreamError):
    """A CPIX document is malformed or asks for something SPEKE v2 or ReelStream does not
    support; the message is the one SPEKE key providers return with HTTP 422."""


@dataclass(frozen=True)
class CpixContentKey:
    """``cpix:ContentKey``: a KID, its scheme, and (in responses) the key."""

    kid: str  # 32 hex digits; written in UUID form
    common_encryption_scheme: str | None = None
    explicit_iv: bytes | None = None
    value: bytes | None = None  # pskc:Secret/pskc:PlainValue

    def __repr__(self) -> str:
        return (f"CpixContentKey(kid={self.kid!r}, scheme={self.common_encryption_scheme!r}, "
                f"value={'<redacted>' if self.value else None})")


@dataclass(frozen=True)
class DrmSystem:
    """``cpix:DRMSystem``: which signaling the encryptor wants for one KID and system.

    Each field is None when the request did not ask for it, "" when asked and not yet
    answered, and the base64 payload in a response."""

    kid: str
    system_id: str  # lowercase UUID with dashes
    pssh: str | None = None
    content_protection_data: str | None = None
    hls_media: str | None = None  # HLSSignalingData playlist="media"
    hls_master: str | None = None  # HLSSignalingData playlist="master"


@dataclass(frozen=True)
class VideoFilter:
    min_pixels: int | None = None
    max_pixels: int | None = None
    hdr: bool | None = None
    min_fps: int | None = None
    max_fps: int | None = None


@dataclass(frozen=True)
class AudioFilter:
    min_channels: int | None = None
    max_channels: int | None = None


@dataclass(frozen=True)
class UsageRule:
    """``cpix:ContentKeyUsageRule``: the tracks one KID protects (the encryption contract)."""

    kid: str
    intended_track_type: str
    video_filters: tuple[VideoFilter, ...] = ()
    audio_filters: tuple[AudioFilter, ...] = ()


@dataclass(frozen=True)
class CpixDocument:
    content_id: str
    keys: tuple[CpixContentKey, ...]
    drm_systems: tuple[DrmSystem, ...] = ()
    usage_rules: tuple[UsageRule, ...] = ()
    version: str = CPIX_VERSION
    delivery_data: bool = False  # a DeliveryDataList asked for encrypted content keys
    extra: dict[str, str] = field(default_factory=dict)

    def with_keys(self, keys: tuple[CpixContentKey, ...], drm_systems: tuple[DrmSystem, ...]) -> CpixDocument:
        return replace(self, keys=keys, drm_systems=drm_systems)


# --------------------------------------------------------------------------- parsing


def parse_cpix(data: bytes) -> CpixDocument:
    """Parse a SPEKE v2.0 request or response; CpixError names what is wrong."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        raise CpixError(f"Malformed CPIX document: {e}") from e
    if root.tag != _c("CPIX"):
        raise CpixError(f"Root element is {root.tag}, expected {{{CPIX_NS}}}CPIX")
    content_id = root.get("contentId")
    if not content_id:
        raise CpixError("Missing CPIX@contentId")
    version = root.get("version")
    if not version:
        raise CpixError("Missing CPIX@version")
    if version != CPIX_VERSION:
        raise CpixError("Unsupported CPIX@version")
    keys = tuple(_parse_key(e) for e in root.iterfind(f"{_c('ContentKeyList')}/{_c('ContentKey')}"))
    if not keys:
        raise CpixError("Missing ContentKeyList/ContentKey")
    systems = tuple(_parse_system(e) for e in root.iterfind(f"{_c('DRMSystemList')}/{_c('DRMSystem')}"))
    rules = tuple(_parse_rule(e) for e in
                  root.iterfind(f"{_c('ContentKeyUsageRuleList')}/{_c('ContentKeyUsageRule')}"))
    delivery = root.find(_c("DeliveryDataList")) is not None
    return CpixDocument(content_id, keys, systems, rules, version, delivery)


def _kid(element: ET.Element, where: str) -> str:
    kid = element.get("kid")
    if not kid:
        raise CpixError(f"Missing {where}@kid")
    try:
        return check_kid(kid)
    except ValueError as e:
        raise CpixError(f"Invalid {where}@kid: {e}") from e


def _b64(text: str | None, where: str) -> bytes:
    try:
        return base64.b64decode((text or "").strip(), validate=True)
    except (binascii.Error, ValueError) as e:
        raise CpixError(f"Invalid base64 in {where}: {e}") from e


def _parse_key(e: ET.Element) -> CpixContentKey:
    kid = _kid(e, "ContentKey")
    scheme = e.get("commonEncryptionScheme")
    if scheme is not None and scheme not in SCHEMES:
        raise CpixError(f"Unsupported ContentKey@commonEncryptionScheme {scheme!r} for KID {kid}")
    iv = _b64(e.get("explicitIV"), "ContentKey@explicitIV") if e.get("explicitIV") else None
    plain = e.find(f"{_c('Data')}/{_p('Secret')}/{_p('PlainValue')}")
    if e.find(f"{_c('Data')}/{_p('Secret')}/{_p('EncryptedValue')}") is not None:
        raise CpixError(f"ContentKey {kid}: encrypted values are not supported (ReelStream uses PlainValue over TLS)")
    value = _b64(plain.text, f"ContentKey {kid} PlainValue") if plain is not None else None
    return CpixContentKey(kid, scheme, iv, value)


def _text_or_empty(e: ET.Element | None) -> str | None:
    return None if e is None else (e.text or "").strip()


def _parse_system(e: ET.Element) -> DrmSystem:
    system_id = (e.get("systemId") or "").lower()
    if len(system_id.replace("-", "")) != 32:
        raise CpixError(f"Missing or invalid DRMSystem@systemId {system_id!r}")
    hls = {h.get("playlist", "media"): (h.text or "").strip() for h in e.iterfind(_c("HLSSignalingData"))}
    return DrmSystem(_kid(e, "DRMSystem"), system_id, _text_or_empty(e.find(_c("PSSH"))),
                     _text_or_empty(e.find(_c("ContentProtectionData"))), hls.get("media"), hls.get("master"))


def _int(e: ET.Element, name: str) -> int | None:
    raw = e.get(name)
    if raw is None:
        return None
    try:
        return int(raw)
    except ValueError as err:
        raise CpixError(f"{e.tag.split('}')[-1]}@{name} is not an integer: {raw!r}") from err


def _parse_rule(e: ET.Element) -> UsageRule:
    kid = _kid(e, "ContentKeyUsageRule")
    track_type = e.get("intendedTrackType")
    if not track_type:
        raise CpixError(f"Missing ContentKeyUsageRule@intendedTrackType for KID {kid}")
    video = tuple(VideoFilter(_int(v, "minPixels"), _int(v, "maxPixels"),
                              None if v.get("hdr") is None else v.get("hdr") == "true",
                              _int(v, "minFps"), _int(v, "maxFps")) for v in e.iterfind(_c("VideoFilter")))
    audio = tuple(AudioFilter(_int(a, "minChannels"), _int(a, "maxChannels")) for a in e.iterfind(_c("AudioFilter")))
    return UsageRule(kid, track_type, video, audio)


# --------------------------------------------------------------------------- building


def kid_uuid(kid: str) -> str:
    return f"{kid[:8]}-{kid[8:12]}-{kid[12:16]}-{kid[16:20]}-{kid[20:]}"


def build_cpix(doc: CpixDocument) -> bytes:
    """The document as UTF-8 XML, children in CPIX schema order."""
    root = ET.Element(_c("CPIX"), {"contentId": doc.content_id, "version": doc.version})
    key_list = ET.SubElement(root, _c("ContentKeyList"))
    for key in doc.keys:
        attrs = {"kid": kid_uuid(key.kid)}
        if key.common_encryption_scheme:
            attrs["commonEncryptionScheme"] = key.common_encryption_scheme
        if key.explicit_iv is not None:
            attrs["explicitIV"] = base64.b64encode(key.explicit_iv).decode()
        element = ET.SubElement(key_list, _c("ContentKey"), attrs)
        if key.value is not None:
            secret = ET.SubElement(ET.SubElement(element, _c("Data")), _p("Secret"))
            ET.SubElement(secret, _p("PlainValue")).text = base64.b64encode(key.value).decode()
    if doc.drm_systems:
        system_list = ET.SubElement(root, _c("DRMSystemList"))
        for s in doc.drm_systems:
            element = ET.SubElement(system_list, _c("DRMSystem"), {"kid": kid_uuid(s.kid), "systemId": s.system_id})
            for tag, value in (("PSSH", s.pssh), ("ContentProtectionData", s.content_protection_data)):
                if value is not None:
                    ET.SubElement(element, _c(tag)).text = value
            for playlist, value in (("media", s.hls_media), ("master", s.hls_master)):
                if value is not None:
                    ET.SubElement(element, _c("HLSSignalingData"), {"playlist": playlist}).text = value
    if doc.usage_rules:
        rule_list = ET.SubElement(root, _c("ContentKeyUsageRuleList"))
        for rule in doc.usage_rules:
            element = ET.SubElement(rule_list, _c("ContentKeyUsageRule"),
                                    {"kid": kid_uuid(rule.kid), "intendedTrackType": rule.intended_track_type})
            for v in rule.video_filters:
                ET.SubElement(element, _c("VideoFilter"), _attrs(
                    minPixels=v.min_pixels, maxPixels=v.max_pixels, hdr=v.hdr, minFps=v.min_fps, maxFps=v.max_fps))
            for a in rule.audio_filters:
                ET.SubElement(element, _c("AudioFilter"), _attrs(minChannels=a.min_channels, maxChannels=a.max_channels))
    document: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return document


def _attrs(**values: int | bool | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in values.items():
        if isinstance(value, bool):
            out[name] = "true" if value else "false"
        elif value is not None:
            out[name] = str(value)
    return out
