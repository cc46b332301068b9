"""Cheap per-segment checks that a decrypted segment is the media the manifest promised.

Run on every segment (they cost a pass over the sample table, not a decode):

- identity: the fragment's ``tfhd`` names the init segment's track and its ``mfhd``
  sequence number is the segment's number (ReelStream's packager writes one fragment per
  segment, numbered as the manifest numbers segments);
- timing: the fragment's ``tfdt`` is the segment's start and its sample durations add
  up to the segment's duration (within one HLS ``EXTINF`` millisecond);
- video (H.264/HEVC, 4-byte NAL lengths, ISO/IEC 14496-15): every sample is a chain of
  NAL units that exactly fills it, with ``forbidden_zero_bit`` clear, and the segment
  starts with an IDR/IRAP picture (every segment is a closed GOP);
- audio (AAC, ISO/IEC 14496-3 §4.5.2.1): every raw data block starts with a single or
  channel pair element (or a fill element). AAC is encrypted whole-sample, so a wrong key
  leaves the first 3 bits random: a 2-s segment of ~94 frames passes by chance with
  p = (3/8)^94.

Video slice data cannot be checked this cheaply (the NAL headers are in the clear
subsamples); :mod:`.decode` decodes a segment with ffmpeg for that, which the session
does on the first segment of every rendition when asked.
"""

from __future__ import annotations

from dataclasses import dataclass

from reelstream.player.client.decrypt import ClearSegment, TrackInfo
from reelstream.player.client.errors import SegmentInvalid

HEVC_CODECS = ("hvc1", "hev1")
AAC_FIRST_ELEMENTS = (0, 1, 6)  # ID_SCE, ID_CPE, ID_FIL (encoders lead priming frames with fill)


@dataclass(frozen=True)
class Expected:
    number: int
    start_s: float
    duration_s: float


def check_segment(segment: ClearSegment, info: TrackInfo, expected: Expected, url: str) -> int:
    """Raise SegmentInvalid naming the first thing wrong; returns the sample count."""
    table = segment.table
    if segment.track_id != info.track_id:
        raise SegmentInvalid(f"segment {expected.number} ({url}): fragment of track {segment.track_id}, the init "
                             f"segment describes track {info.track_id}")
    if segment.sequence != expected.number:
        raise SegmentInvalid(f"segment {expected.number} ({url}): fragment sequence number {segment.sequence}: "
                             "not the segment asked for")
    if not table.sizes:
        raise SegmentInvalid(f"segment {expected.number} ({url}): no samples")
    tolerance = max(1, round(0.0015 * info.timescale))  # EXTINF carries milliseconds
    start = round(expected.start_s * info.timescale)
    if abs(segment.decode_time - start) > tolerance:
        raise SegmentInvalid(f"segment {expected.number} ({url}): decode time {segment.decode_time} "
                             f"!= expected {start} ({expected.start_s:.3f} s): not the segment asked for")
    duration = sum(table.durations)
    if abs(duration - round(expected.duration_s * info.timescale)) > tolerance:
        raise SegmentInvalid(f"segment {expected.number} ({url}): samples last {duration / info.timescale:.3f} s, "
                             f"the manifest says {expected.duration_s:.3f} s")
    data = memoryview(segment.data)
    samples = [data[segment.mdat_start + o:segment.mdat_start + o + s]
               for o, s in zip(table.offsets, table.sizes, strict=True)]
    if info.kind == "video":
        _check_video(samples, info.codec in HEVC_CODECS, expected.number, url)
    elif info.codec == "mp4a":
        for i, sample in enumerate(samples):
            if sample and sample[0] >> 5 not in AAC_FIRST_ELEMENTS:
                raise SegmentInvalid(f"segment {expected.number} ({url}): AAC frame {i} starts with element "
                                     f"{sample[0] >> 5}, not SCE/CPE/FIL: it did not decrypt (wrong key?)")
    return len(samples)


def _check_video(samples: list[memoryview], hevc: bool, number: int, url: str) -> None:
    for i, sample in enumerate(samples):
        types = nal_types(sample, hevc)
        if types is None:
            raise SegmentInvalid(f"segment {number} ({url}): video sample {i} is not a chain of NAL units")
        if i == 0 and not any(_is_random_access(t, hevc) for t in types):
            raise SegmentInvalid(f"segment {number} ({url}): the first picture is not an IDR/IRAP picture "
                                 f"(NAL types {types})")


def nal_types(sample: memoryview | bytes, hevc: bool) -> list[int] | None:
    """The NAL unit types of a length-prefixed sample, or None when the lengths do not
    exactly fill it or a NAL has its forbidden bit set."""
    pos, types = 0, []
    while pos < len(sample):
        if pos + 5 > len(sample):
            return None
        length = int.from_bytes(sample[pos:pos + 4], "big")
        header = sample[pos + 4]
        if length == 0 or pos + 4 + length > len(sample) or header & 0x80:
            return None
        types.append((header >> 1) & 0x3F if hevc else header & 0x1F)
        pos += 4 + length
    return types


def _is_random_access(nal_type: int, hevc: bool) -> bool:
    return 16 <= nal_type <= 21 if hevc else nal_type == 5
