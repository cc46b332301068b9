"""The video's real packet timestamps, sampled: where a container's declared rate cannot be trusted.

Matroska stores no frame rate, only a DefaultDuration (the rate the muxer was told) and each
block's timestamp, rounded to the segment's TimestampScale (1 ms by default). ffprobe's
``avg_frame_rate`` there is the DefaultDuration (in MPEG-TS a guess from the first frames), so a
variable-frame-rate master looks constant; its timestamps do not. Reading every packet's would
mean a second pass over the master (the probe's packet count already reads it all once: minutes
for 100 GB), so a few windows are read: the first and the last (the whole stream's span, which
a drift accumulates into) and ``WINDOWS`` in between (a rate that changes and changes back, which
the span alone misses). Each window is one ffprobe seeking and demuxing ``WINDOW_S`` of packets,
nothing decoded: constant cost whatever the master's length or bitrate (measured in the README)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from reelstream.media import tools
from reelstream.media.transcode.run import run

WINDOWS = 8  # evenly spaced between the first and the last window
WINDOW_S = 4.0
# A packet whose picture falls in the window can come after the window's last packet (B-frames
# are stored after the frame they reference), or before its first: the first and last few
# timestamps of a window, sorted, may have a gap that is only the window's edge. x264's
# b-pyramid reorders at most 3 frames; HEVC up to 16.
REORDER_SLACK = 16


@dataclass(frozen=True)
class Window:
    """Consecutive frames of a stretch of the master: their sorted timestamps in seconds."""

    times: tuple[Fraction, ...]

    def drift(self, rate: Fraction) -> tuple[Fraction, int]:
        """The largest gap, in seconds, between a frame's timestamp and where the nominal ``rate``
        puts it (counted from the window's first frame), and that frame's index in the window.
        A constant-rate stream's is its timestamp rounding (under 1 ms in Matroska)."""
        if not self.times or rate <= 0:
            return Fraction(0), 0
        first = self.times[0]
        return max(((abs(t - first - Fraction(j) / rate), j) for j, t in enumerate(self.times)),
                   key=lambda x: x[0])


@dataclass(frozen=True)
class TimestampSample:
    first: Window
    last: Window
    inner: tuple[Window, ...]

    def span(self, rate: Fraction) -> Fraction | None:
        """From the first frame's timestamp to the end of the last frame (one nominal frame after
        its timestamp): what the video's frames really run. None when a window came back empty."""
        if not self.first.times or not self.last.times or rate <= 0:
            return None
        return self.last.times[-1] + 1 / rate - self.first.times[0]


def _times(path: Path, interval: str, head: bool, tail: bool) -> Window:
    """The sorted timestamps of the packets ``interval`` reads, less the first and the last
    ``REORDER_SLACK`` where the read begins (``head``) or ends (``tail``) mid-stream: a seek that
    lands mid-GOP (MPEG-TS seeks by timestamp, not to a keyframe) misses the pictures stored
    before it but shown after, and a read that stops misses those stored after its end."""
    out = run([tools.ffprobe(), "-v", "error", "-select_streams", "v:0", "-read_intervals", interval,
               "-show_entries", "packet=pts_time", "-of", "csv=p=0", str(path)],
              f"reading frame timestamps of {path.name}")
    times = sorted(Fraction(line.strip().rstrip(",")) for line in out.stdout.splitlines()
                   if line.strip().rstrip(",") not in ("", "N/A"))
    cut = REORDER_SLACK if head else 0
    return Window(tuple(times[cut:len(times) - REORDER_SLACK if tail else len(times)]))


# EBML element ids (Matroska, RFC 9559 §5.1): Segment, SeekHead, Seek, SeekID, and Cues.
SEGMENT, SEEK_HEAD, SEEK, SEEK_ID, CUES = 0x18538067, 0x114D9B74, 0x4DBB, 0x53AB, 0x1C53BB6B


def _vint(data: bytes, at: int, keep_marker: bool) -> tuple[int, int]:
    """An EBML variable-size integer at ``at`` (RFC 8794 §4): (value, offset after it)."""
    if at >= len(data) or data[at] == 0:
        raise ValueError("not EBML")
    length = 9 - data[at].bit_length()
    value = int.from_bytes(data[at:at + length], "big")
    return (value if keep_marker else value & ((1 << (7 * length)) - 1)), at + length


def matroska_has_cues(path: Path) -> bool:
    """Whether the Matroska file's SeekHead points at a Cues element (its index), as the demuxer
    finds it. Without one, ffmpeg seeks by reading from the start: measured on a 2-hour MKV
    piped out of ffmpeg (no Cues), a window at 3,200 s read 144 MB, at 6,400 s 295 MB of 330."""
    with path.open("rb") as f:
        data = f.read(256 * 1024)
    try:
        ident, at = _vint(data, 0, keep_marker=True)
        size, at = _vint(data, at, keep_marker=False)
        at += size  # the EBML header
        ident, at = _vint(data, at, keep_marker=True)
        if ident != SEGMENT:
            return False
        _, at = _vint(data, at, keep_marker=False)  # the Segment's size (often "unknown")
        while at < len(data):
            ident, at = _vint(data, at, keep_marker=True)
            size, at = _vint(data, at, keep_marker=False)
            if ident == SEEK_HEAD:
                return CUES.to_bytes(4, "big") in _seek_ids(data[at:at + size])
            at += size  # a Void, the SegmentInfo, ...: the SeekHead comes first in practice
    except ValueError:
        pass
    return False


def _seek_ids(head: bytes) -> list[bytes]:
    ids, at = [], 0
    while at < len(head):
        ident, at = _vint(head, at, keep_marker=True)
        size, at = _vint(head, at, keep_marker=False)
        if ident == SEEK:
            inner = head[at:at + size]
            pos = 0
            while pos < len(inner):
                child, pos = _vint(inner, pos, keep_marker=True)
                length, pos = _vint(inner, pos, keep_marker=False)
                if child == SEEK_ID:
                    ids.append(inner[pos:pos + length])
                pos += length
        at += size
    return ids


def sample(path: Path, duration_s: float, indexed: bool = True) -> TimestampSample:
    """The first and last ``WINDOW_S`` of the video's timestamps and ``WINDOWS`` windows between.
    A master too short to space them out is read whole, as one window; so is one without an
    index to seek by (``indexed`` false: a Matroska file without Cues, where each window's seek
    would read from the start, five passes over the file where this is one). Raises
    MediaCommandFailed."""
    if not indexed or duration_s <= (WINDOWS + 2) * WINDOW_S * 2:
        whole = _times(path, "%", head=False, tail=False)
        return TimestampSample(whole, whole, (whole,))
    first = _times(path, f"%+{WINDOW_S:g}", head=False, tail=True)
    # Seek points are timestamps, counted from the first frame's: a master stamped from its
    # timecode (MPEG-TS, MXF at 10:00:00:00) put every point before its start, and the last
    # window, read to the end, read the whole file.
    base = float(first.times[0]) if first.times else 0.0
    # From WINDOW_S before the end, read to the end: no slack cut there.
    last = _times(path, f"{base + max(0.0, duration_s - WINDOW_S):.3f}%", head=True, tail=False)
    step = duration_s / (WINDOWS + 1)
    # The read starts at the keyframe before each point and ends at an absolute time (a relative
    # end counts from that keyframe: with long GOPs the window would stop short of its point).
    points = [base + math.floor(step * i * 1000) / 1000 for i in range(1, WINDOWS + 1)]
    inner = tuple(_times(path, f"{t:.3f}%{t + WINDOW_S:.3f}", head=True, tail=True) for t in points)
    return TimestampSample(first, last, inner)
