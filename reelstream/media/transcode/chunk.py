"""Encode one chunk job and measure what came out (frames, duration, bitrate, PSNR, SSIM).

Quality is the encoders' own measurement, so it costs no second decode: x264 and x265
compare each reconstructed frame with the frame they were given (the master's frame,
scaled to the rung), every frame of the chunk, luma. PSNR per frame from ffmpeg's vstats
(x264) or x265's CSV; SSIM from x264's closing report or x265's CSV. NVENC and ffmpeg's
libx265 (SDR HEVC) rungs report none. (The ssim filter on the decoded output instead, with
ffmpeg 8's loopback decoder in the same process, added ~10 % CPU per job.)"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from reelstream.errors import ReelStreamError
from reelstream.media import tools
from reelstream.media.probe import count_frames, interlaced, video_start
from reelstream.media.transcode.commands import ChunkEncode, chunk_command, uses_x265_cli
from reelstream.media.transcode.damage import check_video
from reelstream.media.transcode.run import run, run_with_readers
from reelstream.media.transcode.x265 import (
    csv_of,
    fifo_of,
    mux_command,
    read_frame_log,
    stream_of,
    x265_binary,
    x265_command,
)

# x264's closing report, one per libx264 encoder, printed as ffmpeg frees the encoders: in output order.
_X264_SSIM = re.compile(r"^\[libx264 @ [^\]]+\] (?:\[info\] )?SSIM Mean Y:([\d.]+)", re.MULTILINE)
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


def parse_x264_ssim(stderr: str) -> list[float]:
    """The mean SSIM x264 reports for each libx264 output (``ssim=1``), in output order."""
    return [float(m.group(1)) for m in _X264_SSIM.finditer(stderr)]


def encode_chunk(job: ChunkEncode, scratch: Path | None = None) -> list[EncodedChunk]:
    """Run the job's ffmpeg (and an x265 per HDR rung, reading ffmpeg's 10-bit frames from a
    FIFO); verify every output holds exactly ``job.frame_count`` frames."""
    if job.video_start is None:
        job = replace(job, video_start=video_start(job.master))
    if job.deinterlace is None:
        job = replace(job, deinterlace=interlaced(job.master))
    cli = [i for i, r in enumerate(job.rungs) if uses_x265_cli(r, job.gpu)]
    psnr_of: dict[int, float | None] = {}
    ssim_of: dict[int, float | None] = {}
    with tempfile.TemporaryDirectory(dir=scratch, prefix="vstats-") as tmp:
        vstats = Path(tmp) / "vstats.log"
        argv = chunk_command(tools.ffmpeg(), job, vstats)
        what = f"encoding chunk at frame {job.start_frame}"
        if cli:
            x265 = x265_binary()  # before anything runs: no x265, no HDR rung (never a silent 8-bit one)
            readers = []
            for i in cli:
                fifo_of(job.outputs[i]).unlink(missing_ok=True)
                os.mkfifo(fifo_of(job.outputs[i]))
                readers.append(x265_command(x265, job.rungs[i], job.frame_count, job.preset, job.master_display,
                                            job.max_cll, job.threads, job.outputs[i]))
            try:
                stderr, _ = run_with_readers(argv, readers, what)
            finally:
                for i in cli:
                    fifo_of(job.outputs[i]).unlink(missing_ok=True)
            for i in cli:
                frames = read_frame_log(csv_of(job.outputs[i]))
                run(mux_command(tools.ffmpeg(), job.outputs[i], sorted_check(frames.pocs), job.fps),
                    f"muxing {job.rungs[i].rendition_id}")
                psnr_of[i] = frames.psnr_y
                ssim_of[i] = frames.ssim
                stream_of(job.outputs[i]).unlink(missing_ok=True)
                csv_of(job.outputs[i]).unlink(missing_ok=True)
        else:
            stderr = run(argv, what).stderr
        check_video(stderr, f"the chunk from frame {job.start_frame} ({job.frame_count} frames)")
        x264 = [i for i, r in enumerate(job.rungs) if r.codec == "h264" and not job.gpu]
        ssim_of.update(zip(x264, parse_x264_ssim(stderr), strict=False))
        stats = parse_vstats(vstats.read_text(errors="replace") if vstats.exists() else "", len(job.rungs))
    results = []
    for i, (rung, out, (_, psnr)) in enumerate(zip(job.rungs, job.outputs, stats, strict=True)):
        encoded = count_frames(out)
        if encoded != job.frame_count:
            raise ChunkIncomplete(f"{rung.rendition_id}: {encoded} frames encoded, the grid needs {job.frame_count}")
        psnr, ssim = psnr_of.get(i, psnr), ssim_of.get(i)
        size = out.stat().st_size
        duration_ms = round(encoded * 1000 / job.fps)
        results.append(EncodedChunk(rung.rendition_id, out, size, encoded, duration_ms,
                                    round(size * 8 / duration_ms) if duration_ms else 0,
                                    round(psnr, 3) if psnr is not None else None,
                                    round(ssim, 5) if ssim is not None else None))
    return results


def sorted_check(pocs: tuple[int, ...]) -> tuple[int, ...]:
    """The POCs of one closed GOP are a permutation of 0..n-1; anything else cannot be muxed exactly."""
    if sorted(pocs) != list(range(len(pocs))):
        raise ChunkIncomplete(f"x265 frame log: POCs {sorted(pocs)[:5]}... are not 0..{len(pocs) - 1}")
    return pocs
