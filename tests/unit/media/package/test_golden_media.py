"""Byte-exact goldens for the boxes ReelStream writes (STYLE principle 8).

``tests/golden/media/clear_{avc,aac}.mp4`` are tiny clear CMAF files from ffmpeg 8.1;
``{cenc,cbcs}_{avc,aac}.mp4`` are ReelStream's protected output for them with a fixed
key, key id and IV. The hex goldens below were checked field by field against
ISO/IEC 23001-7 (and the Widevine / Common / PlayReady pssh against Shaka Packager 3.8's bytes).
Regenerate with ``python tests/golden/media/regenerate.py`` and review the diff.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reelstream.media.encrypt.cenc import CbcsEncryptor, CencEncryptor, Map, SampleEncryptor
from reelstream.media.encrypt.keys import ContentKey
from reelstream.media.encrypt.pssh import all_pssh
from reelstream.media.package.boxes import (
    ContainerBox,
    Pssh,
    RawBox,
    Saio,
    Saiz,
    Schm,
    Senc,
    SencEntry,
    Tenc,
    Trun,
    build,
    parse_boxes,
)
from reelstream.media.package.cmaf import (
    Protection,
    SampleTable,
    SubsampleMapper,
    iter_segments,
    protect_fragment,
    protect_init,
    read_clear,
    read_protected,
    sample_table,
)
from reelstream.media.package.errors import CorruptMedia, PackagingError, TooManySubsamples

GOLDEN = Path(__file__).resolve().parents[3] / "golden" / "media"
KEY = bytes.fromhex("00112233445566778899aabbccddeeff")
KID = bytes.fromhex("0123456789abcdef0123456789abcdef")
IV16 = bytes(range(16))


def protected_file(codec: str, scheme: str) -> bytes:
    """ReelStream's protected version of a clear golden file (deterministic)."""
    track = read_clear((GOLDEN / f"clear_{codec}.mp4").read_bytes(), f"clear_{codec}.mp4")
    enc: SampleEncryptor
    if scheme == "cenc":
        enc = CencEncryptor(KEY, IV16)
    else:
        enc = CbcsEncryptor(KEY, IV16, (1, 9) if codec == "avc" else (0, 0))
    p = Protection(enc, KID, all_pssh([ContentKey(KID.hex(), KEY)], scheme))
    return protect_init(track, p) + b"".join(seg for seg, _ in iter_segments(track, p))


@pytest.mark.parametrize("name", ["clear_avc", "clear_aac", "cenc_avc", "cenc_aac", "cbcs_avc", "cbcs_aac"])
def test_parse_then_build_is_byte_exact(name: str) -> None:
    data = (GOLDEN / f"{name}.mp4").read_bytes()
    assert build(parse_boxes(data, name)) == data


@pytest.mark.parametrize("codec", ["avc", "aac"])
@pytest.mark.parametrize("scheme", ["cenc", "cbcs"])
def test_protected_output_matches_golden(codec: str, scheme: str) -> None:
    assert protected_file(codec, scheme) == (GOLDEN / f"{scheme}_{codec}.mp4").read_bytes()


def test_protected_golden_structure() -> None:
    """Init: encv + sinf(frma avc1, schm cenc 1.0, schi/tenc) and three pssh; fragment:
    senc + saiz + saio after the trun, saio pointing at the first senc entry, trun data
    offset pointing at the first sample byte of the mdat."""
    data = (GOLDEN / "cenc_avc.mp4").read_bytes()
    boxes = parse_boxes(data)
    moov = next(b for b in boxes if b.type == b"moov")
    assert isinstance(moov, ContainerBox)
    entry = moov.find("trak/mdia/minf/stbl/stsd/encv")
    assert isinstance(entry, ContainerBox)
    assert entry.find("sinf/frma").data_format == b"avc1"  # type: ignore[union-attr]
    assert entry.find("sinf/schm") == Schm(b"cenc", 0x10000)
    assert entry.find("sinf/schi/tenc") == Tenc(KID, 16)
    assert [p.system_id.hex()[:8] for p in moov.all("pssh") if isinstance(p, Pssh)] == [
        "1077efec", "edef8ba9", "9a04f079"]
    pos = 0
    for box in boxes:
        if box.type == b"moof":
            assert isinstance(box, ContainerBox)
            traf = box.find("traf")
            assert isinstance(traf, ContainerBox)
            assert [c.type for c in traf.children][-3:] == [b"saiz", b"saio", b"senc"]
            saio, senc_raw, trun = traf.find("saio"), traf.find("senc"), traf.find("trun")
            assert isinstance(saio, Saio) and isinstance(senc_raw, RawBox) and isinstance(trun, Trun)
            assert trun.data_offset is not None
            senc = Senc.parse(bytes(senc_raw.data), 16)
            first_entry = data[pos + saio.offsets[0]:pos + saio.offsets[0] + 16]
            assert first_entry == senc.entries[0].iv
            assert data[pos + trun.data_offset - 4:pos + trun.data_offset] == b"mdat"
        pos += box.size


def test_tenc_golden() -> None:
    cenc = Tenc(KID, 8)
    cbcs = Tenc(KID, 0, IV16, 1, 1, 9, version=1)
    assert cenc.build().hex() == ("00000020" "74656e63" "00000000" "0000" "01" "08" + KID.hex())
    assert cbcs.build().hex() == ("00000031" "74656e63" "01000000" "00" "19" "01" "00"
                                  + KID.hex() + "10" + IV16.hex())
    for box in (cenc, cbcs):
        assert Tenc.parse(box.payload()) == box


def test_senc_saiz_saio_golden() -> None:
    senc = Senc([SencEntry(bytes(8), ((5, 32), (7, 0))), SencEntry(b"\x00" * 7 + b"\x01", ((4, 16),))],
                Senc.USE_SUBSAMPLES)
    assert senc.build().hex() == (
        "00000036" "73656e63" "00000002" "00000002"
        "0000000000000000" "0002" "0005" "00000020" "0007" "00000000"
        "0000000000000001" "0001" "0004" "00000010")
    assert Senc.parse(senc.payload(), 8) == senc
    assert senc.entry_sizes() == [22, 16]
    saiz = Saiz.of(senc.entry_sizes())
    assert saiz.build().hex() == "00000013" "7361697a" "00000000" "00" "00000002" "1610"
    assert Saiz.parse(saiz.payload()) == saiz
    assert Saiz.of([16, 16]).build().hex() == "00000011" "7361697a" "00000000" "10" "00000002"
    saio = Saio((1234,))
    assert saio.build().hex() == "00000014" "7361696f" "00000000" "00000001" "000004d2"
    assert Saio.parse(saio.payload()) == saio


class ManySubsamples(SubsampleMapper):
    """A synthetic subsample map: ``count`` subsamples per sample (one clear byte each,
    the last one taking the rest), as a picture cut into that many slices would have."""

    def __init__(self, count: dict[int, int]) -> None:
        super().__init__(None)
        self.count = count

    def maps(self, mdat: bytes | bytearray | memoryview, table: SampleTable) -> list[Map]:
        out: list[Map] = []
        for i, size in enumerate(table.sizes):
            n = self.count.get(i, 1)
            out.append(((1, 0),) * (n - 1) + ((size - n + 1, 0),))
        return out


def test_saiz_sizes_are_one_byte() -> None:
    assert Saiz.of([255, 18]).build().hex().endswith("ff12")
    with pytest.raises(ValueError, match="sample 1: 256 bytes .* 0 to 255"):
        Saiz.of([18, 256])
    with pytest.raises(ValueError, match="sample 0: 300 bytes"):  # the default_sample_info_size path
        Saiz.of([300, 300])


@pytest.mark.parametrize(("iv", "count", "most"), [
    pytest.param(IV16, {0: 40}, 39, id="iv16-first-sample"),
    pytest.param(IV16, {3: 40}, 39, id="iv16-fourth-sample"),
    pytest.param(IV16[:8], {2: 41}, 40, id="iv8-third-sample")])
def test_too_many_subsamples_for_saiz_is_a_packaging_error(iv: bytes, count: dict[int, int],
                                                           most: int) -> None:
    # A senc entry is IV + 2 + 6 per subsample; saiz has one byte per sample, so 255 at most.
    track = read_clear((GOLDEN / "clear_avc.mp4").read_bytes(), "clear_avc.mp4")
    frag = track.fragments[0]
    table = sample_table(frag, "clear_avc.mp4")
    p = Protection(CencEncryptor(KEY, iv), KID)
    sample = next(iter(count))
    protect_fragment(frag, table, p, ManySubsamples({sample: most}), "clear_avc.mp4")  # fits
    with pytest.raises(TooManySubsamples) as e:
        protect_fragment(frag, table, p, ManySubsamples(count), "clear_avc.mp4")
    assert isinstance(e.value, PackagingError)
    assert (e.value.file, e.value.offset, e.value.sample) == ("clear_avc.mp4", frag.offset, sample)
    assert e.value.entry_size == len(iv) + 2 + 6 * (most + 1) > 255
    assert f"sample {sample}:" in str(e.value) and f"at most 255 bytes per sample ({most} subsamples" in str(e.value)


def test_pssh_v1_golden() -> None:
    box = Pssh(bytes.fromhex("1077efecc0b24d02ace33c1e52e2fb4b"), b"", (KID,), version=1)
    assert box.build().hex() == ("00000034" "70737368" "01000000" "1077efecc0b24d02ace33c1e52e2fb4b"
                                 "00000001" + KID.hex() + "00000000")
    assert Pssh.parse(box.payload()) == box


def test_truncated_box_names_the_box() -> None:
    data = (GOLDEN / "clear_avc.mp4").read_bytes()
    with pytest.raises(CorruptMedia) as e:
        read_clear(data[:-100], "cut.mp4")
    assert e.value.file == "cut.mp4" and e.value.box == "mdat"


def test_corrupt_trun_names_the_box() -> None:
    data = bytearray((GOLDEN / "clear_avc.mp4").read_bytes())
    at = data.find(b"trun")
    data[at + 8:at + 12] = (0x7FFFFFFF).to_bytes(4, "big")  # sample_count far beyond the box
    with pytest.raises(CorruptMedia) as e:
        read_clear(bytes(data), "bad.mp4")
    assert e.value.box == "moof/traf/trun"
    assert "bad.mp4" in str(e.value)


def test_moof_without_mdat_is_truncated() -> None:
    data = (GOLDEN / "clear_avc.mp4").read_bytes()
    boxes = parse_boxes(data)
    cut = build([b for b in boxes if b.type != b"mdat"][:3])  # ftyp, moov, moof
    with pytest.raises(CorruptMedia) as e:
        read_clear(cut, "nomdat.mp4")
    assert e.value.box == "moof"


def test_protected_samples_read_back() -> None:
    tenc, samples = read_protected((GOLDEN / "cbcs_avc.mp4").read_bytes(), "cbcs_avc.mp4")
    assert tenc.default_constant_iv == IV16 and tenc.default_per_sample_iv_size == 0
    assert samples and all(s.iv == b"" and s.subsamples for s in samples)
    assert all(sum(c + p for c, p in s.subsamples) == len(s.data) for s in samples)
