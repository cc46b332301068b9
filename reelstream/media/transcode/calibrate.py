"""Per-title CRF calibration: the fix for per-chunk rate control.

Each rung is encoded twice, at two CRFs, on a few sample chunks of the title; the CRF
that lands on the rung's bitrate is interpolated on log(bitrate), which is close to
linear in CRF. The chunk jobs then encode with that CRF, capped by VBV. Cost: two
chunk encodes per sample, amortised over the title (one sample per 30 chunks, 1..5).
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Sequence

from reelstream.media.transcode.chunk import encode_chunk
from reelstream.media.transcode.commands import ChunkEncode, RungEncode
from reelstream.media.transcode.grid import Chunk

CRF_LOW, CRF_HIGH = 20.0, 28.0
CRF_RANGE = (10.0, 45.0)


def sample_chunks(grid: Sequence[Chunk]) -> list[Chunk]:
    full = [c for c in grid if c.frame_count == grid[0].frame_count] or list(grid)
    count = min(5, max(1, len(full) // 30))
    return [full[(2 * i + 1) * len(full) // (2 * count)] for i in range(count)]


def crf_for(target_kbps: float, low: tuple[float, float], high: tuple[float, float]) -> float:
    """The CRF whose bitrate is ``target_kbps``, from two (crf, kbps) measurements."""
    (c1, b1), (c2, b2) = low, high
    if b1 <= 0 or b2 <= 0 or b1 == b2:
        return c1
    slope = (math.log(b2) - math.log(b1)) / (c2 - c1)
    crf = c1 + (math.log(target_kbps) - math.log(b1)) / slope
    return round(min(max(crf, CRF_RANGE[0]), CRF_RANGE[1]), 2)


def calibrate(master: Path, fps: Fraction, grid: Sequence[Chunk], rungs: Sequence[RungEncode],
              base: ChunkEncode | None = None, scratch: Path | None = None) -> dict[str, float]:
    """rendition_id -> calibrated CRF for every rung (all rungs of one encoder group)."""
    sums: dict[str, list[float]] = {r.rendition_id: [0.0, 0.0] for r in rungs}
    seconds = 0.0
    with tempfile.TemporaryDirectory(dir=scratch, prefix="calibrate-") as tmp:
        for chunk in sample_chunks(grid):
            seconds += float(chunk.frame_count / fps)
            # Uncapped, so the measurement sees what the CRF alone spends.
            trial = tuple(replace(r, crf=crf, bitrate_kbps=100_000, rendition_id=f"{r.rendition_id}@{crf:g}")
                          for crf in (CRF_LOW, CRF_HIGH) for r in rungs)
            outputs = tuple(Path(tmp) / f"{i}.mp4" for i in range(len(trial)))
            template = base or ChunkEncode(master=master, fps=fps, start_frame=0, frame_count=0, rungs=(), outputs=())
            job = replace(template, master=master, fps=fps, start_frame=chunk.start_frame,
                          frame_count=chunk.frame_count, rungs=trial, outputs=outputs)
            for i, encoded in enumerate(encode_chunk(job, scratch)):
                sums[rungs[i % len(rungs)].rendition_id][i // len(rungs)] += encoded.size_bytes
    out = {}
    for rung in rungs:
        low, high = (size * 8 / 1000 / seconds for size in sums[rung.rendition_id])
        out[rung.rendition_id] = crf_for(rung.bitrate_kbps, (CRF_LOW, low), (CRF_HIGH, high))
    return out
