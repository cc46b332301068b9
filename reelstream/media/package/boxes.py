"""ISO base media file format boxes, as typed values with a parser and a builder.

Spec references: ISO/IEC 14496-12:2022 (ISOBMFF) and ISO/IEC 23001-7:2023 (Common
Encryption). Boxes ReelStream reads or rewrites are typed classes; every other box is
kept as raw bytes (``RawBox``), so ``build(parse(x)) == x`` byte for byte for any
well-formed file. Containers (``ContainerBox``) hold their children and, for boxes that
have fields before their children (``stsd``, sample entries), those fields as
``prefix`` bytes.

``senc`` cannot be parsed without the per-sample IV size (it lives in ``tenc``), so the
generic parser keeps it raw and ``Senc.parse(payload, iv_size)`` reads it.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import ClassVar

from reelstream.media.package.errors import CorruptMedia

# 14496-12 8.1: plain containers, whose payload is only boxes.
CONTAINERS = frozenset({
    b"moov", b"trak", b"mdia", b"minf", b"stbl", b"dinf", b"edts", b"mvex", b"moof",
    b"traf", b"sinf", b"schi", b"udta", b"mfra",
})
# Boxes with fixed fields before their child boxes: the number of prefix bytes.
PREFIXED = {
    b"stsd": 8,  # 8.5.2 FullBox header + entry_count
    # 12.1.3 VisualSampleEntry: SampleEntry(8) + 70 bytes of visual fields
    b"avc1": 78, b"avc3": 78, b"hvc1": 78, b"hev1": 78, b"encv": 78, b"vp09": 78, b"av01": 78,
    # 12.2.3 AudioSampleEntry (version 0): SampleEntry(8) + 20 bytes
    b"mp4a": 28, b"enca": 28,
    # 14496-30 WVTTSampleEntry: a plain SampleEntry
    b"wvtt": 8,
}


class Box:
    """One box. Subclasses give ``type`` and ``payload()``.

    Typed boxes set ``type = b"xxxx"`` unannotated, so that it stays a class constant and
    not a dataclass field; generic boxes (raw, container) take it as a field.
    """

    type: bytes
    large: bool = False  # written with a 64-bit size (kept so round trips are exact)

    def payload(self) -> bytes:
        raise NotImplementedError

    def build(self) -> bytes:
        body = self.payload()
        if self.large or len(body) + 8 > 0xFFFFFFFF:
            return struct.pack(">I4sQ", 1, self.type, len(body) + 16) + body
        return struct.pack(">I4s", len(body) + 8, self.type) + body

    @property
    def size(self) -> int:
        return len(self.build())


@dataclass
class RawBox(Box):
    """Any box ReelStream does not interpret; its payload is kept verbatim."""

    type: bytes
    data: bytes | memoryview  # an mdat stays a view of the file: no copy until it is built
    large: bool = False

    def payload(self) -> bytes:
        return bytes(self.data)


@dataclass
class ContainerBox(Box):
    """A box whose payload is ``prefix`` bytes followed by child boxes."""

    type: bytes
    children: list[Box] = field(default_factory=list)
    prefix: bytes = b""
    large: bool = False

    def payload(self) -> bytes:
        return self.prefix + b"".join(c.build() for c in self.children)

    def find(self, path: str) -> Box | None:
        """The first box at ``path`` ("trak/mdia/minf"), or None."""
        head, _, rest = path.partition("/")
        for child in self.children:
            if child.type == head.encode():
                if not rest:
                    return child
                if isinstance(child, ContainerBox):
                    found = child.find(rest)
                    if found is not None:
                        return found
        return None

    def all(self, type_: str) -> list[Box]:
        return [c for c in self.children if c.type == type_.encode()]


# --------------------------------------------------------------------------- full boxes


def _full_header(version: int, flags: int) -> bytes:
    return struct.pack(">I", (version << 24) | flags)


@dataclass
class Mfhd(Box):
    """14496-12 8.8.5 MovieFragmentHeaderBox."""

    sequence_number: int
    type = b"mfhd"

    @classmethod
    def parse(cls, p: bytes) -> Mfhd:
        return cls(struct.unpack_from(">I", p, 4)[0])

    def payload(self) -> bytes:
        return _full_header(0, 0) + struct.pack(">I", self.sequence_number)


@dataclass
class Tfhd(Box):
    """14496-12 8.8.7 TrackFragmentHeaderBox."""

    flags: int
    track_id: int
    base_data_offset: int | None = None  # 0x000001
    sample_description_index: int | None = None  # 0x000002
    default_sample_duration: int | None = None  # 0x000008
    default_sample_size: int | None = None  # 0x000010
    default_sample_flags: int | None = None  # 0x000020
    type = b"tfhd"
    DEFAULT_BASE_IS_MOOF: ClassVar[int] = 0x020000

    @classmethod
    def parse(cls, p: bytes) -> Tfhd:
        flags = int.from_bytes(p[1:4], "big")
        track_id = struct.unpack_from(">I", p, 4)[0]
        pos, vals = 8, []
        for bit, fmt in ((0x1, ">Q"), (0x2, ">I"), (0x8, ">I"), (0x10, ">I"), (0x20, ">I")):
            if flags & bit:
                vals.append(struct.unpack_from(fmt, p, pos)[0])
                pos += struct.calcsize(fmt)
            else:
                vals.append(None)
        return cls(flags, track_id, *vals)

    def payload(self) -> bytes:
        out = _full_header(0, self.flags) + struct.pack(">I", self.track_id)
        for bit, fmt, v in ((0x1, ">Q", self.base_data_offset),
                            (0x2, ">I", self.sample_description_index),
                            (0x8, ">I", self.default_sample_duration),
                            (0x10, ">I", self.default_sample_size),
                            (0x20, ">I", self.default_sample_flags)):
            if self.flags & bit:
                out += struct.pack(fmt, v)
        return out


@dataclass
class Tfdt(Box):
    """14496-12 8.8.12 TrackFragmentBaseMediaDecodeTimeBox."""

    base_media_decode_time: int
    version: int = 1
    type = b"tfdt"

    @classmethod
    def parse(cls, p: bytes) -> Tfdt:
        version = p[0]
        t = struct.unpack_from(">Q" if version == 1 else ">I", p, 4)[0]
        return cls(t, version)

    def payload(self) -> bytes:
        fmt = ">Q" if self.version == 1 else ">I"
        return _full_header(self.version, 0) + struct.pack(fmt, self.base_media_decode_time)


@dataclass
class TrunSample:
    duration: int | None = None
    size: int | None = None
    flags: int | None = None
    composition_offset: int | None = None


@dataclass
class Trun(Box):
    """14496-12 8.8.8 TrackRunBox."""

    flags: int
    samples: list[TrunSample]
    data_offset: int | None = None  # 0x000001, relative to the moof when default-base-is-moof
    first_sample_flags: int | None = None  # 0x000004
    version: int = 0
    type = b"trun"
    _FIELDS: ClassVar[tuple[tuple[int, str], ...]] = (
        (0x100, "duration"), (0x200, "size"), (0x400, "flags"), (0x800, "composition_offset"))

    @classmethod
    def parse(cls, p: bytes) -> Trun:
        version, flags = p[0], int.from_bytes(p[1:4], "big")
        count = struct.unpack_from(">I", p, 4)[0]
        pos = 8
        data_offset = first = None
        if flags & 0x1:
            data_offset = struct.unpack_from(">i", p, pos)[0]
            pos += 4
        if flags & 0x4:
            first = struct.unpack_from(">I", p, pos)[0]
            pos += 4
        present = [(name, ">i" if name == "composition_offset" and version else ">I")
                   for bit, name in cls._FIELDS if flags & bit]
        row = ">" + "".join(f[1:] for _, f in present)
        step = struct.calcsize(row) if present else 0
        if pos + step * count > len(p):
            raise ValueError(f"{count} samples do not fit in {len(p)} bytes")
        samples = []
        for values in struct.iter_unpack(row, p[pos:pos + step * count]) if present else [()] * count:
            samples.append(TrunSample(**dict(zip((n for n, _ in present), values, strict=True))))
        return cls(flags, samples, data_offset, first, version)

    def payload(self) -> bytes:
        out = bytearray(_full_header(self.version, self.flags))
        out += struct.pack(">I", len(self.samples))
        if self.flags & 0x1:
            out += struct.pack(">i", self.data_offset)
        if self.flags & 0x4:
            out += struct.pack(">I", self.first_sample_flags)
        for s in self.samples:
            for bit, name in self._FIELDS:
                if self.flags & bit:
                    signed = name == "composition_offset" and self.version
                    out += struct.pack(">i" if signed else ">I", getattr(s, name))
        return bytes(out)


# --------------------------------------------------------------------------- CENC boxes


@dataclass
class Frma(Box):
    """14496-12 8.12.2 OriginalFormatBox: the sample entry type before encryption."""

    data_format: bytes
    type = b"frma"

    @classmethod
    def parse(cls, p: bytes) -> Frma:
        return cls(p[:4])

    def payload(self) -> bytes:
        return self.data_format


@dataclass
class Schm(Box):
    """14496-12 8.12.5 SchemeTypeBox: 'cenc' or 'cbcs', version 0x00010000 (23001-7 4.2)."""

    scheme_type: bytes
    scheme_version: int = 0x00010000
    type = b"schm"

    @classmethod
    def parse(cls, p: bytes) -> Schm:
        return cls(p[4:8], struct.unpack_from(">I", p, 8)[0])

    def payload(self) -> bytes:
        return _full_header(0, 0) + self.scheme_type + struct.pack(">I", self.scheme_version)


@dataclass
class Tenc(Box):
    """23001-7 8.2 TrackEncryptionBox.

    Version 1 carries the pattern (crypt:skip, 'cbcs'); a per-sample IV size of 0 means
    every sample uses ``default_constant_iv``.
    """

    default_kid: bytes
    default_per_sample_iv_size: int
    default_constant_iv: bytes = b""
    default_is_protected: int = 1
    default_crypt_byte_block: int = 0
    default_skip_byte_block: int = 0
    version: int = 0
    type = b"tenc"

    @classmethod
    def parse(cls, p: bytes) -> Tenc:
        version = p[0]
        crypt = skip = 0
        if version > 0:
            crypt, skip = p[5] >> 4, p[5] & 0xF
        is_protected, iv_size, kid = p[6], p[7], p[8:24]
        constant = b""
        if is_protected and iv_size == 0:
            constant = p[25:25 + p[24]]
        return cls(kid, iv_size, constant, is_protected, crypt, skip, version)

    def payload(self) -> bytes:
        pattern = (self.default_crypt_byte_block << 4) | self.default_skip_byte_block
        out = _full_header(self.version, 0) + bytes(
            [0, pattern if self.version else 0, self.default_is_protected,
             self.default_per_sample_iv_size]) + self.default_kid
        if self.default_is_protected and self.default_per_sample_iv_size == 0:
            out += bytes([len(self.default_constant_iv)]) + self.default_constant_iv
        return out


Subsample = tuple[int, int]  # (BytesOfClearData, BytesOfProtectedData)


@dataclass
class SencEntry:
    iv: bytes  # empty with a constant IV
    subsamples: tuple[Subsample, ...] = ()

    def build(self, with_subsamples: bool) -> bytes:
        out = self.iv
        if with_subsamples:
            out += struct.pack(">H", len(self.subsamples))
            out += b"".join(struct.pack(">HI", c, p) for c, p in self.subsamples)
        return out


@dataclass
class Senc(Box):
    """23001-7 7.2 SampleEncryptionBox. Flag 0x2: entries carry subsample maps."""

    entries: list[SencEntry]
    flags: int = 0
    type = b"senc"
    USE_SUBSAMPLES: ClassVar[int] = 0x2

    @classmethod
    def parse(cls, p: bytes, iv_size: int) -> Senc:
        flags = int.from_bytes(p[1:4], "big")
        count = struct.unpack_from(">I", p, 4)[0]
        pos, entries = 8, []
        for _ in range(count):
            iv = p[pos:pos + iv_size]
            pos += iv_size
            subs: list[Subsample] = []
            if flags & cls.USE_SUBSAMPLES:
                n = struct.unpack_from(">H", p, pos)[0]
                pos += 2
                subs = [struct.unpack_from(">HI", p, pos + 6 * i) for i in range(n)]
                pos += 6 * n
            if pos > len(p):
                raise ValueError("sample entries run past the end of the box")
            entries.append(SencEntry(bytes(iv), tuple(subs)))
        return cls(entries, flags)

    def entry_sizes(self) -> list[int]:
        subs = bool(self.flags & self.USE_SUBSAMPLES)
        return [len(e.build(subs)) for e in self.entries]

    def payload(self) -> bytes:
        subs = bool(self.flags & self.USE_SUBSAMPLES)
        return (_full_header(0, self.flags) + struct.pack(">I", len(self.entries))
                + b"".join(e.build(subs) for e in self.entries))

    # Offset of the first entry from the start of the box (header 8 + fullbox 4 + count 4).
    FIRST_ENTRY_OFFSET: ClassVar[int] = 16


@dataclass
class Saiz(Box):
    """14496-12 8.7.8 SampleAuxiliaryInformationSizesBox (sizes of the senc entries)."""

    sample_count: int
    default_sample_info_size: int = 0
    sample_info_sizes: tuple[int, ...] = ()
    flags: int = 0
    aux_info_type: bytes = b""
    aux_info_type_parameter: int = 0
    type = b"saiz"
    # default_sample_info_size and each sample_info_size are unsigned int(8).
    MAX_SAMPLE_INFO_SIZE: ClassVar[int] = 255

    @classmethod
    def of(cls, sizes: list[int]) -> Saiz:
        for i, size in enumerate(sizes):
            if not 0 <= size <= cls.MAX_SAMPLE_INFO_SIZE:
                raise ValueError(f"sample {i}: {size} bytes of auxiliary information; saiz records "
                                 f"0 to {cls.MAX_SAMPLE_INFO_SIZE} bytes per sample")
        if sizes and all(s == sizes[0] for s in sizes):
            return cls(len(sizes), sizes[0])
        return cls(len(sizes), 0, tuple(sizes))

    @classmethod
    def parse(cls, p: bytes) -> Saiz:
        flags = int.from_bytes(p[1:4], "big")
        pos, aux, param = 4, b"", 0
        if flags & 1:
            aux, param = p[4:8], struct.unpack_from(">I", p, 8)[0]
            pos = 12
        default, count = p[pos], struct.unpack_from(">I", p, pos + 1)[0]
        sizes = tuple(p[pos + 5:pos + 5 + count]) if default == 0 else ()
        return cls(count, default, sizes, flags, aux, param)

    def payload(self) -> bytes:
        out = _full_header(0, self.flags)
        if self.flags & 1:
            out += self.aux_info_type + struct.pack(">I", self.aux_info_type_parameter)
        out += struct.pack(">BI", self.default_sample_info_size, self.sample_count)
        if self.default_sample_info_size == 0:
            out += bytes(self.sample_info_sizes)
        return out


@dataclass
class Saio(Box):
    """14496-12 8.7.9 SampleAuxiliaryInformationOffsetsBox.

    With default-base-is-moof the offset is from the first byte of the moof to the
    first senc entry (23001-7 7.1).
    """

    offsets: tuple[int, ...]
    version: int = 0
    flags: int = 0
    aux_info_type: bytes = b""
    aux_info_type_parameter: int = 0
    type = b"saio"

    @classmethod
    def parse(cls, p: bytes) -> Saio:
        version, flags = p[0], int.from_bytes(p[1:4], "big")
        pos, aux, param = 4, b"", 0
        if flags & 1:
            aux, param = p[4:8], struct.unpack_from(">I", p, 8)[0]
            pos = 12
        count = struct.unpack_from(">I", p, pos)[0]
        fmt = ">Q" if version else ">I"
        width = 8 if version else 4
        offsets = tuple(struct.unpack_from(fmt, p, pos + 4 + width * i)[0] for i in range(count))
        return cls(offsets, version, flags, aux, param)

    def payload(self) -> bytes:
        out = _full_header(self.version, self.flags)
        if self.flags & 1:
            out += self.aux_info_type + struct.pack(">I", self.aux_info_type_parameter)
        out += struct.pack(">I", len(self.offsets))
        fmt = ">Q" if self.version else ">I"
        return out + b"".join(struct.pack(fmt, o) for o in self.offsets)


@dataclass
class Pssh(Box):
    """23001-7 8.1 ProtectionSystemSpecificHeaderBox. Version 1 lists the key ids."""

    system_id: bytes
    data: bytes = b""
    kids: tuple[bytes, ...] = ()
    version: int = 0
    type = b"pssh"

    @classmethod
    def parse(cls, p: bytes) -> Pssh:
        version, system_id, pos = p[0], p[4:20], 20
        kids: list[bytes] = []
        if version > 0:
            n = struct.unpack_from(">I", p, pos)[0]
            kids = [p[pos + 4 + 16 * i:pos + 20 + 16 * i] for i in range(n)]
            pos += 4 + 16 * n
        size = struct.unpack_from(">I", p, pos)[0]
        return cls(system_id, p[pos + 4:pos + 4 + size], tuple(kids), version)

    def payload(self) -> bytes:
        out = _full_header(self.version, 0) + self.system_id
        if self.version > 0:
            out += struct.pack(">I", len(self.kids)) + b"".join(self.kids)
        return out + struct.pack(">I", len(self.data)) + self.data


TYPED: dict[bytes, Callable[[bytes], Box]] = {box.type: box.parse for box in (
    Mfhd, Tfhd, Tfdt, Trun, Frma, Schm, Tenc, Saiz, Saio, Pssh)}


# --------------------------------------------------------------------------- parser


def iter_headers(data: bytes | memoryview, start: int, end: int, file: str,
                 path: str = "") -> Iterator[tuple[bytes, int, int, int, bool]]:
    """(type, box start, payload start, box end, large) for each box in data[start:end]."""
    pos = start
    while pos < end:
        if end - pos < 8:
            raise CorruptMedia(file, path + "?", pos, f"{end - pos} stray bytes where a box header should be")
        size, kind = struct.unpack_from(">I4s", data, pos)
        name = path + kind.decode("latin-1")
        header, large = 8, False
        if size == 1:
            if end - pos < 16:
                raise CorruptMedia(file, name, pos, "truncated 64-bit box header")
            size, header, large = struct.unpack_from(">Q", data, pos + 8)[0], 16, True
        elif size == 0:
            size = end - pos  # 14496-12 4.2: the box extends to the end of the file
        if size < header:
            raise CorruptMedia(file, name, pos, f"box size {size} is smaller than its header")
        if pos + size > end:
            raise CorruptMedia(file, name, pos,
                               f"box of {size} bytes is truncated: only {end - pos} bytes remain")
        yield kind, pos, pos + header, pos + size, large
        pos += size


def parse_boxes(data: bytes | memoryview, file: str = "<memory>", start: int = 0,
                end: int | None = None, path: str = "") -> list[Box]:
    """Parse every box in data[start:end]; raises CorruptMedia naming the box at fault."""
    end = len(data) if end is None else end
    boxes: list[Box] = []
    for kind, pos, body, stop, large in iter_headers(data, start, end, file, path):
        name = path + kind.decode("latin-1")
        box: Box
        try:
            if kind in CONTAINERS or kind in PREFIXED:
                skip = PREFIXED.get(kind, 0)
                if stop - body < skip:
                    raise ValueError(f"needs {skip} bytes of fields, has {stop - body}")
                children = parse_boxes(data, file, body + skip, stop, name + "/")
                box = ContainerBox(kind, children, bytes(data[body:body + skip]), large)
            elif kind in TYPED:
                box = TYPED[kind](bytes(data[body:stop]))
                box.large = large
            else:
                box = RawBox(kind, bytes(data[body:stop]) if kind != b"mdat" else data[body:stop], large)
        except CorruptMedia:
            raise
        except (struct.error, ValueError, IndexError) as e:
            raise CorruptMedia(file, name, pos, f"malformed: {e}") from e
        boxes.append(box)
    return boxes


def build(boxes: list[Box]) -> bytes:
    return b"".join(b.build() for b in boxes)
