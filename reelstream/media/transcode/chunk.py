"""Encode one chunk job and measure what came out (frames, duration, bitrate, PSNR)."""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from reelstream.errors import ReelStreamError
from reelstream.media import tools
from reelstream.media.probe import count_frames
from reelstream.media.transcode.commands import ChunkEncode, chunk_command
from reelstream.media.transcode.run import run

_VSTATS = re.compile(r"out=\s*(\d+)\s+st=\s*\d+\s+frame=\s*\d+\s+q=\s*[-\d.]+\s+(?:PSNR=\s*([\d.]+|inf)\s+)?f_size=\s*(\d+)")


class ChunkIncomplete(ReelStreamError):
    """An encoded chunk does not hold exactly the grid's frames (the master ended early or is damaged)."""


@dataclass(frozen=True)
class EncodedChunk:
    rendition_id: str
    path: Path
    size_bytes: int
    frames: int
    duration_ms: int
    bitrate_kbps: int
    psnr_db: float | None
    ssim: float | None = None


def parse_vstats(text: str, outputs: int) -> list[tuple[int, float | None]]:
    """(frames, mean per-frame PSNR) per output, from ffmpeg's ``-vstats_version 2`` lines.

    Encoders run in threads of their own and their vstats lines can interleave, so the
    frame count here is only a hint; ``encode_chunk`` counts the output's frames. The PSNR is the encoder's own (x264's reconstruction against the scaled source frame,
    ``-flags +psnr``), so measuring quality costs no second decode.
    """
    frames = [0] * outputs
    psnr: list[list[float]] = [[] for _ in range(outputs)]
    for match in _VSTATS.finditer(text):
        out = int(match.group(1))
        if out >= outputs:
            continue
        frames[out] += 1
        if match.group(2) and match.group(2) != "inf":
            psnr[out].append(float(match.group(2)))
    return [(frames[i], (sum(psnr[i]) / len(psnr[i])) if psnr[i] else None) for i in range(outputs)]


def encode_chunk(job: ChunkEncode, scratch: Path | None = None) -> list[EncodedChunk]:
    """Run the job's one ffmpeg; verify every output holds exactly ``job.frame_count`` frames."""
    with tempfile.TemporaryDirectory(dir=scratch, prefix="vstats-") as tmp:
        vstats = Path(tmp) / "vstats.log"
        run(chunk_command(tools.ffmpeg(), job, vstats), f"encoding chunk at frame {job.start_frame}")
        stats = parse_vstats(vstats.read_text(errors="replace") if vstats.exists() else "", len(job.rungs))
    results = []
    for rung, out, (_, psnr) in zip(job.rungs, job.outputs, stats, strict=True):
        frames = count_frames(out)
        if frames != job.frame_count:
            raise ChunkIncomplete(f"{rung.rendition_id}: {frames} frames encoded, the grid needs {job.frame_count}")
        size = out.stat().st_size
        duration_ms = round(frames * 1000 / job.fps)
        results.append(EncodedChunk(rung.rendition_id, out, size, frames, duration_ms,
                                    round(size * 8 / duration_ms) if duration_ms else 0,
                                    round(psnr, 3) if psnr is not None else None))
    return results
