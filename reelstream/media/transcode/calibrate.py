"""Per-title CRF calibration: the fix for per-chunk rate control.

A fresh ABR encode per 2-s chunk restarts rate control and undershoots; a CRF chosen per
title and rung spends bits like a single pass. Three steps per encoder group:

1. **Shape.** Three trial encodes of the first ``TRIAL_FRAMES`` of one sample chunk (its
   IDR frame and the group of four after it, a GOP of their own), uncapped, all rungs from
   one decode, no quality measured, each read as the rate of a whole chunk (the IDR frame
   once, the others' mean for the rest: ``whole_chunk_kbps``): at CRF 23, at the CRF the
   rule of thumb (+6 CRF halves the bitrate) predicts, then at the CRF interpolated on
   log(bitrate) between the two. The third narrows the bracket: on grain the curve is far from log-linear (measured on the bench
   master, 480p: -0.38 per CRF between CRF 21 and 23, -0.15 between 27 and 29), and a
   secant across a wide bracket missed the rate by up to 30 %. The trials give each rung a
   provisional CRF, the local slope there and the curve's curvature (``trial_curvature``:
   the three encode the same frames, so it is the curve's own bend, not content noise).
   Read by plain size, a short span spends more
   per second than a whole chunk (its IDR frame weighs more: a third of the bench master's
   span read 6-25 % high); read as a whole chunk, a sixth places the CRF as near, for half
   the trials' CPU (bench master: worst rung -3.3 % instead of -5.7 %), and five frames as
   near again, for another third (every rung calibrated and every chunk encoded: bench
   master worst rung +1.3 % with five, -2.3 % with eight; 60-s 1080p master +4.4 % / +5.3 %).
2. **Level.** Level samples spread over the title (one per ``SAMPLE_EVERY`` chunks, 1 to
   ``MAX_SAMPLES``, at golden-ratio offsets in their stretches: no stride to alias with
   content that repeats) are encoded whole exactly as their jobs would be (VBV cap,
   threads), alternately at the provisional CRF -/+ ``LEVEL_SPREAD``. With ``keep_in`` they
   are *kept* as those chunks' final outputs (``Calibration.kept``): they cost nothing
   extra. The two groups give the title's mean rate at the provisional CRF (on the grainy
   bench master chunks differ by +-10 % at one CRF: one sample left rungs 4-12 % under
   target) and the slope of whole, capped chunks, which the short trials flatten.
3. **Correction.** One step per rung from that mean rate, along that slope and curvature
   (a parabola: a straight step overshoots a convex curve either way), to the rate the
   *other* chunks must average for the whole title to average the target (the kept
   samples, a little off target, are compensated). The groups' geometric middle is first
   lowered by the curvature's share (``level_fit``): without both, every rung of both test
   masters came out under target (down to -5.2 % on the 60-s 1080p master).

Cost: the trials, three encodes of five frames (with their start-up, about a third of a
chunk encode's worth) per encoder group and title; the level samples replace jobs. Run by
the ingest, the samples are encoded ``parallel`` at a time.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

from reelstream.cpus import usable_cores
from reelstream.media.package.boxes import ContainerBox, parse_boxes
from reelstream.media.package.errors import CorruptMedia
from reelstream.media.package.remux import read_samples
from reelstream.media.transcode.chunk import EncodedChunk, encode_chunk
from reelstream.media.transcode.commands import ChunkEncode, RungEncode
from reelstream.media.transcode.grid import Chunk

log = logging.getLogger(__name__)

FIRST_CRF = 23.0
CRF_RANGE = (10.0, 45.0)
# Frames a trial encodes: the IDR frame and one group of x264's (veryfast) three B-frames and
# their P-frame, so the others' mean has the mix of frame types a whole chunk has.
TRIAL_FRAMES = 5
TRIALS = 3
SAMPLE_EVERY = 3  # chunks per level sample
MAX_SAMPLES = 10
RULE_OF_THUMB_SLOPE = -math.log(2) / 6  # d log(kbit/s) / d CRF: +6 CRF halves the bitrate
GOAL_RANGE = (0.8, 1.25)  # of the target: what the other chunks may be asked to average
LEVEL_SPREAD = 0.75  # CRF between the provisional CRF and each level group
SLOPE_RANGE = (-1.5, -0.02)  # plausible d log(kbit/s) / d CRF from the level groups
CURVATURE_MAX = 0.1  # d2 log(kbit/s) / d CRF2 taken from the trials (bench master, 480p: ~0.04)
GOLDEN = (math.sqrt(5) - 1) / 2  # sample offsets within their stretches: no two alike, no cycle


@dataclass
class Calibration:
    crfs: dict[str, float] = field(default_factory=dict)  # rendition_id -> CRF
    kept: dict[int, list[EncodedChunk]] = field(default_factory=dict)  # chunk index -> its final outputs
    encode_ms: dict[int, int] = field(default_factory=dict)  # chunk index -> time of its kept encode


def sample_chunks(grid: Sequence[Chunk], count: int | None = None) -> list[Chunk]:
    """``count`` full-length chunks spread over the title, one in each of ``count`` equal
    stretches, at a different place in each (golden-ratio offsets); by default one per
    ``SAMPLE_EVERY`` chunks, 1 to ``MAX_SAMPLES``. Evenly strided samples alias with content
    that repeats: on the 1080p test master every sample fell on the cheap third of a 3-chunk
    cycle, and the title came out 12 % over target at 240p."""
    full = [c for c in grid if c.frame_count == grid[0].frame_count] or list(grid)
    count = min(len(full), count or min(MAX_SAMPLES, max(1, len(full) // SAMPLE_EVERY)))
    return [full[int((i + (GOLDEN * (i + 1)) % 1) * len(full) / count)] for i in range(count)]


def trial_span(chunk: Chunk) -> Chunk:
    """The part of a sample chunk a trial encodes: its first frames, a closed GOP of their own."""
    return replace(chunk, frame_count=min(chunk.frame_count, TRIAL_FRAMES))


def sample_sizes(path: Path) -> list[int]:
    """The size of every video sample of an encoded chunk, in decode order (its ``stsz``)."""
    moov = next((b for b in parse_boxes(path.read_bytes(), str(path)) if b.type == b"moov"), None)
    if not isinstance(moov, ContainerBox):
        raise CorruptMedia(str(path), "moov", 0, "missing")
    return read_samples(moov, str(path)).sizes


def whole_chunk_kbps(sizes: Sequence[int], chunk_frames: int, fps: Fraction) -> float:
    """The rate of a whole chunk of ``chunk_frames``, from a trial's first frames (``sizes``,
    decode order): a chunk holds one IDR frame and ``chunk_frames - 1`` others, so the IDR
    counts once and the others' mean ``chunk_frames - 1`` times. The span's plain rate
    weighs the IDR frame once per span instead: 8 frames of the bench master read 13-46 %
    above the whole chunk's rate, this 0-25 %, either way (measured at CRF 23)."""
    others = (sum(sizes[1:]) / (len(sizes) - 1)) if len(sizes) > 1 else sizes[0]
    return (sizes[0] + others * (chunk_frames - 1)) * 8 / 1000 / float(chunk_frames / fps)


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


def _trial(master: Path, fps: Fraction, sample: Chunk, rungs: Sequence[RungEncode], crfs: Sequence[float],
           base: ChunkEncode | None, scratch: Path | None) -> list[float]:
    """kbit/s of each rung at its CRF, for the whole sample chunk as estimated from its first
    ``TRIAL_FRAMES`` (``whole_chunk_kbps``), uncapped, all rungs from one decode; no quality
    measured (nobody reads it). Rungs of one size at one CRF (the first trial's CRF for two
    rungs of one resolution) are one encode: uncapped, they would be the same bytes."""
    chunk = trial_span(sample)
    encodes = list(dict.fromkeys(trial_encode(rung, crf) for rung, crf in zip(rungs, crfs, strict=True)))
    with tempfile.TemporaryDirectory(dir=scratch, prefix="calibrate-") as tmp:
        job = replace(_job(master, fps, chunk, encodes, Path(tmp), base), measure=False)
        kbps = {encode: whole_chunk_kbps(sample_sizes(encoded.path), sample.frame_count, fps)
                for encode, encoded in zip(encodes, encode_chunk(job, scratch), strict=True)}
    return [kbps[trial_encode(rung, crf)] for rung, crf in zip(rungs, crfs, strict=True)]


def trial_encode(rung: RungEncode, crf: float) -> RungEncode:
    """A rung as a trial encodes it: at ``crf``, uncapped, named by what it encodes (its size,
    CRF and codec), so that two rungs whose trials would be the same encode are one."""
    return replace(rung, rendition_id=f"trial-{rung.codec}{'-hdr' if rung.hdr else ''}-{rung.width}x{rung.height}-crf{crf:.2f}", crf=crf,
                   bitrate_kbps=100_000)


def calibrate(master: Path, fps: Fraction, grid: Sequence[Chunk], rungs: Sequence[RungEncode],
              base: ChunkEncode | None = None, scratch: Path | None = None, keep_in: Path | None = None,
              parallel: int | None = None) -> Calibration:
    """The calibrated CRF of every rung of one encoder group. With ``keep_in``, the level
    samples are encoded there as their jobs would be and kept as their final outputs;
    without it they would be pure cost, so only the trials' chunk is encoded whole."""
    samples = sample_chunks(grid)
    trial_chunk = samples[len(samples) // 2]
    points: list[list[tuple[float, float]]] = [[] for _ in rungs]
    crfs = [FIRST_CRF] * len(rungs)
    for _ in range(TRIALS):
        for i, kbps in enumerate(_trial(master, fps, trial_chunk, rungs, crfs, base, scratch)):
            points[i].append((crfs[i], kbps))
        crfs = [_next_crf(r.bitrate_kbps, p) for r, p in zip(rungs, points, strict=True)]
    level = samples if keep_in is not None else [trial_chunk]
    # Two level groups, alternate samples at CRF -/+ LEVEL_SPREAD: the slope of the whole,
    # capped chunks' curve, which short trials flatten (measured at 240p: -0.135 per CRF from
    # the trials, about -0.23 on whole chunks, and the title 10 % over).
    spread = LEVEL_SPREAD if len(level) >= 2 else 0.0
    sides = [(-1 if n % 2 else 1) for n in range(len(level))]
    done = _encode_level(master, fps, level, [[replace(r, crf=round(crf + side * spread, 2))
                                               for r, crf in zip(rungs, crfs, strict=True)] for side in sides],
                         base, scratch, keep_in, parallel)
    result = Calibration()
    if keep_in is not None:
        result.kept = {chunk.index: encoded for chunk, encoded, _ in done}
        result.encode_ms = {chunk.index: ms for chunk, _, ms in done}
    title_s = float(sum(c.frame_count for c in grid) / fps)
    level_s = float(sum(chunk.frame_count for chunk, _, _ in done) / fps)
    for i, rung in enumerate(rungs):
        level_kbits = sum(encoded[i].size_bytes for _, encoded, _ in done) * 8 / 1000
        curvature = trial_curvature(points[i])
        mean, slope = level_fit([(side, float(chunk.frame_count / fps), encoded[i].size_bytes * 8 / 1000)
                                 for (chunk, encoded, _), side in zip(done, sides, strict=True)], spread,
                                trial_slope(_pair(rung.bitrate_kbps, points[i])), curvature)
        kept_s, kept_kbits = (level_s, level_kbits) if keep_in is not None else (0.0, 0.0)
        crf = corrected_crf(rung.bitrate_kbps, crfs[i], mean, slope, title_s, kept_s, kept_kbits, curvature)
        result.crfs[rung.rendition_id] = crf
        log.info("calibrated %s (%d kbit/s): trials %s (curvature %.3f), level samples at CRF %.2f +- %.2f: "
                 "%.0f kbit/s, slope %.3f -> CRF %.2f", rung.rendition_id, rung.bitrate_kbps,
                 [(c, round(b)) for c, b in points[i]], curvature, crfs[i], spread, mean, slope, crf)
    return result


def level_fit(samples: Sequence[tuple[int, float, float]], spread: float, fallback_slope: float,
              curvature: float = 0.0) -> tuple[float, float]:
    """(kbit/s at the provisional CRF, slope) from level samples (side -1/+1 of it at
    ``spread`` CRF, seconds, kbits): the groups' mean rates, their geometric middle and the
    slope between them; the trials' slope (``fallback_slope``) when there is one group or
    the two give an implausible slope (content differences between them can swamp it).

    log(rate) is convex in CRF (``curvature``, from the trials): the mean of its values at
    CRF -/+ spread lies ``curvature * spread**2 / 2`` above its value in the middle, so the
    geometric middle is lowered by that; uncorrected, it read ~1 % high and every rung of
    both test masters came out under target (-0.1 ... -5.2 %)."""
    groups = {side: (sum(s for g, s, _ in samples if g == side), sum(k for g, _, k in samples if g == side))
              for side in (-1, 1)}
    rates = {side: kbits / seconds for side, (seconds, kbits) in groups.items() if seconds > 0 and kbits > 0}
    if spread <= 0 or len(rates) < 2:
        seconds = sum(s for _, s, _ in samples)
        return (sum(k for _, _, k in samples) / seconds if seconds else 0.0), fallback_slope
    slope = (math.log(rates[1]) - math.log(rates[-1])) / (2 * spread)
    middle = math.exp((math.log(rates[1]) + math.log(rates[-1])) / 2 - curvature * spread ** 2 / 2)
    return middle, (slope if SLOPE_RANGE[0] <= slope <= SLOPE_RANGE[1] else fallback_slope)


def _encode_level(master: Path, fps: Fraction, level: Sequence[Chunk], rungs: Sequence[Sequence[RungEncode]],
                  base: ChunkEncode | None, scratch: Path | None, keep_in: Path | None,
                  parallel: int | None) -> list[tuple[Chunk, list[EncodedChunk], int]]:
    """The level samples, whole, as their jobs would encode them, each with its rungs
    (``parallel`` at a time, default one per core): (chunk, outputs, encode ms) each, in
    ``level`` order."""
    slots = max(1, min(len(level), parallel or usable_cores()))
    pin = _core_per_thread(slots) if base is not None and base.threads == 1 else None
    with tempfile.TemporaryDirectory(dir=scratch, prefix="calibrate-level-") as tmp:

        def encode(chunk: Chunk, encodes: Sequence[RungEncode]) -> tuple[Chunk, list[EncodedChunk], int]:
            if pin:
                pin()
            outdir = (keep_in or Path(tmp)) / f"{chunk.index:06d}"
            outdir.mkdir(parents=True, exist_ok=True)
            started = time.monotonic()
            encoded = encode_chunk(_job(master, fps, chunk, encodes, outdir, base), scratch)
            return chunk, encoded, int((time.monotonic() - started) * 1000)

        with ThreadPoolExecutor(max_workers=slots) as pool:
            return list(pool.map(encode, level, rungs))


def _core_per_thread(slots: int) -> Callable[[], None] | None:
    """A function that binds the calling thread, and so the ffmpeg it starts, to a core of its
    own (the first call in each thread takes the next core). The kept samples stand in for
    worker jobs, and a worker runs its jobs pinned (``workers/pool.py``); left to the
    scheduler, each one-thread encode's threads (decoder, filter graph, an encoder per rung)
    would move between the cores beside the other encode's. None where there are fewer cores
    than slots or the platform cannot pin."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < slots:
        return None
    free, lock, local = iter(cores), threading.Lock(), threading.local()

    def pin() -> None:
        if getattr(local, "core", None) is None:
            with lock:
                local.core = next(free)
            try:
                os.sched_setaffinity(0, {local.core})  # this thread only; its children inherit it
            except OSError:
                pass  # not allowed here (some containers): unpinned still works
    return pin


def trial_slope(points: Sequence[tuple[float, float]]) -> float:
    """d log(kbit/s) / d CRF between two trials; the rule of thumb when they give none
    (one clamped CRF, a still image that never reaches its rate)."""
    (c1, b1), (c2, b2) = points[0], points[-1]
    if c1 == c2 or b1 <= 0 or b2 <= 0:
        return RULE_OF_THUMB_SLOPE
    slope = (math.log(b2) - math.log(b1)) / (c2 - c1)
    return slope if slope < 0 else RULE_OF_THUMB_SLOPE


def trial_curvature(points: Sequence[tuple[float, float]]) -> float:
    """d2 log(kbit/s) / d CRF2 through three trials (twice their second divided difference),
    within 0 .. ``CURVATURE_MAX``; 0 without three distinct CRFs. The trials encode the same
    frames, so it is the curve's own bend, not content noise."""
    pts = sorted((c, b) for c, b in points if b > 0)
    if len(pts) != 3 or len({c for c, _ in pts}) < 3:
        return 0.0
    (c1, b1), (c2, b2), (c3, b3) = pts
    low = (math.log(b2) - math.log(b1)) / (c2 - c1)
    high = (math.log(b3) - math.log(b2)) / (c3 - c2)
    return min(max(2 * (high - low) / (c3 - c1), 0.0), CURVATURE_MAX)


def corrected_crf(target: float, crf: float, level_kbps: float, slope: float, title_s: float, kept_s: float,
                  kept_kbits: float, curvature: float = 0.0) -> float:
    """The CRF for the chunks still to encode: one Newton step from ``crf``, where the level
    samples averaged ``level_kbps``, along ``slope``, to the rate the remaining chunks must
    average so that the title (``kept_s`` seconds of it already encoded, ``kept_kbits``)
    averages ``target`` (bounded to ``GOAL_RANGE`` of it: one odd sample must not starve or
    flood the rest)."""
    if level_kbps <= 0:
        return crf
    rest_s = title_s - kept_s
    goal = (target * title_s - kept_kbits) / rest_s if rest_s > 0 else target
    goal = min(max(goal, target * GOAL_RANGE[0]), target * GOAL_RANGE[1])
    step = math.log(goal) - math.log(level_kbps)
    # Along the parabola slope*d + curvature*d**2/2 = step (the root through d = 0); a straight
    # step overshoots on a convex curve, in either direction. Straight when it has no root.
    discriminant = slope * slope + 2 * curvature * step
    if curvature > 0 and discriminant >= 0:
        corrected = crf + (-slope - math.sqrt(discriminant)) / curvature
    else:
        corrected = crf + step / slope
    return round(min(max(corrected, CRF_RANGE[0]), CRF_RANGE[1]), 2)


def _next_crf(target: float, points: list[tuple[float, float]]) -> float:
    if len(points) == 1:
        crf, kbps = points[0]
        guess = crf + 6 * math.log2(kbps / target) if kbps > 0 else crf
        return round(min(max(guess, CRF_RANGE[0]), CRF_RANGE[1]), 2)
    low, high = _pair(target, points)
    return crf_for(target, low, high)


def _pair(target: float, points: Sequence[tuple[float, float]]) -> tuple[tuple[float, float], tuple[float, float]]:
    """The two points to interpolate between: the closest on each side of the target when
    they bracket it, else the two nearest it. The curve is far from log-linear on grain
    (measured on the bench master, 480p: -0.38 per CRF between CRF 21 and 23, -0.15 between
    27 and 29), so a wide secant misses; the third trial narrows the bracket."""
    if len(points) == 1:
        return points[0], points[0]
    above = [p for p in points if p[1] >= target]
    below = [p for p in points if p[1] < target]
    if above and below:
        return max(above, key=lambda p: p[0]), min(below, key=lambda p: p[0])
    nearest = sorted(points, key=lambda p: abs(math.log(max(p[1], 1e-9) / target)))[:2]
    return nearest[0], nearest[1]
