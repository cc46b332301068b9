"""Which bytes of a sample stay clear: the subsample maps of ISO/IEC 23001-7 9.5.

Video (NAL-structured, 9.5.2): every NAL unit that is not a video slice stays clear,
and so do the length prefix, the NAL unit header and the slice header of every slice.
For 'cenc', CMAF (ISO/IEC 23000-19 8.2.3.2) requires BytesOfProtectedData to be a
multiple of 16, so protection starts right after the slice header and the odd tail
of each slice stays clear, counted with the clear bytes of the next subsample (as
Shaka Packager 3.8 does; the keystream then stays block aligned from one sample to the next, which
is also what lets ReelStream encrypt a whole fragment in one AES call). 'cbcs' starts
protection right after the slice header; its partial last block is left clear by the
pattern itself (10.4.2).

HEVC follows the same rules (23001-7 10.2, 10.4.2): its NAL unit header is two bytes
and the clear part of a VCL NAL unit is the slice segment header (``hevc.py``).

Audio is whole-sample encrypted: no subsample map (``None``).
"""

from __future__ import annotations

from collections.abc import Callable

from reelstream.media.encrypt import hevc
from reelstream.media.encrypt.h264 import H264Error, ParameterSets
from reelstream.media.package.boxes import Subsample

_MAX_CLEAR = 0xFFFF  # BytesOfClearData is 16 bits (23001-7 7.2.1)


class SubsampleError(ValueError):
    """A sample's NAL units or slice headers cannot be parsed."""


def organize(pairs: list[tuple[int, int]], align: bool) -> tuple[Subsample, ...]:
    """Merge clear-only runs into the next subsample, split clear runs over 65535 bytes,
    and (``align``) leave the unaligned tail of each protected run clear."""
    out: list[Subsample] = []
    clear_acc = 0
    for clear, protected in pairs:
        tail = protected % 16 if align else 0
        clear_acc += clear
        if protected - tail == 0:
            clear_acc += protected
            continue
        while clear_acc > _MAX_CLEAR:
            out.append((_MAX_CLEAR, 0))
            clear_acc -= _MAX_CLEAR
        out.append((clear_acc, protected - tail))
        clear_acc = tail  # the unaligned end of the slice stays clear
    while clear_acc > _MAX_CLEAR:
        out.append((_MAX_CLEAR, 0))
        clear_acc -= _MAX_CLEAR
    if clear_acc:
        out.append((clear_acc, 0))
    return tuple(out)


def _nal_pairs(sample: memoryview, length_size: int,
               header_size: Callable[[memoryview], int]) -> list[tuple[int, int]]:
    """(clear, protected) per length-prefixed NAL unit (14496-15 4.3.2); ``header_size``
    says how many bytes of a NAL unit stay clear."""
    pairs: list[tuple[int, int]] = []
    pos, end, n = 0, len(sample), length_size
    while pos < end:
        if pos + n > end:
            raise SubsampleError(f"NAL length field cut at byte {pos} of {end}")
        size = int.from_bytes(sample[pos:pos + n], "big")
        if size < 2 or pos + n + size > end:
            raise SubsampleError(f"NAL unit of {size} bytes at byte {pos} overruns the sample ({end})")
        try:
            header = min(header_size(sample[pos + n:pos + n + size]), size)
        except ValueError as e:  # H264Error, HevcError
            raise SubsampleError(f"NAL unit at byte {pos}: {e}") from e
        pairs.append((n + header, size - header))
        pos += n + size
    return pairs


class HevcSubsampler:
    """Subsample maps for HEVC samples (``hvc1``/``hev1``, 14496-15 8)."""

    def __init__(self, hvcc: bytes, align: bool) -> None:
        self.params, self.length_size = hevc.ParameterSets.from_hvcc(hvcc)
        self.align = align

    def _clear_bytes(self, nal: memoryview) -> int:
        kind = hevc.nal_type(nal)
        if kind in (hevc.SPS, hevc.PPS):
            self.params.add(nal)  # in-band parameter sets ('hev1') change later headers
        if hevc.is_vcl(kind):
            return self.params.slice_header_size(nal)
        return len(nal)

    def map(self, sample: memoryview) -> tuple[Subsample, ...]:
        return organize(_nal_pairs(sample, self.length_size, self._clear_bytes), self.align)


class AvcSubsampler:
    """Subsample maps for H.264 samples (length-prefixed NAL units, 14496-15 5.3.2)."""

    def __init__(self, avcc: bytes, align: bool) -> None:
        self.params, self.length_size = ParameterSets.from_avcc(avcc)
        self.align = align

    def map(self, sample: memoryview) -> tuple[Subsample, ...]:
        pairs: list[tuple[int, int]] = []
        pos, end, n = 0, len(sample), self.length_size
        while pos < end:
            if pos + n > end:
                raise SubsampleError(f"NAL length field cut at byte {pos} of {end}")
            size = int.from_bytes(sample[pos:pos + n], "big")
            if size == 0 or pos + n + size > end:
                raise SubsampleError(f"NAL unit of {size} bytes at byte {pos} overruns the sample ({end})")
            nal = sample[pos + n:pos + n + size]
            kind = nal[0] & 0x1F
            try:
                if kind in (7, 8):
                    self.params.add(bytes(nal))  # in-band parameter sets change later headers
                header = self.params.slice_header_size(nal) if 1 <= kind <= 5 else size
            except H264Error as e:
                raise SubsampleError(f"NAL unit type {kind} at byte {pos}: {e}") from e
            header = min(header, size)
            pairs.append((n + header, size - header))
            pos += n + size
        return organize(pairs, self.align)
