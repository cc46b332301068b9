"""SPEKE v2.0: CPIX round trips, the encryption contract, the endpoint (through its real
aiohttp app) and the client against it on loopback."""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from reelstream.events.model import Event
from reelstream.keys.service import KeyService
from reelstream.keys.speke.client import KeyProviderError, SpekeKeyProvider
from reelstream.keys.speke.contract import PRESET_FILTERS, key_classes, usage_rules
from reelstream.keys.speke.cpix import (
    CPIX_NS,
    AudioFilter,
    CpixContentKey,
    CpixDocument,
    CpixError,
    DrmSystem,
    UsageRule,
    VideoFilter,
    build_cpix,
    parse_cpix,
)
from reelstream.keys.speke.server import SPEKE_PATH, answer, speke_app
from reelstream.keys.speke.signaling import CLEARKEY_SYSTEM_ID, COMMON_SYSTEM_ID, common_pssh
from tests.support.browser import serve

NS = {"cpix": CPIX_NS}
KID_SD = "98ee5596cd3ea20d163ae382420c6eff"
KID_AUDIO = "1a2b3c4d5e6f708192a3b4c5d6e7f809"

# The shape of AWS's SPEKE v2 example request (contentId, version 2.3, explicitIV, UUID KIDs).
AWS_STYLE_REQUEST = f"""<?xml version="1.0" encoding="UTF-8"?>
<cpix:CPIX contentId="abc123" version="2.3" xmlns:cpix="{CPIX_NS}" xmlns:pskc="urn:ietf:params:xml:ns:keyprov:pskc">
  <cpix:ContentKeyList>
    <cpix:ContentKey explicitIV="OFj2IjCsPJFfMAxmQxLGPw==" kid="98ee5596-cd3e-a20d-163a-e382420c6eff" commonEncryptionScheme="cbcs"/>
    <cpix:ContentKey kid="1a2b3c4d-5e6f-7081-92a3-b4c5d6e7f809" commonEncryptionScheme="cbcs"/>
  </cpix:ContentKeyList>
  <cpix:DRMSystemList>
    <cpix:DRMSystem kid="98ee5596-cd3e-a20d-163a-e382420c6eff" systemId="{CLEARKEY_SYSTEM_ID}">
      <cpix:PSSH/><cpix:ContentProtectionData/>
      <cpix:HLSSignalingData playlist="media"/><cpix:HLSSignalingData playlist="master"/>
    </cpix:DRMSystem>
  </cpix:DRMSystemList>
  <cpix:ContentKeyUsageRuleList>
    <cpix:ContentKeyUsageRule kid="98ee5596-cd3e-a20d-163a-e382420c6eff" intendedTrackType="SD">
      <cpix:VideoFilter maxPixels="589824"/>
    </cpix:ContentKeyUsageRule>
    <cpix:ContentKeyUsageRule kid="1a2b3c4d-5e6f-7081-92a3-b4c5d6e7f809" intendedTrackType="AUDIO">
      <cpix:AudioFilter/>
    </cpix:ContentKeyUsageRule>
  </cpix:ContentKeyUsageRuleList>
</cpix:CPIX>""".encode()


def test_parse_aws_style_request() -> None:
    doc = parse_cpix(AWS_STYLE_REQUEST)
    assert doc.content_id == "abc123" and doc.version == "2.3" and not doc.delivery_data
    assert [k.kid for k in doc.keys] == [KID_SD, KID_AUDIO]
    assert doc.keys[0].explicit_iv == base64.b64decode("OFj2IjCsPJFfMAxmQxLGPw==")
    assert doc.drm_systems == (DrmSystem(KID_SD, CLEARKEY_SYSTEM_ID, "", "", "", ""),)
    assert doc.usage_rules == (UsageRule(KID_SD, "SD", video_filters=(VideoFilter(max_pixels=589824),)),
                               UsageRule(KID_AUDIO, "AUDIO", audio_filters=(AudioFilter(),)))


def test_build_then_parse_round_trips() -> None:
    doc = parse_cpix(AWS_STYLE_REQUEST)
    filled = doc.with_keys(tuple(CpixContentKey(k.kid, k.common_encryption_scheme, k.explicit_iv, b"\x07" * 16)
                                 for k in doc.keys), doc.drm_systems)
    assert parse_cpix(build_cpix(filled)) == filled
    root = ET.fromstring(build_cpix(filled))
    assert root.find("cpix:ContentKeyList/cpix:ContentKey", NS).get("kid") == "98ee5596-cd3e-a20d-163a-e382420c6eff"


@pytest.mark.parametrize("mutation, message", [
    (lambda x: x.replace(b'contentId="abc123" ', b""), "Missing CPIX@contentId"),
    (lambda x: x.replace(b'version="2.3"', b'version="2.0"'), "Unsupported CPIX@version"),
    (lambda x: x.replace(b'version="2.3" ', b""), "Missing CPIX@version"),
    (lambda x: x.replace(b'commonEncryptionScheme="cbcs"', b'commonEncryptionScheme="aes"', 1),
     "Unsupported ContentKey@commonEncryptionScheme"),
    (lambda x: x[:-20], "Malformed CPIX document"),
])
def test_malformed_requests_are_named(mutation, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CpixError, match=message):
        parse_cpix(mutation(AWS_STYLE_REQUEST))


def test_contract_maps_preset_video_3_and_audio_1() -> None:
    kids = {"AUDIO": "a" * 32, "SD": "b" * 32, "HD": "c" * 32, "UHD": "d" * 32}
    assert key_classes(usage_rules(kids)) == {v: k for k, v in kids.items()}  # type: ignore[misc]
    assert PRESET_FILTERS["HD"] == VideoFilter(min_pixels=589825, max_pixels=2073600)


@pytest.mark.parametrize("rules, message", [
    ((UsageRule("a" * 32, "ALL", (VideoFilter(),), (AudioFilter(),)),), "shares one key between audio and video"),
    ((UsageRule("a" * 32, "VIDEO", (VideoFilter(),)),), "spans SD and UHD"),  # PRESET-VIDEO-1
    ((UsageRule("a" * 32, "HD", (VideoFilter(min_pixels=589825),)),), "spans HD and UHD"),  # PRESET-VIDEO-2
    ((UsageRule("a" * 32, "HD1", (VideoFilter(min_pixels=589825, max_pixels=921600),)),), "covers part of the HD"),
    ((UsageRule("a" * 32, "STEREO_AUDIO", audio_filters=(AudioFilter(max_channels=2),)),), "splits audio"),
    ((UsageRule("a" * 32, "SD", (VideoFilter(max_pixels=589824),)),
      UsageRule("b" * 32, "SD2", (VideoFilter(max_pixels=589824),))), "both fall in the SD class"),
])
def test_contracts_that_would_break_the_key_hierarchy_are_refused(rules, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CpixError, match=message):
        key_classes(rules)


def test_answer_fills_keys_and_signaling(service: KeyService) -> None:
    response = answer(service, parse_cpix(AWS_STYLE_REQUEST))
    keys = service.keys_for("abc123", ["SD", "AUDIO"], scheme="cbcs")  # the request is for cbcs
    assert [(k.kid, k.value) for k in response.keys] == [(KID_SD, keys["SD"].key), (KID_AUDIO, keys["AUDIO"].key)]
    system = response.drm_systems[0]
    assert base64.b64decode(system.pssh or "") == common_pssh([KID_SD])
    assert base64.b64decode(system.hls_media or "").decode().startswith("#EXT-X-KEY:METHOD=SAMPLE-AES,")
    assert base64.b64decode(system.hls_master or "").decode().startswith("#EXT-X-SESSION-KEY:METHOD=SAMPLE-AES,")
    assert system.pssh in base64.b64decode(system.content_protection_data or "").decode()


def test_common_pssh_layout() -> None:
    box = common_pssh([KID_SD])
    assert box[:4] == (len(box)).to_bytes(4, "big") and box[4:8] == b"pssh" and box[8] == 1
    assert box[12:28].hex() == COMMON_SYSTEM_ID.replace("-", "") and box[28:32] == b"\0\0\0\1"
    assert box[32:48].hex() == KID_SD and box[48:] == b"\0\0\0\0"


async def test_endpoint_answers_and_refuses(service: KeyService) -> None:
    async with TestClient(TestServer(speke_app(service))) as client:
        ok = await client.post(SPEKE_PATH, data=AWS_STYLE_REQUEST,
                               headers={"X-Speke-Version": "2.0", "Content-Type": "application/xml"})
        assert ok.status == 200
        assert ok.headers["X-Speke-Version"] == "2.0" and ok.headers["X-Speke-User-Agent"]
        assert ok.content_type == "application/xml"
        assert parse_cpix(await ok.read()).keys[0].value == service.keys_for("abc123", ["SD"], scheme="cbcs")["SD"].key

        no_version = await client.post(SPEKE_PATH, data=AWS_STYLE_REQUEST)
        assert (no_version.status, await no_version.text()) == (422, "Unsupported SPEKE version")

        mixed = AWS_STYLE_REQUEST.replace(b'commonEncryptionScheme="cbcs"/>', b'commonEncryptionScheme="cenc"/>', 1)
        bad = await client.post(SPEKE_PATH, data=mixed, headers={"X-Speke-Version": "2.0"})
        assert (bad.status, await bad.text()) == (422, "Non compliant ContentKey@commonEncryptionScheme combination")

        encrypted = AWS_STYLE_REQUEST.replace(b"<cpix:ContentKeyList>", b"<cpix:DeliveryDataList/><cpix:ContentKeyList>")
        refused = await client.post(SPEKE_PATH, data=encrypted, headers={"X-Speke-Version": "2.0"})
        assert refused.status == 422 and "DeliveryDataList" in await refused.text()

        widevine = AWS_STYLE_REQUEST.replace(CLEARKEY_SYSTEM_ID.encode(), b"edef8ba9-79d6-4ace-a3c8-27dcd51d21ed")
        unsupported = await client.post(SPEKE_PATH, data=widevine, headers={"X-Speke-Version": "2.0"})
        assert unsupported.status == 422 and "commercial SPEKE provider" in await unsupported.text()


def test_client_gets_reelstreams_keys_over_http(service: KeyService, published: list[Event]) -> None:
    sent: list[Event] = []
    with serve(speke_app(service)) as base:
        provider = SpekeKeyProvider(base + SPEKE_PATH, publish=sent.append, producer="packager")
        keys = provider.keys_for("t9", ["AUDIO", "SD", "HD", "UHD"])
        again = SpekeKeyProvider(base + SPEKE_PATH).keys_for("t9", ["SD"])
    assert keys == service.keys_for("t9", ["AUDIO", "SD", "HD", "UHD"])
    assert again["SD"] == keys["SD"]
    assert {k.kid for k in keys.values()} == {provider.kid_for("t9", c) for c in keys}  # type: ignore[arg-type]
    assert [k["key_class"] for k in sent[0]["keys"]] == ["AUDIO", "SD", "HD", "UHD"]
    assert sent[0]["key_provider"].startswith("speke:http://127.0.0.1")


def test_client_names_the_provider_error(service: KeyService) -> None:
    with serve(speke_app(service)) as base, pytest.raises(KeyProviderError, match="HTTP 404"):
        SpekeKeyProvider(base + "/nope").keys_for("t9", ["SD"])
    with pytest.raises(KeyProviderError, match="unreachable"):
        SpekeKeyProvider(base + SPEKE_PATH, timeout_s=2).keys_for("t9", ["SD"])


def test_request_document_is_a_speke_v2_contract(tmp_path: Path) -> None:
    doc = SpekeKeyProvider("http://x/speke", scheme="cbcs").request_document("t1", ["SD", "AUDIO"])
    root = ET.fromstring(build_cpix(doc))
    assert root.get("version") == "2.3" and root.get("contentId") == "t1"
    assert [e.get("intendedTrackType") for e in root.iterfind(".//cpix:ContentKeyUsageRule", NS)] == ["AUDIO", "SD"]
    assert {e.get("commonEncryptionScheme") for e in root.iterfind(".//cpix:ContentKey", NS)} == {"cbcs"}
    assert isinstance(doc, CpixDocument)
