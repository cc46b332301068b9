"""The fixed 2-second chunk grid, in frames, so chunk boundaries are frame-exact.

The grid is defined on frame indices (chunk ``i`` holds frames ``i*F .. i*F+F-1`` with
``F = round(2 s * fps)``), never on the master's keyframes: every chunk is decoded from an
accurate seek, and the last chunk is shorter.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

CHUNK_SECONDS = 2


@dataclass(frozen=True)
class Chunk:
    index: int
    start_frame: int
    frame_count: int

    def start_ms(self, fps: Fraction) -> int:
        return int(self.start_frame * 1000 / fps)

    def duration_ms(self, fps: Fraction) -> int:
        return round(self.frame_count * 1000 / fps)


def chunk_frames(fps: Fraction, seconds: int = CHUNK_SECONDS) -> int:
    return max(1, round(fps * seconds))


def chunk_grid(frame_count: int, fps: Fraction, seconds: int = CHUNK_SECONDS) -> list[Chunk]:
    size = chunk_frames(fps, seconds)
    return [Chunk(i, start, min(size, frame_count - start))
            for i, start in enumerate(range(0, frame_count, size))]


def seek_seconds(start_frame: int, fps: Fraction) -> float:
    """Where to seek so the first decoded frame is ``start_frame``: half a frame early, so
    rounding of the frame's timestamp can neither drop it nor let the previous one in."""
    if start_frame <= 0:
        return 0.0
    return float((start_frame - Fraction(1, 2)) / fps)
