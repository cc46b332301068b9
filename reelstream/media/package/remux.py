"""Progressive MP4 chunks to one fragmented CMAF track, in-project (no ffmpeg process).

Measured on this machine, ffmpeg's concat demuxer remuxes at ~30 MB/s (it opens and
probes every chunk), a third of Shaka Packager's whole packaging speed; reading the
chunks' sample tables and slicing their mdat directly is I/O-bound. The result is the
same track ffmpeg makes with ``fragment_args`` (tested sample by sample): the same
samples, decode times, durations, composition offsets and fragment boundaries.

Per chunk (14496-12 8.6, 8.7): sizes from ``stsz``, file offsets from ``stsc`` +
``stco``/``co64``, durations from ``stts``, composition offsets from ``ctts``, sync
samples from ``stss`` (absent: all sync). Decode times continue from chunk to chunk.
With B-frames the chunk's edit list shifts presentation (``elst`` media_time); like
ffmpeg's CMAF output, ReelStream drops the edit list and writes signed composition
offsets (trun version 1) less that shift, so the first frame presents at 0.
Fragments: a new one starts at a sync sample once the current one is at least
``min_fraction`` of the target duration long (video), or once it reached the target
(audio, every sample is sync).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

from reelstream.media.package.boxes import (
    Box,
    ContainerBox,
    Mfhd,
    RawBox,
    Tfdt,
    Tfhd,
    Trun,
    TrunSample,
    iter_headers,
    parse_boxes,
)
from reelstream.media.package.cmaf import ClearTrack, Fragment
from reelstream.media.package.errors import CorruptMedia

SYNC_FLAGS = 0x02000000  # sample_depends_on = 2 (an I picture)
NON_SYNC_FLAGS = 0x01010000  # depends on others, sample_is_non_sync_sample
FTYP = RawBox(b"ftyp", b"iso6" + struct.pack(">I", 0x200) + b"iso6cmfcmp41")
STBL = "trak/mdia/minf/stbl"


@dataclass
class Samples:
    """The samples of one chunk: file offsets and timing."""

    offsets: list[int]
    sizes: list[int]
    durations: list[int]
    ctos: list[int]
    sync: list[bool]


def _full(box: Box | None, file: str, name: str) -> bytes | memoryview:
    if not isinstance(box, RawBox):
        raise CorruptMedia(file, f"moov/{STBL}/{name}", 0, "missing")
    return box.data


def _runs(data: bytes | memoryview, fmt: str, count_at: int = 4) -> list[tuple[int, ...]]:
    n = struct.unpack_from(">I", data, count_at)[0]
    size = struct.calcsize(fmt)
    start = count_at + 4
    if start + n * size > len(data):
        raise ValueError(f"{n} entries do not fit in {len(data)} bytes")
    return list(struct.iter_unpack(fmt, data[start:start + n * size]))


def read_samples(moov: ContainerBox, file: str) -> Samples:
    stbl = moov.find(STBL)
    if not isinstance(stbl, ContainerBox):
        raise CorruptMedia(file, f"moov/{STBL}", 0, "missing sample table")
    where = ""
    try:
        where = "stsz"
        stsz = _full(stbl.find("stsz"), file, "stsz")
        fixed, count = struct.unpack_from(">II", stsz, 4)
        sizes = [fixed] * count if fixed else [s for (s,) in _runs(stsz, ">I", 8)]
        where = "stts"
        durations = [d for n, d in _runs(_full(stbl.find("stts"), file, "stts"), ">II") for _ in range(n)]
        where = "ctts"
        ctts = stbl.find("ctts")
        ctos = [0] * count
        if isinstance(ctts, RawBox):
            fmt = ">Ii" if ctts.data[0] == 1 else ">II"
            ctos = [o for n, o in _runs(ctts.data, fmt) for _ in range(n)]
        where = "stss"
        stss = stbl.find("stss")
        sync = [True] * count
        if isinstance(stss, RawBox):
            sync = [False] * count
            for (i,) in _runs(stss.data, ">I"):
                sync[i - 1] = True
        where = "stco"
        co = stbl.find("stco") or stbl.find("co64")
        if not isinstance(co, RawBox):
            raise CorruptMedia(file, f"moov/{STBL}/stco", 0, "missing chunk offsets")
        chunk_offsets = [o for (o,) in _runs(co.data, ">Q" if co.type == b"co64" else ">I")]
        where = "stsc"
        stsc = _runs(_full(stbl.find("stsc"), file, "stsc"), ">III")
        offsets = _sample_offsets(chunk_offsets, stsc, sizes)
    except (struct.error, ValueError, IndexError) as e:
        raise CorruptMedia(file, f"moov/{STBL}/{where}", 0, f"malformed: {e}") from e
    if not (len(durations) == len(ctos) == len(offsets) == count):
        raise CorruptMedia(file, f"moov/{STBL}", 0,
                           f"tables disagree: {count} sizes, {len(durations)} durations, "
                           f"{len(offsets)} offsets")
    return Samples(offsets, sizes, durations, ctos, sync)


def _sample_offsets(chunk_offsets: list[int], stsc: list[tuple[int, ...]], sizes: list[int]) -> list[int]:
    """14496-12 8.7.4: expand sample-to-chunk runs into each sample's file offset."""
    offsets: list[int] = []
    sample = 0
    for i, (first, per_chunk, _) in enumerate(stsc):
        last = stsc[i + 1][0] - 1 if i + 1 < len(stsc) else len(chunk_offsets)
        for chunk in range(first - 1, last):
            pos = chunk_offsets[chunk]
            for _ in range(per_chunk):
                if sample >= len(sizes):
                    return offsets
                offsets.append(pos)
                pos += sizes[sample]
                sample += 1
    return offsets


def _media_time(moov: ContainerBox) -> int:
    elst = moov.find("trak/edts/elst")
    if not isinstance(elst, RawBox):
        return 0
    version, count = elst.data[0], struct.unpack_from(">I", elst.data, 4)[0]
    if count == 0:
        return 0
    fmt, at = (">Qq", 8) if version == 1 else (">Ii", 8)
    for _ in range(count):
        _duration, media_time = struct.unpack_from(fmt, elst.data, at)
        if media_time >= 0:
            return int(media_time)
        at += struct.calcsize(fmt) + 4  # an empty edit (media_time -1): look at the next one
    return 0


def _zero_duration(box: Box, v0_at: int, v1_at: int) -> Box:
    assert isinstance(box, RawBox)
    data = bytearray(box.data)
    if data[0] == 1:
        data[v1_at:v1_at + 8] = bytes(8)
    else:
        data[v0_at:v0_at + 4] = bytes(4)
    return RawBox(box.type, bytes(data))


def init_moov(moov: ContainerBox, file: str) -> ContainerBox:
    """The chunk's moov as a CMAF header: no sample tables, no edit list, zero
    durations, ``mvex``/``trex`` (14496-12 8.8.1)."""
    trak = moov.find("trak")
    mdia = moov.find("trak/mdia")
    minf = moov.find("trak/mdia/minf")
    stbl = moov.find(STBL)
    tkhd = moov.find("trak/tkhd")
    if not all(isinstance(b, ContainerBox) for b in (trak, mdia, minf, stbl)) or not isinstance(tkhd, RawBox):
        raise CorruptMedia(file, "moov/trak", 0, "incomplete track box")
    assert isinstance(stbl, ContainerBox) and isinstance(minf, ContainerBox)
    assert isinstance(mdia, ContainerBox) and isinstance(trak, ContainerBox)
    track_id = struct.unpack_from(">I", tkhd.data, 20 if tkhd.data[0] == 1 else 12)[0]
    empty = [RawBox(b"stts", bytes(8)), RawBox(b"stsc", bytes(8)), RawBox(b"stsz", bytes(12)),
             RawBox(b"stco", bytes(8))]
    new_stbl = ContainerBox(b"stbl", [*stbl.all("stsd"), *empty])
    new_minf = ContainerBox(b"minf", [new_stbl if c is stbl else c for c in minf.children])
    new_mdia = ContainerBox(b"mdia", [
        _zero_duration(c, 16, 24) if c.type == b"mdhd" else new_minf if c is minf else c
        for c in mdia.children])
    new_trak = ContainerBox(b"trak", [
        _zero_duration(c, 20, 28) if c.type == b"tkhd" else new_mdia if c is mdia else c
        for c in trak.children if c.type in (b"tkhd", b"mdia")])
    trex = RawBox(b"trex", struct.pack(">IIIIII", 0, track_id, 1, 0, 0, 0))
    children: list[Box] = []
    for c in moov.children:
        if c.type == b"mvhd":
            children.append(_zero_duration(c, 16, 24))
        elif c is trak:
            children.append(new_trak)
    return ContainerBox(b"moov", [*children, ContainerBox(b"mvex", [trex])])


@dataclass
class _Pending:
    views: list[memoryview]
    sizes: list[int]
    durations: list[int]
    ctos: list[int]
    sync: list[bool]
    decode_time: int

    @property
    def duration(self) -> int:
        return sum(self.durations)


def _fragment(p: _Pending, sequence: int, track_id: int, offset: int) -> Fragment:
    uniform = len(set(p.durations)) == 1
    flags = 0x1 | 0x200  # data offset, sizes
    flags |= 0 if uniform else 0x100
    if any(p.ctos):
        flags |= 0x800
    first_only = p.sync[0] and not any(p.sync[1:])
    all_sync = all(p.sync)
    if first_only and len(p.sync) > 1:
        flags |= 0x4
    elif not all_sync:
        flags |= 0x400
    default_flags = SYNC_FLAGS if all_sync else NON_SYNC_FLAGS
    samples = [TrunSample(None if uniform else d, s, None if flags & 0x400 == 0 else
                          (SYNC_FLAGS if k else NON_SYNC_FLAGS), c if flags & 0x800 else None)
               for d, s, c, k in zip(p.durations, p.sizes, p.ctos, p.sync, strict=True)]
    trun = Trun(flags, samples, 0, SYNC_FLAGS if flags & 0x4 else None,
                version=1 if any(c < 0 for c in p.ctos) else 0)
    tfhd = Tfhd(Tfhd.DEFAULT_BASE_IS_MOOF | 0x20 | (0x8 if uniform else 0), track_id,
                default_sample_duration=p.durations[0] if uniform else None,
                default_sample_flags=default_flags)
    traf = ContainerBox(b"traf", [tfhd, Tfdt(p.decode_time), trun])
    moof = ContainerBox(b"moof", [Mfhd(sequence), traf])
    trun.data_offset = moof.size + 8
    return Fragment(moof, b"".join(p.views), offset)


def remux(chunks: Sequence[tuple[str, bytes]], kind: str, segment_s: float,
          min_fraction: float = 0.95) -> ClearTrack:
    """One fragmented track from progressive MP4 files (name, bytes), in order."""
    first_moov: ContainerBox | None = None
    fragments: list[Fragment] = []
    decode_time = 0
    pending: _Pending | None = None
    timescale = track_id = 0
    out_offset = 0
    for name, data in chunks:
        moov, mdat_ranges = _top_level(data, name)
        if first_moov is None:
            first_moov = moov
            timescale = _timescale(moov, name)
            tkhd = moov.find("trak/tkhd")
            assert isinstance(tkhd, RawBox)
            track_id = struct.unpack_from(">I", tkhd.data, 20 if tkhd.data[0] == 1 else 12)[0]
        s = read_samples(moov, name)
        shift = _media_time(moov) if any(s.ctos) else 0
        target = int(segment_s * timescale * (min_fraction if kind == "video" else 1.0))
        view = memoryview(data)
        for off, size, dur, cto, sync in zip(s.offsets, s.sizes, s.durations, s.ctos, s.sync, strict=True):
            if not any(a <= off and off + size <= b for a, b in mdat_ranges):
                raise CorruptMedia(name, "mdat", off, f"a {size}-byte sample lies outside the media data")
            if pending is not None and sync and pending.duration >= target:
                fragments.append(_fragment(pending, len(fragments) + 1, track_id, out_offset))
                pending = None
            if pending is None:
                if not sync and not fragments:
                    raise CorruptMedia(name, f"moov/{STBL}/stss", 0, "the first sample is not a sync sample")
                pending = _Pending([], [], [], [], [], decode_time)
            pending.views.append(view[off:off + size])
            pending.sizes.append(size)
            pending.durations.append(dur)
            pending.ctos.append(cto - shift)
            pending.sync.append(sync)
            decode_time += dur
    if pending is not None:
        fragments.append(_fragment(pending, len(fragments) + 1, track_id, out_offset))
    if first_moov is None:
        raise CorruptMedia("(no input)", "moov", 0, "no chunks")
    return ClearTrack(chunks[0][0], FTYP, init_moov(first_moov, chunks[0][0]), fragments)


def _timescale(moov: ContainerBox, file: str) -> int:
    mdhd = moov.find("trak/mdia/mdhd")
    if not isinstance(mdhd, RawBox):
        raise CorruptMedia(file, "moov/trak/mdia/mdhd", 0, "missing")
    return int(struct.unpack_from(">I", mdhd.data, 20 if mdhd.data[0] == 1 else 12)[0])


def _top_level(data: bytes, file: str) -> tuple[ContainerBox, list[tuple[int, int]]]:
    moov = None
    mdats = []
    for kind, start, body, end, _ in iter_headers(data, 0, len(data), file):
        if kind == b"moov":
            box = parse_boxes(data, file, start, end)[0]
            assert isinstance(box, ContainerBox)
            moov = box
        elif kind == b"mdat":
            mdats.append((body, end))
    if moov is None or not mdats:
        raise CorruptMedia(file, "moov" if moov is None else "mdat", 0, "missing: not a complete MP4")
    if len(moov.all("trak")) != 1:
        raise CorruptMedia(file, "moov/trak", 0, "expected exactly one track per chunk")
    return moov, mdats
