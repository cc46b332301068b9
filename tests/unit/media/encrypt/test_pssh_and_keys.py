"""PSSH data per DRM system, HLS key signalling, the key-provider port."""

from __future__ import annotations

import base64

import pytest

from reelstream.media.encrypt.keys import (
    ContentKey,
    InMemoryKeyProvider,
    KeyProvider,
    MissingKey,
    key_class_for,
)
from reelstream.media.encrypt.pssh import (
    COMMON,
    PLAYREADY,
    WIDEVINE,
    common_pssh,
    fairplay_key_tag,
    playready_checksum,
    playready_header_object,
    playready_pssh,
    pssh_hls_key,
    widevine_pssh,
    wrmheader,
)
from reelstream.media.package.boxes import Pssh

KEY = ContentKey("0123456789abcdef0123456789abcdef", bytes.fromhex("00112233445566778899aabbccddeeff"))
KID = bytes.fromhex(KEY.kid)


def test_widevine_pssh_equals_shaka_packager_bytes() -> None:
    # Shaka Packager 3.8, --protection_systems Widevine, raw key, cenc: the same 56 bytes.
    shaka = ("00000038" "70737368" "00000000" "edef8ba979d64acea3c827dcd51d21ed" "00000018"
             "1210" + KID.hex() + "48e3dc959b06")
    assert widevine_pssh([KID], "cenc").build().hex() == shaka


def test_widevine_protobuf_fields() -> None:
    # WidevinePsshData (Shaka Packager's widevine_pssh_data.proto): key_id = 2, provider = 3,
    # content_id = 4, protection_scheme = 9; 5 is the deprecated track_type string.
    data = widevine_pssh([KID, bytes(16)], "cbcs", provider="reelstream", content_id=b"t1").data
    assert data == (b"\x12\x10" + bytes(16) + b"\x12\x10" + KID + b"\x1a\x0areelstream"
                    + b"\x22\x02t1" + b"\x48" + bytes([0xf3, 0xc6, 0x89, 0x9b, 0x06]))  # 9: "cbcs"


def test_common_pssh_is_v1_with_key_ids() -> None:
    box = common_pssh([KID])
    assert box.system_id == COMMON.bytes and box.version == 1 and box.kids == (KID,)
    assert box.build().hex() == ("00000034" "70737368" "01000000" "1077efecc0b24d02ace33c1e52e2fb4b"
                                 "00000001" + KID.hex() + "00000000")


def test_playready_kid_and_checksum_match_shaka() -> None:
    # Shaka Packager 3.8 (its WRMHEADER 4.0) wrote KID Z0UjAauJ780BI0VniavN7w== and
    # CHECKSUM Ib0Unyi9LCw= for this key: the GUID byte order and the checksum agree.
    assert base64.b64encode(playready_checksum(KEY)).decode() == "Ib0Unyi9LCw="
    xml = wrmheader([KEY], "cenc")
    assert 'version="4.3.0.0"' in xml
    assert '<KID ALGID="AESCTR" CHECKSUM="Ib0Unyi9LCw=" VALUE="Z0UjAauJ780BI0VniavN7w=="></KID>' in xml
    assert '<KID ALGID="AESCBC" VALUE="Z0UjAauJ780BI0VniavN7w=="></KID>' in wrmheader([KEY], "cbcs")


def test_playready_header_object_layout() -> None:
    pro = playready_header_object([KEY], "cenc", la_url="https://lic.example/pr")
    assert int.from_bytes(pro[0:4], "little") == len(pro)
    assert int.from_bytes(pro[4:6], "little") == 1  # one record
    assert int.from_bytes(pro[6:8], "little") == 1  # type 1: rights management header
    assert int.from_bytes(pro[8:10], "little") == len(pro) - 10
    text = pro[10:].decode("utf-16-le")
    assert text.startswith("<WRMHEADER") and "<LA_URL>https://lic.example/pr</LA_URL>" in text
    box = playready_pssh([KEY], "cenc")
    assert box.system_id == PLAYREADY.bytes and Pssh.parse(box.payload()) == box


def test_hls_signalling() -> None:
    assert fairplay_key_tag(KID) == ('#EXT-X-KEY:METHOD=SAMPLE-AES,URI="skd://' + KEY.kid
                                     + '",KEYFORMAT="com.apple.streamingkeydelivery",KEYFORMATVERSIONS="1"')
    assert fairplay_key_tag(KID, host="keys.example", session=True).startswith(
        '#EXT-X-SESSION-KEY:METHOD=SAMPLE-AES,URI="skd://keys.example/' + KEY.kid)
    wv = pssh_hls_key(widevine_pssh([KID], "cbcs"), "cbcs")
    assert wv.method == "SAMPLE-AES" and wv.keyformat == f"urn:uuid:{WIDEVINE}"
    assert wv.uri.startswith("data:text/plain;base64,")


def test_key_classes_and_in_memory_provider() -> None:
    assert key_class_for("audio", None, None) == "AUDIO"
    assert key_class_for("video", 1024, 576) == "SD"
    assert key_class_for("video", 1920, 1080) == "HD"
    assert key_class_for("video", 3840, 2160) == "UHD"
    provider = InMemoryKeyProvider({"t1": {"SD": KEY}})
    assert provider.keys_for("t1", ["SD"]) == {"SD": KEY}
    with pytest.raises(MissingKey) as e:
        provider.keys_for("t1", ["SD", "HD"])
    assert e.value.key_class == "HD"
    made = InMemoryKeyProvider(generate=True).keys_for("t2", ["AUDIO", "SD"])
    assert made["AUDIO"].kid != made["SD"].kid
    assert "key=<redacted>" in repr(KEY)


def test_key_service_classes_satisfy_the_port() -> None:
    from reelstream.keys.service import KeyService

    assert issubclass(KeyService, KeyProvider)
    assert isinstance(InMemoryKeyProvider(), KeyProvider)
