"""Per-title CRF calibration: the fix for per-chunk rate control.

A fresh ABR encode per 2-s chunk restarts rate control and undershoots; a CRF chosen per
title and rung spends bits like a single pass. Each rung is encoded on a few sample
chunks at CRF 23, then at the CRF the rule of thumb (+6 CRF halves the bitrate) predicts
for the rung's bitrate; the CRF that lands on the bitrate is interpolated on log(bitrate)
between those two nearby points (the curve is convex, so a wide bracket undershoots:
measured -26 % with 20/28).

Cost: the two trials encode only the first half of each sample chunk (its IDR frame and
the first half of its GOP, a GOP of their own): measured on the grainy 720p bench master,
the half-chunk bitrates are within 5 % of the whole chunk's at the same CRF (a quarter
chunk: up to +40 % at 240p, the IDR frame weighing more), for half the CPU. The sample
chunks are then encoded whole at the trials' CRF exactly as their jobs would encode them
(VBV cap, threads); those encodes are *kept* as the chunks' final outputs
(``Calibration.kept``) and their bitrate is a third point that refines the CRF of every
other chunk. So the extra cost is one chunk encode per sample (two half ones), one sample
per 30 chunks (1..5). (The kept sample chunks are at the second-step CRF, a little off the
final one; their VBV cap still holds.)
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

from reelstream.media.transcode.chunk import EncodedChunk, encode_chunk
from reelstream.media.transcode.commands import ChunkEncode, RungEncode
from reelstream.media.transcode.grid import Chunk

FIRST_CRF = 23.0
CRF_RANGE = (10.0, 45.0)
TRIAL_FRACTION = Fraction(1, 2)  # of a sample chunk's frames that a trial encodes


@dataclass
class Calibration:
    crfs: dict[str, float] = field(default_factory=dict)  # rendition_id -> CRF
    kept: dict[int, list[EncodedChunk]] = field(default_factory=dict)  # chunk index -> its final outputs
    encode_ms: dict[int, int] = field(default_factory=dict)  # chunk index -> time of its kept encode


def sample_chunks(grid: Sequence[Chunk]) -> list[Chunk]:
    full = [c for c in grid if c.frame_count == grid[0].frame_count] or list(grid)
    count = min(5, max(1, len(full) // 30))
    return [full[(2 * i + 1) * len(full) // (2 * count)] for i in range(count)]


def trial_span(chunk: Chunk) -> Chunk:
    """The part of a sample chunk a trial encodes: its first frames, a closed GOP of their own."""
    return replace(chunk, frame_count=max(1, math.ceil(chunk.frame_count * TRIAL_FRACTION)))


def crf_for(target_kbps: float, low: tuple[float, float], high: tuple[float, float]) -> float:
    """The CRF whose bitrate is ``target_kbps``, from two (crf, kbps) measurements."""
    (c1, b1), (c2, b2) = low, high
    if b1 <= 0 or b2 <= 0 or b1 == b2 or c1 == c2:  # two trials at one (clamped) CRF: no slope
        return c1
    slope = (math.log(b2) - math.log(b1)) / (c2 - c1)
    crf = c1 + (math.log(target_kbps) - math.log(b1)) / slope
    return round(min(max(crf, CRF_RANGE[0]), CRF_RANGE[1]), 2)


def _job(master: Path, fps: Fraction, chunk: Chunk, rungs: Sequence[RungEncode], outdir: Path,
         base: ChunkEncode | None) -> ChunkEncode:
    template = base or ChunkEncode(master=master, fps=fps, start_frame=0, frame_count=0, rungs=(), outputs=())
    return replace(template, master=master, fps=fps, start_frame=chunk.start_frame, frame_count=chunk.frame_count,
                   rungs=tuple(rungs), outputs=tuple(outdir / f"{r.rendition_id}.mp4" for r in rungs))


def _trial(master: Path, fps: Fraction, samples: Sequence[Chunk], rungs: Sequence[RungEncode],
           crfs: Sequence[float], base: ChunkEncode | None, scratch: Path | None) -> list[float]:
    """kbit/s of each rung at its CRF over the first ``TRIAL_FRACTION`` of the sample chunks,
    uncapped, all rungs from one decode."""
    sizes, seconds = [0] * len(rungs), 0.0
    with tempfile.TemporaryDirectory(dir=scratch, prefix="calibrate-") as tmp:
        for whole in samples:
            chunk = trial_span(whole)
            seconds += float(chunk.frame_count / fps)
            trial = [replace(r, crf=crf, bitrate_kbps=100_000) for r, crf in zip(rungs, crfs, strict=True)]
            for i, encoded in enumerate(encode_chunk(_job(master, fps, chunk, trial, Path(tmp), base), scratch)):
                sizes[i] += encoded.size_bytes
    return [size * 8 / 1000 / seconds for size in sizes]


def calibrate(master: Path, fps: Fraction, grid: Sequence[Chunk], rungs: Sequence[RungEncode],
              base: ChunkEncode | None = None, scratch: Path | None = None, trials: int = 2,
              keep_in: Path | None = None) -> Calibration:
    """The calibrated CRF of every rung of one encoder group; with ``keep_in``, the sample
    chunks encoded at those CRFs as their jobs would be, kept there as their final outputs."""
    samples = sample_chunks(grid)
    points: list[list[tuple[float, float]]] = [[] for _ in rungs]
    crfs = [FIRST_CRF] * len(rungs)
    for _ in range(trials):
        for i, kbps in enumerate(_trial(master, fps, samples, rungs, crfs, base, scratch)):
            points[i].append((crfs[i], kbps))
        crfs = [_next_crf(r.bitrate_kbps, p) for r, p in zip(rungs, points, strict=True)]
    # The sample chunks at those CRFs, encoded exactly as their jobs would be (VBV cap included):
    # kept as their final outputs when ``keep_in`` is given, and in any case a third
    # measurement. The curve is convex and a secant through two points undershoots (measured
    # -15..-30 % on grainy 720p), so the other chunks get the CRF refined with this point.
    result = Calibration()
    final = [replace(r, crf=crf) for r, crf in zip(rungs, crfs, strict=True)]
    sizes, seconds = [0] * len(rungs), 0.0
    with tempfile.TemporaryDirectory(dir=scratch, prefix="calibrate-final-") as tmp:
        for chunk in samples:
            outdir = (keep_in or Path(tmp)) / f"{chunk.index:06d}"
            outdir.mkdir(parents=True, exist_ok=True)
            started = time.monotonic()
            encoded = encode_chunk(_job(master, fps, chunk, final, outdir, base), scratch)
            seconds += float(chunk.frame_count / fps)
            for i, out in enumerate(encoded):
                sizes[i] += out.size_bytes
            if keep_in is not None:
                result.kept[chunk.index] = encoded
                result.encode_ms[chunk.index] = int((time.monotonic() - started) * 1000)
    for i, size in enumerate(sizes):
        points[i].append((crfs[i], size * 8 / 1000 / seconds))
    result.crfs = {r.rendition_id: _next_crf(r.bitrate_kbps, p) for r, p in zip(rungs, points, strict=True)}
    return result


def _next_crf(target: float, points: list[tuple[float, float]]) -> float:
    if len(points) == 1:
        crf, kbps = points[0]
        guess = crf + 6 * math.log2(kbps / target) if kbps > 0 else crf
        return round(min(max(guess, CRF_RANGE[0]), CRF_RANGE[1]), 2)
    if len(points) >= 3 and (crf := crf_on_parabola(target, points)) is not None:
        return crf
    above = [p for p in points if p[1] >= target]
    below = [p for p in points if p[1] < target]
    if above and below:  # bracketed: the closest point on each side
        return crf_for(target, max(above, key=lambda p: p[0]), min(below, key=lambda p: p[0]))
    nearest = sorted(points, key=lambda p: abs(math.log(max(p[1], 1e-9) / target)))[:2]
    return crf_for(target, nearest[0], nearest[1])


def crf_on_parabola(target: float, points: Sequence[tuple[float, float]]) -> float | None:
    """The CRF for ``target`` on the parabola in (CRF, log kbit/s) through the three points
    nearest the target: the curve is convex, and a secant through two points undershoots
    (measured on the grainy 720p bench master: a secant between CRF 23 and 25.8 gave a
    720p/3000k rung 2534 kbit/s). None when those points do not make a falling curve there."""
    near = sorted(points, key=lambda p: abs(math.log(max(p[1], 1e-9) / target)))[:3]
    (x0, b0), (x1, b1), (x2, b2) = sorted(near)
    if min(b0, b1, b2) <= 0 or len({x0, x1, x2}) < 3:
        return None
    y0, y1, y2, goal = math.log(b0), math.log(b1), math.log(b2), math.log(target)
    s01, s12 = (y1 - y0) / (x1 - x0), (y2 - y1) / (x2 - x1)
    c = (s12 - s01) / (x2 - x0)
    # y(x) = y0 + s01 t + c t (t - (x1 - x0)), t = x - x0: solve y = goal, on a falling stretch.
    a, b, k = c, s01 - c * (x1 - x0), y0 - goal
    if abs(a) < 1e-9:
        roots = [-k / b] if b else []
    elif (disc := b * b - 4 * a * k) < 0:
        return None
    else:
        roots = [(-b - math.sqrt(disc)) / (2 * a), (-b + math.sqrt(disc)) / (2 * a)]
    falling = [x0 + t for t in roots if 2 * a * t + b < 0 and x0 - 3 <= x0 + t <= x2 + 3]
    if not falling:
        return None
    crf = min(falling, key=lambda x: abs(x - x1))
    return round(min(max(crf, CRF_RANGE[0]), CRF_RANGE[1]), 2)
