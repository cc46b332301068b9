"""PSSH data per DRM system, HLS key signalling, the key-provider port."""

from __future__ import annotations

import base64
from xml.etree import ElementTree

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
KEY2 = ContentKey("fedcba9876543210fedcba9876543210", bytes.fromhex("ffeeddccbbaa99887766554433221100"))


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
    # Shaka Packager 3.8 wrote KID Z0UjAauJ780BI0VniavN7w== and CHECKSUM Ib0Unyi9LCw= for
    # this key: the GUID byte order and the checksum agree.
    assert base64.b64encode(playready_checksum(KEY)).decode() == "Ib0Unyi9LCw="
    assert base64.b64encode(playready_checksum(KEY2)).decode() == "gpLc94iVkgM="


# The PlayReady Header Specification: 4.0.0.0 (PlayReady 1.0+) can carry one AESCTR key,
# 4.2.0.0 (PlayReady 3.0+) several in KIDS, 4.3.0.0 (PlayReady 4.0+) is the first with
# AESCBC. The header must carry the oldest version that can say what it has to say.
PR_NS = 'xmlns="http://schemas.microsoft.com/DRM/2007/03/PlayReadyHeader"'


def test_playready_one_ctr_key_is_header_4_0_as_shaka_writes_it() -> None:
    # Byte for byte what Shaka Packager 3.8 wrote (--protection_systems PlayReady, raw key,
    # --protection_scheme cenc); tests/integration/test_packaging_shaka.py compares live.
    assert wrmheader([KEY], "cenc") == (
        f'<WRMHEADER {PR_NS} version="4.0.0.0"><DATA><PROTECTINFO><KEYLEN>16</KEYLEN>'
        "<ALGID>AESCTR</ALGID></PROTECTINFO><KID>Z0UjAauJ780BI0VniavN7w==</KID>"
        "<CHECKSUM>Ib0Unyi9LCw=</CHECKSUM></DATA></WRMHEADER>")


def test_playready_several_ctr_keys_are_header_4_2() -> None:
    # Shaka cannot write several keys in one PlayReady header (one pssh per stream); the
    # KID values and checksums are the ones it wrote for each key on its own.
    assert wrmheader([KEY2, KEY], "cenc", la_url="https://lic.example/pr") == (
        f'<WRMHEADER {PR_NS} version="4.2.0.0"><DATA><PROTECTINFO><KIDS>'
        '<KID ALGID="AESCTR" CHECKSUM="Ib0Unyi9LCw=" VALUE="Z0UjAauJ780BI0VniavN7w=="></KID>'
        '<KID ALGID="AESCTR" CHECKSUM="gpLc94iVkgM=" VALUE="mLrc/lR2EDL+3LqYdlQyEA=="></KID>'
        "</KIDS></PROTECTINFO><LA_URL>https://lic.example/pr</LA_URL></DATA></WRMHEADER>")


@pytest.mark.parametrize("keys", [[KEY], [KEY, KEY2]])
def test_playready_cbc_keys_are_header_4_3(keys: list[ContentKey]) -> None:
    # One key: byte for byte Shaka Packager 3.8's output for --protection_scheme cbcs.
    kids = "".join(f'<KID ALGID="AESCBC" VALUE="{v}"></KID>'  # no CHECKSUM for AESCBC (4.3)
                   for v in ["Z0UjAauJ780BI0VniavN7w==", "mLrc/lR2EDL+3LqYdlQyEA=="][:len(keys)])
    assert wrmheader(keys, "cbcs") == (
        f'<WRMHEADER {PR_NS} version="4.3.0.0"><DATA><PROTECTINFO><KIDS>{kids}</KIDS>'
        "</PROTECTINFO></DATA></WRMHEADER>")


def test_playready_header_needs_a_key_and_a_known_scheme() -> None:
    with pytest.raises(ValueError, match="at least one key"):
        wrmheader([], "cenc")
    with pytest.raises(ValueError, match="'clear'"):
        wrmheader([KEY], "clear")


@pytest.mark.parametrize(("scheme", "keys"), [("cenc", [KEY]), ("cenc", [KEY, KEY2]), ("cbcs", [KEY])])
def test_playready_la_url_is_escaped(scheme: str, keys: list[ContentKey]) -> None:
    url = "https://lic.example/pr?a=1&b=<2>"
    xml = wrmheader(keys, scheme, la_url=url)
    assert "<LA_URL>https://lic.example/pr?a=1&amp;b=&lt;2&gt;</LA_URL>" in xml
    root = ElementTree.fromstring(xml)
    ns = "{http://schemas.microsoft.com/DRM/2007/03/PlayReadyHeader}"
    assert root.findtext(f"{ns}DATA/{ns}LA_URL") == url


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
