"""CMAF tracks (ISO/IEC 23000-19): clear fragmented MP4 in, protected init segment and
media segments out.

ffmpeg does the muxing it is good at (``fragment_args``: concatenate the chunk files
and cut keyframe-aligned fragments of the target duration, ``-c copy``); ReelStream then
reads each fragment, encrypts its samples in place and rewrites the boxes that carry
the protection: ``encv``/``enca`` + ``sinf`` (``frma``, ``schm``, ``schi``/``tenc``) and
``pssh`` in the init segment, ``senc`` + ``saiz`` + ``saio`` in every ``traf``, and the
``trun`` data offset moved by what the ``moof`` grew (23001-7 7, 8; 14496-12 8.7.8-9).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from reelstream.media.encrypt import hevc
from reelstream.media.encrypt.cenc import Map, SampleEncryptor
from reelstream.media.encrypt.h264 import H264Error
from reelstream.media.encrypt.subsamples import AvcSubsampler, HevcSubsampler, SubsampleError
from reelstream.media.package.boxes import (
    Box,
    ContainerBox,
    Frma,
    Pssh,
    RawBox,
    Saio,
    Saiz,
    Schm,
    Senc,
    Tenc,
    Tfdt,
    Tfhd,
    Trun,
    iter_headers,
    parse_boxes,
)
from reelstream.media.package.errors import CorruptMedia, TooManySubsamples, UnsupportedCodec

AVC_ENTRIES = {b"avc1", b"avc3"}
HEVC_ENTRIES = {b"hvc1", b"hev1"}
VIDEO_ENTRIES = AVC_ENTRIES | HEVC_ENTRIES | {b"encv"}
AUDIO_ENTRIES = {b"mp4a", b"enca"}
PROTECTED_ENTRIES = {b"encv", b"enca"}
STSD = "moov/trak/mdia/minf/stbl/stsd"


# --------------------------------------------------------------------------- ffmpeg step


def fragment_args(ffmpeg: str, concat_list: Path, output: Path, kind: str,
                  segment_s: float, same_config: bool = True) -> list[str]:
    """The ffmpeg command that turns clear MP4 input into one fragmented MP4 file.

    ``same_config``: every chunk has the same decoder configuration (avcC). Then the
    concat demuxer's auto_convert is turned off: otherwise it copies SPS/PPS into every
    chunk's first sample (measured: +38 bytes per IDR), and the packaged samples would
    no longer be the transcoder's bytes.
    """
    args = [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
            *(["-auto_convert", "0"] if same_config else []),
            # the chunk files in order, as one stream; -safe 0 allows absolute paths
            "-f", "concat", "-safe", "0", "-i", str(concat_list),
            "-map", "0:v:0" if kind == "video" else "0:a:0", "-c", "copy",
            "-map_metadata", "-1"]
    micros = int(segment_s * 1_000_000)
    if kind == "video":
        # a fragment starts at a keyframe once the current one is (nearly) a segment long
        args += ["-movflags", "+frag_keyframe+empty_moov+default_base_moof+cmaf",
                 "-min_frag_duration", str(int(micros * 0.95))]
    else:
        # every AAC frame is a sync sample: cut on duration alone
        args += ["-movflags", "+empty_moov+default_base_moof+cmaf", "-frag_duration", str(micros)]
    return args + ["-f", "mp4", str(output)]


# --------------------------------------------------------------------------- reading


@dataclass
class Fragment:
    moof: ContainerBox
    mdat: bytes | memoryview  # the mdat payload
    offset: int  # of the moof in the file


@dataclass
class ClearTrack:
    """A parsed clear fragmented MP4 file with one track."""

    file: str
    ftyp: Box
    moov: ContainerBox
    fragments: list[Fragment]
    sample_entry: ContainerBox = field(init=False)

    def __post_init__(self) -> None:
        stsd = self.moov.find("trak/mdia/minf/stbl/stsd")
        if not isinstance(stsd, ContainerBox) or not stsd.children:
            raise CorruptMedia(self.file, STSD, 0, "no sample description")
        entry = stsd.children[0]
        if entry.type not in VIDEO_ENTRIES | AUDIO_ENTRIES or not isinstance(entry, ContainerBox):
            raise UnsupportedCodec(self.file, f"{STSD}/{entry.type.decode('latin-1')}",
                                   entry.type.decode("latin-1"))
        self.sample_entry = entry

    @property
    def kind(self) -> str:
        return "video" if self.sample_entry.type in VIDEO_ENTRIES else "audio"

    @property
    def timescale(self) -> int:
        mdhd = self.moov.find("trak/mdia/mdhd")
        assert isinstance(mdhd, RawBox)
        version = mdhd.data[0]
        return int(struct.unpack_from(">I", mdhd.data, 20 if version == 1 else 12)[0])

    @property
    def dimensions(self) -> tuple[int, int]:
        return struct.unpack_from(">HH", self.sample_entry.prefix, 24)

    def config(self, kind: bytes) -> bytes:
        for c in self.sample_entry.children:
            if c.type == kind and isinstance(c, RawBox):
                return bytes(c.data)
        raise CorruptMedia(self.file, f"{STSD}/{self.sample_entry.type.decode()}/{kind.decode()}",
                           0, "missing decoder configuration")

    @property
    def is_hevc(self) -> bool:
        return self.sample_entry.type in HEVC_ENTRIES

    def hvcc(self) -> hevc.HvcC:
        try:
            return hevc.HvcC.parse(self.config(b"hvcC"))
        except hevc.HevcError as e:
            raise CorruptMedia(self.file, f"{STSD}/{self.sample_entry.type.decode()}/hvcC", 0, str(e)) from e

    @property
    def codecs(self) -> str:
        """RFC 6381 codecs string: avc1.PPCCLL, hvc1.2.4.L150.B0 (14496-15 E.3), mp4a.40.AOT."""
        if self.is_hevc:
            return self.hvcc().codecs(self.sample_entry.type.decode())
        if self.kind == "video":
            avcc = self.config(b"avcC")
            return f"{self.sample_entry.type.decode()}.{avcc[1:4].hex()}"
        return f"mp4a.40.{_aac_object_type(self.config(b'esds'))}"

    @property
    def video_range(self) -> str:
        """HLS VIDEO-RANGE (RFC 8216bis 4.4.6.2): PQ or HLG from the transfer characteristics
        (H.273 / 23008-2 E.2.1: 16 = SMPTE ST 2084, 18 = ARIB STD-B67) of the ``colr`` box
        ('nclx', 14496-12 12.1.5) or, without one, of the SPS VUI; SDR otherwise."""
        transfer = _colr_transfer(self.sample_entry)
        if transfer is None and self.is_hevc:
            try:
                transfer = self.hvcc().transfer_characteristics()
            except (hevc.HevcError, H264Error) as e:
                raise CorruptMedia(self.file, f"{STSD}/{self.sample_entry.type.decode()}/hvcC", 0,
                                   f"unreadable SPS: {e}") from e
        return {hevc.TRANSFER_PQ: "PQ", hevc.TRANSFER_HLG: "HLG"}.get(transfer or 0, "SDR")


def _colr_transfer(entry: ContainerBox) -> int | None:
    for c in entry.children:
        if c.type == b"colr" and isinstance(c, RawBox) and c.data[:4] in (b"nclx", b"nclc") and len(c.data) >= 8:
            return int(struct.unpack_from(">H", c.data, 6)[0])
    return None


def _aac_object_type(esds: bytes) -> int:
    """The audioObjectType of the AudioSpecificConfig in an esds (14496-1 7.2.6.7, 14496-3 1.6.2.1)."""
    i = esds.find(b"\x05", 4)
    while i != -1:
        pos, length = i + 1, 0
        for _ in range(4):
            b = esds[pos]
            pos += 1
            length = (length << 7) | (b & 0x7F)
            if not b & 0x80:
                break
        if length >= 2 and pos + length <= len(esds):
            return esds[pos] >> 3
        i = esds.find(b"\x05", i + 1)
    return 2


def read_clear(data: bytes, file: str, allow_protected: bool = False) -> ClearTrack:
    """Parse a clear fragmented MP4 (ftyp, moov, then moof+mdat pairs)."""
    ftyp = moov = None
    fragments: list[Fragment] = []
    pending: tuple[ContainerBox, int] | None = None
    view = memoryview(data)
    for kind, start, body, end, _ in iter_headers(view, 0, len(data), file):
        if kind == b"ftyp":
            ftyp = parse_boxes(view, file, start, end)[0]
        elif kind == b"moov":
            box = parse_boxes(view, file, start, end)[0]
            assert isinstance(box, ContainerBox)
            moov = box
        elif kind == b"moof":
            box = parse_boxes(view, file, start, end)[0]
            assert isinstance(box, ContainerBox)
            pending = (box, start)
        elif kind == b"mdat":
            if pending is None:
                raise CorruptMedia(file, "mdat", start, "media data without a moof before it")
            fragments.append(Fragment(pending[0], view[body:end], pending[1]))
            pending = None
    if ftyp is None or moov is None:
        raise CorruptMedia(file, "moov", 0, "no ftyp/moov: not an MP4 initialization")
    if pending is not None:
        raise CorruptMedia(file, "moof", pending[1], "moof without its mdat (truncated file)")
    track = ClearTrack(file, ftyp, moov, fragments)
    if track.sample_entry.type in PROTECTED_ENTRIES and not allow_protected:
        raise UnsupportedCodec(file, f"{STSD}/{track.sample_entry.type.decode()}",
                               "already encrypted " + track.sample_entry.type.decode())
    return track


@dataclass
class SampleTable:
    """The samples of one fragment: where each is in the mdat payload, and its timing."""

    offsets: list[int]
    sizes: list[int]
    durations: list[int]
    decode_time: int


def sample_table(frag: Fragment, file: str) -> SampleTable:
    traf = frag.moof.find("traf")
    where = f"moof@{frag.offset}/traf"
    if not isinstance(traf, ContainerBox) or len(frag.moof.all("traf")) != 1:
        raise CorruptMedia(file, "moof/traf", frag.offset, "expected exactly one traf")
    tfhd, truns, tfdt = traf.find("tfhd"), traf.all("trun"), traf.find("tfdt")
    if not isinstance(tfhd, Tfhd) or len(truns) != 1 or not isinstance(tfdt, Tfdt):
        raise CorruptMedia(file, where, frag.offset, "expected tfhd, tfdt and one trun")
    trun = truns[0]
    assert isinstance(trun, Trun)
    if not tfhd.flags & Tfhd.DEFAULT_BASE_IS_MOOF or trun.data_offset is None:
        raise CorruptMedia(file, where + "/tfhd", frag.offset,
                           "needs default-base-is-moof and a trun data offset")
    sizes = [s.size if s.size is not None else tfhd.default_sample_size for s in trun.samples]
    durations = [s.duration if s.duration is not None else tfhd.default_sample_duration
                 for s in trun.samples]
    if any(v is None for v in sizes) or any(v is None for v in durations):
        raise CorruptMedia(file, where + "/trun", frag.offset, "sample sizes or durations missing")
    mdat_header = 8  # the mdat payload starts 8 bytes after the moof ends
    pos = trun.data_offset - (frag.moof.size + mdat_header)
    offsets = []
    for s in sizes:
        offsets.append(pos)
        pos += s  # type: ignore[operator]
    if offsets and (offsets[0] < 0 or pos > len(frag.mdat)):
        raise CorruptMedia(file, "mdat", frag.offset + frag.moof.size,
                           f"samples need {pos} bytes of media data, the mdat holds {len(frag.mdat)}")
    return SampleTable(offsets, sizes, durations, tfdt.base_media_decode_time)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- protecting


@dataclass(frozen=True)
class Protection:
    encryptor: SampleEncryptor
    kid: bytes
    pssh: Sequence[Pssh] = ()


def tenc_for(p: Protection, kind: str) -> Tenc:
    e = p.encryptor
    if e.per_sample_iv_size:
        return Tenc(p.kid, e.per_sample_iv_size)
    return Tenc(p.kid, 0, e.constant_iv, 1, e.crypt_byte_block, e.skip_byte_block, version=1)


def protect_init(track: ClearTrack, p: Protection) -> bytes:
    """ftyp + moov with the sample entry renamed encv/enca and a sinf added (23001-7 4,
    14496-12 8.12), and one pssh per DRM system at the end of the moov."""
    entry = track.sample_entry
    original = entry.type
    sinf = ContainerBox(b"sinf", [Frma(original), Schm(p.encryptor.scheme),
                                  ContainerBox(b"schi", [tenc_for(p, track.kind)])])
    protected_entry = ContainerBox(b"encv" if track.kind == "video" else b"enca",
                                   [*entry.children, sinf], entry.prefix)
    stsd = track.moov.find("trak/mdia/minf/stbl/stsd")
    assert isinstance(stsd, ContainerBox)
    stsd.children[0] = protected_entry
    try:
        moov = ContainerBox(b"moov", [*track.moov.children, *p.pssh], track.moov.prefix)
        return track.ftyp.build() + moov.build()
    finally:
        stsd.children[0] = entry


def subsample_maps(track: ClearTrack, p: Protection) -> SubsampleMapper:
    if track.kind == "audio":
        return SubsampleMapper(None)
    align = p.encryptor.scheme == b"cenc"
    config = b"hvcC" if track.is_hevc else b"avcC"
    try:
        if track.is_hevc:
            return SubsampleMapper(HevcSubsampler(track.config(config), align))
        return SubsampleMapper(AvcSubsampler(track.config(config), align))
    except (ValueError, IndexError) as e:
        raise CorruptMedia(track.file, f"{STSD}/{track.sample_entry.type.decode()}/{config.decode()}", 0,
                           f"unreadable VPS/SPS/PPS: {e}") from e


class SubsampleMapper:
    def __init__(self, avc: AvcSubsampler | HevcSubsampler | None) -> None:
        self.avc = avc

    def maps(self, mdat: bytes | bytearray | memoryview, table: SampleTable) -> list[Map]:
        if self.avc is None:
            return [None] * len(table.sizes)
        view = memoryview(mdat)
        return [self.avc.map(view[o:o + s]) for o, s in zip(table.offsets, table.sizes, strict=True)]


def protect_fragment(frag: Fragment, table: SampleTable, p: Protection, mapper: SubsampleMapper,
                     file: str) -> bytes:
    """moof (with senc, saiz, saio and a moved trun data offset) + mdat, encrypted."""
    mdat = bytearray(frag.mdat)
    try:
        maps = mapper.maps(mdat, table)
    except SubsampleError as e:
        raise CorruptMedia(file, "mdat", frag.offset + frag.moof.size, f"bad video sample: {e}") from e
    entries = p.encryptor.encrypt_fragment(mdat, table.offsets, table.sizes, maps)
    senc = Senc(entries, Senc.USE_SUBSAMPLES if maps and maps[0] is not None else 0)
    sizes = senc.entry_sizes()
    for i, size in enumerate(sizes):
        if size > Saiz.MAX_SAMPLE_INFO_SIZE:
            raise TooManySubsamples(file, frag.offset, i, size, len(entries[i].subsamples),
                                    p.encryptor.per_sample_iv_size, Saiz.MAX_SAMPLE_INFO_SIZE)
    traf = frag.moof.find("traf")
    assert isinstance(traf, ContainerBox)
    saio = Saio((0,))
    # A constant IV and no subsamples (cbcs audio) leaves every entry empty: then there
    # is no auxiliary information to point at, and saiz/saio are left out (as Shaka
    # Packager does; ffmpeg 8.1 rejects a saiz of zero-sized entries).
    aux: list[Box] = [Saiz.of(sizes), saio] if any(sizes) else []
    new_traf = ContainerBox(b"traf", [*traf.children, *aux, senc], traf.prefix)
    moof = ContainerBox(b"moof", [new_traf if c is traf else c for c in frag.moof.children],
                        frag.moof.prefix)
    saio.offsets = (_offset_in(moof, senc) + Senc.FIRST_ENTRY_OFFSET,)
    grown = moof.size - frag.moof.size
    trun = next(c for c in new_traf.children if isinstance(c, Trun))
    old_offset = trun.data_offset
    trun.data_offset = (old_offset or 0) + grown
    try:
        return moof.build() + struct.pack(">I4s", len(mdat) + 8, b"mdat") + mdat
    finally:
        trun.data_offset = old_offset


def _offset_in(container: ContainerBox, target: Box, base: int = 0) -> int:
    """Byte offset of ``target`` from the start of ``container`` (searching depth first)."""
    pos = base + 8 + len(container.prefix)
    for child in container.children:
        if child is target:
            return pos
        if isinstance(child, ContainerBox):
            try:
                return _offset_in(child, target, pos)
            except LookupError:
                pass
        pos += child.size
    raise LookupError("box not in container")


def clear_fragment(frag: Fragment) -> bytes:
    return frag.moof.build() + struct.pack(">I4s", len(frag.mdat) + 8, b"mdat") + bytes(frag.mdat)


def iter_segments(track: ClearTrack, p: Protection | None) -> Iterator[tuple[bytes, SampleTable]]:
    """Each fragment as a media segment (protected when ``p`` is given) with its samples."""
    mapper = subsample_maps(track, p) if p else None
    for frag in track.fragments:
        table = sample_table(frag, track.file)
        if p is None or mapper is None:
            yield clear_fragment(frag), table
        else:
            yield protect_fragment(frag, table, p, mapper, track.file), table


# --------------------------------------------------------------------------- reading back


@dataclass(frozen=True)
class ProtectedSample:
    iv: bytes
    subsamples: tuple[tuple[int, int], ...]
    data: bytes


def read_protected(data: bytes, file: str) -> tuple[Tenc, list[ProtectedSample]]:
    """The tenc and every sample with its senc entry, from a protected fragmented MP4
    (ReelStream's or another packager's): for interop checks and tests."""
    init_end = 0
    for kind, _, _, end, _ in iter_headers(memoryview(data), 0, len(data), file):
        if kind == b"moov":
            init_end = end
            break
    track = read_clear(data, file, allow_protected=True) if init_end else None
    if track is None:
        raise CorruptMedia(file, "moov", 0, "no moov")
    stsd = track.moov.find("trak/mdia/minf/stbl/stsd")
    assert isinstance(stsd, ContainerBox)
    entry = stsd.children[0]
    tenc = entry.find("sinf/schi/tenc") if isinstance(entry, ContainerBox) else None
    if not isinstance(tenc, Tenc):
        raise CorruptMedia(file, f"{STSD}/{entry.type.decode()}/sinf/schi/tenc", 0, "not protected")
    out: list[ProtectedSample] = []
    for frag in track.fragments:
        table = sample_table(frag, file)
        traf = frag.moof.find("traf")
        assert isinstance(traf, ContainerBox)
        raw = traf.find("senc")
        entries = (Senc.parse(raw.payload(), tenc.default_per_sample_iv_size).entries
                   if isinstance(raw, RawBox) else [])
        for i, (o, s) in enumerate(zip(table.offsets, table.sizes, strict=True)):
            e = entries[i] if i < len(entries) else None
            out.append(ProtectedSample(e.iv if e else b"", tuple(e.subsamples) if e else (),
                                       bytes(frag.mdat[o:o + s])))
    return tenc, out
