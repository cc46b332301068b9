"""HEVC Main10 HDR10 rungs with the x265 command line, fed 10-bit frames by ffmpeg.

The static ffmpeg's libx265 is 8-bit only: asked for ``yuv420p10le`` it silently encodes
Main 8-bit. Debian's ``x265`` (3.5, multilib: 8/10/12-bit) does Main10. The chunk job's
ffmpeg writes each HDR rung's scaled frames as 10-bit YUV4MPEG into a FIFO; one x265 per
rung reads it and writes a raw HEVC stream; ffmpeg then puts that stream in MP4 without
re-encoding. A raw stream has no timestamps, and with B-frames the decode order is not the
display order, so the display order comes from x265's own per-frame log (``--csv``: the
POC of each frame in encode order) and is written with the ``setts`` bitstream filter.
"""

from __future__ import annotations

import csv
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from reelstream.media.tools import MediaToolMissing
from reelstream.media.transcode.commands import MP4_TIMESCALE, RungEncode


def x265_binary() -> str:
    """The x265 CLI: ``REEL_X265``, else ``x265`` on PATH; HDR rungs fail here without it."""
    override = os.environ.get("REEL_X265")
    if override:
        if not Path(override).is_file():
            raise MediaToolMissing(f"REEL_X265={override} does not exist")
        return override
    found = shutil.which("x265")
    if found is None:
        raise MediaToolMissing(
            "HEVC Main10 HDR10 rungs need the x265 command line (Debian package x265; scripts/bootstrap installs "
            "it): the static ffmpeg's libx265 is 8-bit only and would silently make Main 8-bit")
    return found


def fifo_of(output: Path) -> Path:
    """Where ffmpeg writes the rung's 10-bit frames for x265 to read."""
    return output.with_suffix(".y4m")


def stream_of(output: Path) -> Path:
    return output.with_suffix(".hevc")


def csv_of(output: Path) -> Path:
    return output.with_suffix(".x265.csv")


def x265_command(x265: str, rung: RungEncode, frames: int, preset: str, master_display: str | None,
                 max_cll: str | None, threads: int, output: Path) -> list[str]:
    gop = str(frames)
    cap = ["--vbv-maxrate", str(int(rung.bitrate_kbps * 1.1)), "--vbv-bufsize", str(rung.bitrate_kbps * 2)]
    rate = ["--crf", f"{rung.crf:.2f}"] if rung.crf is not None else ["--bitrate", str(rung.bitrate_kbps)]
    # One worker, one core: no thread pool, one frame thread, no wavefront threads.
    single = ["--pools", "1", "--frame-threads", "1", "--no-wpp", "--lookahead-slices", "0"] if threads == 1 else []
    return [
        x265, "--input", str(fifo_of(output)), "--y4m", "--output", str(stream_of(output)), "--frames", str(frames),
        "--output-depth", "10", "--profile", "main10", "--preset", preset, *rate, *cap,
        # The grid: one closed GOP per chunk, IDR first, no scene-cut keyframes.
        "--keyint", gop, "--min-keyint", gop, "--no-scenecut", "--no-open-gop",
        # HDR10: PQ, BT.2020 primaries and matrix in the VUI; ST 2086 mastering display and
        # content light level SEI (repeated with the parameter sets on every IDR).
        "--repeat-headers", "--hdr10", "--hdr10-opt", "--colorprim", "bt2020", "--transfer", "smpte2084",
        "--colormatrix", "bt2020nc", "--range", "limited",
        *(["--master-display", master_display] if master_display else []),
        *(["--max-cll", max_cll] if max_cll else []),
        # Per-frame log: the display order for the MP4 and the encoder's PSNR and SSIM (the quality
        # figures). x265 measures neither below --log-level info (the CSV then has no such columns).
        "--psnr", "--ssim", "--csv", str(csv_of(output)), "--csv-log-level", "1", "--log-level", "info", *single,
    ]


@dataclass(frozen=True)
class FrameLog:
    pocs: tuple[int, ...]  # display index of each frame, in encode (decode) order
    psnr_y: float | None  # mean luma PSNR against the frames x265 was given (the scaled source)
    ssim: float | None = None  # mean SSIM against the same frames


def read_frame_log(path: Path) -> FrameLog:
    """x265's ``--csv`` per-frame log; its columns are found by name (``--crf`` adds RateFactor,
    VBV adds BufferFill, ``--psnr``/``--ssim`` add theirs only at ``--log-level info``)."""
    pocs: list[int] = []
    psnr: list[float] = []
    ssim: list[float] = []
    columns: dict[str, int] = {}
    with path.open(newline="") as f:
        for row in csv.reader(f):
            if not row:
                continue
            if not row[0].strip().isdigit():
                columns = {name.strip(): i for i, name in enumerate(row)}
                continue
            pocs.append(int(row[columns.get("POC", 2)]))
            for name, values in (("Y PSNR", psnr), ("SSIM", ssim)):
                if name in columns:
                    try:
                        values.append(float(row[columns[name]]))
                    except (IndexError, ValueError):
                        pass
    return FrameLog(tuple(pocs), _mean(psnr), _mean(ssim))


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _table(values: Sequence[int]) -> str:
    """An ffmpeg expression of packet index ``N`` giving ``values[N]`` (commas escaped for -bsf)."""
    expr = str(values[-1])
    for n in range(len(values) - 2, -1, -1):
        expr = f"if(eq(N\\,{n})\\,{values[n]}\\,{expr})"
    return expr


def timestamps_filter(pocs: Sequence[int], fps: Fraction) -> str:
    """``setts``: pts from the POCs, dts in decode order shifted by the reorder delay."""
    delay = max(0, *(n - poc for n, poc in enumerate(pocs)))
    frame = f"({fps.denominator}/({fps.numerator}*TB_OUT))"  # one frame in the output time base
    return f"setts=pts=({_table(pocs)})*{frame}:dts=(N-{delay})*{frame}:duration={frame}"


def mux_command(ffmpeg: str, output: Path, pocs: Sequence[int], fps: Fraction) -> list[str]:
    return [ffmpeg, "-nostdin", "-hide_banner", "-v", "error", "-y", "-f", "hevc", "-i", str(stream_of(output)),
            "-map", "0:v:0", "-c", "copy", "-bsf:v", timestamps_filter(pocs, fps), "-tag:v", "hvc1",
            "-map_metadata", "-1", "-fflags", "+bitexact", "-video_track_timescale", str(MP4_TIMESCALE),
            "-movflags", "+faststart", "-f", "mp4", str(output)]
