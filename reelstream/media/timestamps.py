"""The video's real packet timestamps, sampled: where a container's declared rate cannot be trusted.

Matroska stores no frame rate, only a DefaultDuration (the rate the muxer was told) and each
block's timestamp, rounded to the segment's TimestampScale (1 ms by default). ffprobe's
``avg_frame_rate`` there is the DefaultDuration, so a variable-frame-rate MKV looks constant;
its timestamps do not. Reading every packet's would mean a second pass over the master (the
probe's packet count already reads it all once: minutes for 100 GB), so a few windows are read:
the first and the last (the whole stream's span, which a drift accumulates into) and
``WINDOWS`` in between (a rate that changes and changes back, which the span alone misses).
Each window is one ffprobe seeking to a keyframe and demuxing ``WINDOW_S`` of packets, nothing
decoded: constant cost whatever the master's length or bitrate (measured in the README).
"""

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
# are stored after the frame they reference): the last few timestamps of a window, sorted, may
# have a gap that is only the window's edge. x264's b-pyramid reorders at most 3; HEVC up to 16.
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


def _times(path: Path, interval: str, keep_all: bool) -> Window:
    out = run([tools.ffprobe(), "-v", "error", "-select_streams", "v:0", "-read_intervals", interval,
               "-show_entries", "packet=pts_time", "-of", "csv=p=0", str(path)],
              f"reading frame timestamps of {path.name}")
    times = sorted(Fraction(line.strip().rstrip(",")) for line in out.stdout.splitlines()
                   if line.strip().rstrip(",") not in ("", "N/A"))
    return Window(tuple(times if keep_all else times[:max(0, len(times) - REORDER_SLACK)]))


def sample(path: Path, duration_s: float) -> TimestampSample:
    """The first and last ``WINDOW_S`` of the video's timestamps and ``WINDOWS`` windows between.
    A master too short to space them out is read whole, as one window. Raises MediaCommandFailed."""
    if duration_s <= (WINDOWS + 2) * WINDOW_S * 2:
        whole = _times(path, "%", keep_all=True)
        return TimestampSample(whole, whole, (whole,))
    first = _times(path, f"%+{WINDOW_S:g}", keep_all=False)
    # From WINDOW_S before the end, read to the end: every frame's packet, so no slack is cut.
    last = _times(path, f"{max(0.0, duration_s - WINDOW_S):.3f}%", keep_all=True)
    step = duration_s / (WINDOWS + 1)
    # The read starts at the keyframe before each point and ends at an absolute time (a relative
    # end counts from that keyframe: with long GOPs the window would stop short of its point).
    points = [math.floor(step * i * 1000) / 1000 for i in range(1, WINDOWS + 1)]
    inner = tuple(_times(path, f"{t:.3f}%{t + WINDOW_S:.3f}", keep_all=False) for t in points)
    return TimestampSample(first, last, inner)
