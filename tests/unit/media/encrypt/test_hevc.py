"""HEVC: hvcC, SPS/PPS and slice segment header parsing (23008-2), the codecs string
(14496-15 E.3), VIDEO-RANGE, and byte-exact 'cenc'/'cbcs' goldens.

``tests/golden/media/clear_hevc.mp4`` is HEVC Main10 HDR10 (PQ) with two slices per
picture; the protected goldens are ReelStream's output for it with a fixed key and IV.
The subsample maps ReelStream makes for HEVC equal Shaka Packager 3.8's
(tests/integration/test_packaging_hevc.py), which is what these goldens freeze.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reelstream.media.encrypt import hevc
from reelstream.media.encrypt.cenc import CbcsEncryptor, CencEncryptor
from reelstream.media.encrypt.h264 import BitReader
from reelstream.media.encrypt.keys import ContentKey
from reelstream.media.encrypt.pssh import all_pssh
from reelstream.media.encrypt.subsamples import HevcSubsampler, SubsampleError
from reelstream.media.package.cmaf import (
    Protection,
    iter_segments,
    protect_init,
    read_clear,
    read_protected,
    sample_table,
)

GOLDEN = Path(__file__).resolve().parents[3] / "golden" / "media"
KEY = bytes.fromhex("00112233445566778899aabbccddeeff")
KID = bytes.fromhex("0123456789abcdef0123456789abcdef")
IV16 = bytes(range(16))


def protected_hevc(scheme: str) -> bytes:
    track = read_clear((GOLDEN / "clear_hevc.mp4").read_bytes(), "clear_hevc.mp4")
    enc = CencEncryptor(KEY, IV16) if scheme == "cenc" else CbcsEncryptor(KEY, IV16, (1, 9))
    p = Protection(enc, KID, all_pssh([ContentKey(KID.hex(), KEY)], scheme))
    return protect_init(track, p) + b"".join(seg for seg, _ in iter_segments(track, p))


@pytest.fixture(scope="module")
def track():  # type: ignore[no-untyped-def]
    return read_clear((GOLDEN / "clear_hevc.mp4").read_bytes(), "clear_hevc.mp4")


def test_hvcc_codecs_string_and_pq(track) -> None:  # type: ignore[no-untyped-def]
    config = track.hvcc()
    assert (config.profile_idc, config.tier, config.length_size) == (2, 0, 4)
    assert [hevc.nal_type(n) for n in config.nal_units][:3] == [hevc.VPS, hevc.SPS, hevc.PPS]
    assert track.codecs == f"hvc1.2.4.L{config.level_idc}.90"  # Main10; progressive + frame-only
    assert config.transfer_characteristics() == hevc.TRANSFER_PQ  # from the SPS VUI
    assert track.video_range == "PQ" and track.dimensions == (64, 64)
    sps = hevc.parse_sps(config.nal_units[1])
    assert (sps.bit_depth_luma, sps.chroma_array_type, sps.pic_size_in_ctbs) == (10, 1, 16)  # 16x16 CTUs


@pytest.mark.parametrize("config, expected", [
    (hevc.HvcC(0, 0, 1, 0x60000000, bytes([0xB0, 0, 0, 0, 0, 0]), 93, 4, ()), "hvc1.1.6.L93.B0"),  # Main
    (hevc.HvcC(0, 1, 2, 0x20000000, bytes(6), 153, 4, ()), "hvc1.2.4.H153"),  # Main10, High tier
    (hevc.HvcC(1, 0, 4, 0x08000000, bytes([0x80, 0, 0, 0x10, 0, 0]), 120, 4, ()), "hvc1.A4.10.L120.80.0.0.10"),
])
def test_codecs_string_rules(config: hevc.HvcC, expected: str) -> None:
    assert config.codecs() == expected


def test_predicted_short_term_rps_follows_7_61_and_7_62() -> None:
    ref = hevc.ShortTermRps(((-1, True),), ())
    # inter_ref_pic_set_prediction_flag 1, delta_rps_sign 1, abs_delta_rps_minus1 0, used 1, used 1
    r = BitReader(bytes([0b11111000]))
    got = hevc.parse_st_ref_pic_set(r, 1, 2, [ref])
    assert got == hevc.ShortTermRps(((-1, True), (-2, True)), ()) and r.pos == 5
    # not predicted: 2 negative pictures (-1 used, -3 unused), 1 positive (+2 used)
    bits = "0" + "011" + "010" + "1" + "1" + "010" + "0" + "010" + "1"
    r = BitReader(int(bits.ljust(24, "0"), 2).to_bytes(3, "big"))
    got = hevc.parse_st_ref_pic_set(r, 1, 2, [ref])
    assert got == hevc.ShortTermRps(((-1, True), (-3, False)), ((2, True),)) and got.used == 2


def test_subsample_maps_keep_headers_clear_and_cenc_aligned(track) -> None:  # type: ignore[no-untyped-def]
    for align in (True, False):
        sub = HevcSubsampler(track.config(b"hvcC"), align)
        for frag in track.fragments:
            table = sample_table(frag, "clear_hevc.mp4")
            for o, s in zip(table.offsets, table.sizes, strict=True):
                sample = memoryview(frag.mdat)[o:o + s]
                ranges = sub.map(sample)
                assert sum(c + p for c, p in ranges) == s
                assert ranges[0][0] >= 4 + 2 + 1  # length, NAL header, at least one header byte
                if align:
                    assert all(p % 16 == 0 for _, p in ranges)
                assert 1 <= sum(1 for _, p in ranges if p) <= 2  # a slice under 16 bytes may stay clear
                kinds, pos = [], 0
                while pos < s:
                    kinds.append(hevc.nal_type(sample[pos + 4:]))
                    pos += 4 + int.from_bytes(sample[pos:pos + 4], "big")
                assert sum(hevc.is_vcl(k) for k in kinds) == 2  # two slices per picture


def test_slice_with_an_unknown_pps_is_refused(track) -> None:  # type: ignore[no-untyped-def]
    sub = HevcSubsampler(track.config(b"hvcC"), True)
    # TRAIL_R NAL header, first_slice_segment_in_pic_flag 1, slice_pic_parameter_set_id 5
    sample = memoryview(bytes([0, 0, 0, 20, 0x02, 0x01, 0b10011000]) + bytes(17))
    with pytest.raises(SubsampleError, match="unknown PPS 5"):
        sub.map(sample)


@pytest.mark.parametrize("scheme", ["cenc", "cbcs"])
def test_protected_hevc_is_byte_exact(scheme: str) -> None:
    """Regenerate with tests/golden/media/regenerate.py and review the change."""
    assert protected_hevc(scheme) == (GOLDEN / f"{scheme}_hevc.mp4").read_bytes()
    tenc, samples = read_protected((GOLDEN / f"{scheme}_hevc.mp4").read_bytes(), scheme)
    assert (tenc.default_crypt_byte_block, tenc.default_skip_byte_block) == ((1, 9) if scheme == "cbcs" else (0, 0))
    assert len(samples) == 12 and all(s.subsamples for s in samples)
