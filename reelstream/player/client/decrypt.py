"""Decrypting what ReelStream's packager (or any CENC packager) protected, as a CDM does.

ISO/IEC 23001-7: the init segment's ``tenc`` gives the scheme's parameters (per-sample IV
size or constant IV, the crypt:skip pattern); each fragment's ``senc`` gives every
sample's IV and subsample map.

- ``cenc`` (§10.1): AES-128-CTR; the protected bytes of a sample form one keystream that
  starts at the sample's IV (an 8-byte IV is the counter block's high half).
- ``cbcs`` (§10.4): AES-128-CBC with the constant IV, restarted at every subsample; the
  pattern encrypts ``crypt`` blocks of every ``crypt + skip``; a trailing partial block is
  clear. A 0:0 pattern (audio) means every whole block.

Decryption keeps every size, so a segment is decrypted in place and its boxes stay
valid; :func:`clear_init` renames ``encv``/``enca`` back to the ``frma`` format and drops
``sinf`` and ``pssh``, so a decoder sees a clear track.
"""

from __future__ import annotations

from dataclasses import dataclass

from Crypto.Cipher import AES

from reelstream.media.encrypt.cenc import protected_ranges
from reelstream.media.package.boxes import (
    Box,
    ContainerBox,
    Frma,
    Mfhd,
    RawBox,
    Schm,
    Senc,
    Tenc,
    Tfhd,
    iter_headers,
    parse_boxes,
)
from reelstream.media.package.cmaf import (
    ClearTrack,
    Fragment,
    SampleTable,
    read_clear,
    sample_table,
)
from reelstream.media.package.errors import PackagingError
from reelstream.player.client.errors import SegmentInvalid


@dataclass(frozen=True)
class TrackInfo:
    """What an init segment tells a player: the track and, when protected, how."""

    kind: str  # "video" or "audio"
    codec: str  # the clear sample entry: "avc1", "hvc1", "mp4a"
    timescale: int
    scheme: str  # "cenc", "cbcs" or "clear"
    tenc: Tenc | None
    track_id: int = 0  # tkhd track_ID: every fragment's tfhd must name it

    @property
    def key_id(self) -> str | None:
        return self.tenc.default_kid.hex() if self.tenc else None


def read_init(data: bytes, url: str) -> tuple[TrackInfo, bytes]:
    """Parse an init segment; returns its track info and the clear init (see module doc)."""
    try:
        track = read_clear(data, url, allow_protected=True)
    except PackagingError as e:
        raise SegmentInvalid(f"init segment {url}: {e}") from e
    entry = track.sample_entry
    track_id = _track_id(track, url)
    sinf = entry.find("sinf")
    if not isinstance(sinf, ContainerBox):
        return TrackInfo(track.kind, entry.type.decode(), track.timescale, "clear", None, track_id), data
    frma, schm, tenc = sinf.find("frma"), sinf.find("schm"), sinf.find("schi/tenc")
    if not isinstance(frma, Frma) or not isinstance(schm, Schm) or not isinstance(tenc, Tenc):
        raise SegmentInvalid(f"init segment {url}: a protected sample entry needs frma, schm and tenc")
    scheme = schm.scheme_type.decode("latin-1")
    if scheme not in ("cenc", "cbcs"):
        raise SegmentInvalid(f"init segment {url}: scheme {scheme!r} is neither cenc nor cbcs")
    info = TrackInfo(track.kind, frma.data_format.decode("latin-1"), track.timescale, scheme, tenc, track_id)
    return info, _clear_init(track, frma.data_format)


def _track_id(track: ClearTrack, url: str) -> int:
    """14496-12 8.3.2: tkhd's track_ID follows the two times, 4 or 8 bytes each by version."""
    tkhd = track.moov.find("trak/tkhd")
    if tkhd is None:
        raise SegmentInvalid(f"init segment {url}: no trak/tkhd")
    payload = tkhd.payload()
    offset = 20 if payload[0] == 1 else 12
    return int.from_bytes(payload[offset:offset + 4], "big")


def _clear_init(track: ClearTrack, original: bytes) -> bytes:
    entry = track.sample_entry
    clear_entry = ContainerBox(original, [c for c in entry.children if c.type != b"sinf"], entry.prefix)
    stsd = track.moov.find("trak/mdia/minf/stbl/stsd")
    assert isinstance(stsd, ContainerBox)
    stsd.children[0] = clear_entry
    try:
        moov = ContainerBox(b"moov", [c for c in track.moov.children if c.type != b"pssh"], track.moov.prefix)
        return track.ftyp.build() + moov.build()
    finally:
        stsd.children[0] = entry


@dataclass(frozen=True)
class ClearSegment:
    """A decrypted media segment and what its boxes say (for the checks in ``verify``)."""

    data: bytes
    sequence: int  # mfhd sequence_number
    track_id: int  # tfhd track_ID
    decode_time: int  # tfdt, in the track's timescale
    table: SampleTable
    mdat_start: int  # offset of the mdat payload in ``data``


def decrypt_segment(data: bytes, info: TrackInfo, key: bytes | None, url: str) -> ClearSegment:
    """Decrypt one ``moof`` + ``mdat`` media segment with the track's content key."""
    fragment = _fragment(data, url)
    try:
        table = sample_table(fragment, url)
    except PackagingError as e:
        raise SegmentInvalid(f"segment {url}: {e}") from e
    mfhd, tfhd = fragment.moof.find("mfhd"), fragment.moof.find("traf/tfhd")
    sequence = mfhd.sequence_number if isinstance(mfhd, Mfhd) else -1
    track_id = tfhd.track_id if isinstance(tfhd, Tfhd) else -1
    out = bytearray(data)
    mdat_start = fragment.offset + fragment.moof.size + 8
    if info.tenc is not None:
        if key is None:
            raise SegmentInvalid(f"segment {url} is encrypted ({info.scheme}) and no key was licensed for "
                                 f"KID {info.key_id}")
        senc = _senc(fragment.moof, info.tenc, url)
        if len(senc.entries) != len(table.sizes):
            raise SegmentInvalid(f"segment {url}: senc has {len(senc.entries)} entries for "
                                 f"{len(table.sizes)} samples")
        for entry, offset, size in zip(senc.entries, table.offsets, table.sizes, strict=True):
            ranges = _protected(mdat_start + offset, size, entry.subsamples, url)
            if info.scheme == "cenc":
                _ctr(out, ranges, key, entry.iv)
            else:
                _cbcs(out, ranges, key, info.tenc)
    return ClearSegment(bytes(out), sequence, track_id, table.decode_time, table, mdat_start)


def _fragment(data: bytes, url: str) -> Fragment:
    moof = mdat = None
    view = memoryview(data)
    try:
        for kind, start, body, end, _ in iter_headers(view, 0, len(data), url):
            if kind == b"moof" and moof is None:
                box = parse_boxes(view, url, start, end)[0]
                assert isinstance(box, ContainerBox)
                moof = (box, start)
            elif kind == b"mdat" and moof is not None:
                mdat = view[body:end]
                break
    except PackagingError as e:
        raise SegmentInvalid(f"segment {url}: {e}") from e
    if moof is None or mdat is None:
        raise SegmentInvalid(f"segment {url}: no moof followed by an mdat (not a CMAF media segment)")
    return Fragment(moof[0], mdat, moof[1])


def _senc(moof: ContainerBox, tenc: Tenc, url: str) -> Senc:
    raw: Box | None = moof.find("traf/senc")
    if not isinstance(raw, RawBox):
        raise SegmentInvalid(f"segment {url}: protected track without a senc box")
    try:
        return Senc.parse(raw.payload(), tenc.default_per_sample_iv_size)
    except (ValueError, IndexError) as e:
        raise SegmentInvalid(f"segment {url}: senc: {e}") from e


def _protected(start: int, size: int, subsamples: tuple[tuple[int, int], ...], url: str) -> list[tuple[int, int]]:
    try:  # the packager's own map reading: no subsamples means the whole sample is protected
        return protected_ranges(start, size, subsamples or None)
    except ValueError as e:
        raise SegmentInvalid(f"segment {url}: {e}") from e


def _ctr(buf: bytearray, ranges: list[tuple[int, int]], key: bytes, iv: bytes) -> None:
    if not ranges:
        return
    block = iv + bytes(8) if len(iv) == 8 else iv
    cipher = AES.new(key, AES.MODE_CTR, nonce=block[:8], initial_value=block[8:])
    clear = cipher.decrypt(b"".join(bytes(buf[a:a + n]) for a, n in ranges))
    pos = 0
    for a, n in ranges:
        buf[a:a + n] = clear[pos:pos + n]
        pos += n


def _cbcs(buf: bytearray, ranges: list[tuple[int, int]], key: bytes, tenc: Tenc) -> None:
    crypt, skip = tenc.default_crypt_byte_block, tenc.default_skip_byte_block
    for start, length in ranges:
        blocks = length // 16
        if not blocks:
            continue
        cbc = AES.new(key, AES.MODE_CBC, iv=tenc.default_constant_iv)  # reset per subsample
        if crypt == 0 or skip == 0:
            end = start + blocks * 16
            buf[start:end] = cbc.decrypt(bytes(buf[start:end]))
            continue
        stride, width = 16 * (crypt + skip), 16 * crypt
        groups = (blocks - crypt) // (crypt + skip) + 1 if blocks >= crypt else 0
        if not groups:
            continue
        cipher = b"".join(bytes(buf[start + g * stride:start + g * stride + width]) for g in range(groups))
        clear = cbc.decrypt(cipher)  # CBC chains from one encrypted group to the next
        for g in range(groups):
            buf[start + g * stride:start + g * stride + width] = clear[g * width:(g + 1) * width]
