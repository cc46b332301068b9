"""ffmpeg command lines as plain lists, built by pure functions (tested against expected args).

A chunk job decodes its span of the master once and encodes every rung of one encoder
group from one filter graph: ``trim`` to the chunk's exact frame count, ``split``, one
``scale`` per rung. Decoding once per job instead of once per rung is what makes the
chunked pipeline cost what a single pass costs (shared/MEASURED.md: 179 s CPU vs 461 s).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from reelstream.media.transcode.grid import first_frame_filter, seek_args

MP4_TIMESCALE = 90000  # divisible by every common frame duration (24, 25, 30, 24000/1001 ...)


@dataclass(frozen=True)
class RungEncode:
    rendition_id: str
    codec: str  # h264 | hevc
    width: int
    height: int
    bitrate_kbps: int
    hdr: bool = False
    crf: float | None = None  # capped CRF (see rate_control); None: ABR


@dataclass(frozen=True)
class ChunkEncode:
    """Everything one ffmpeg run needs to encode one chunk into every rung of a group."""

    master: Path
    fps: Fraction
    start_frame: int
    frame_count: int
    rungs: tuple[RungEncode, ...]
    outputs: tuple[Path, ...]
    source_hdr: bool = False
    master_display: str | None = None
    max_cll: str | None = None
    tonemap_lut: Path | None = None  # needed when an SDR rung comes from an HDR master
    preset: str = "veryfast"
    threads: int = 0  # 0: the encoder's default
    gpu: bool = False  # NVENC encoders (a GPU worker on a job that prefers one)
    measure: bool = True  # the encoders' PSNR/SSIM (calibration trials, read for their size only, skip it)
    video_start: Fraction | None = None  # the first frame's time after the file's first (None: encode_chunk reads it)
    deinterlace: bool | None = None  # the master is interlaced (None: encode_chunk reads it)
    extra_inputs: tuple[str, ...] = field(default=())


def rate_control(rung: RungEncode) -> list[str]:
    """Capped constant quality when a CRF was calibrated for the title, else plain ABR.

    A fresh ABR encode per 2-s chunk restarts x264's rate control and undershoots
    (shared/MEASURED.md: 317 kbit/s for 400, 3 dB PSNR lost); a CRF calibrated per title
    and rung (``calibrate.py``) spends bits like a single pass, and the VBV cap
    (maxrate 1.1x, buffer 2x) keeps every chunk deliverable at the rung's bandwidth.
    """
    cap = ["-maxrate", f"{int(rung.bitrate_kbps * 1.1)}k", "-bufsize", f"{rung.bitrate_kbps * 2}k"]
    if rung.crf is not None:
        return ["-crf", f"{rung.crf:.2f}", *cap]
    return ["-b:v", f"{rung.bitrate_kbps}k", *cap]


def h264_args(rung: RungEncode, gop: int, preset: str, measure: bool = True) -> list[str]:
    return [
        "-c:v", "libx264", "-preset", preset, "-profile:v", "high", "-pix_fmt", "yuv420p",
        *rate_control(rung),
        # One closed GOP per chunk: IDR on the first frame, no scene-cut keyframes off the grid.
        "-g", str(gop), "-keyint_min", str(gop), "-sc_threshold", "0", "-flags", "+cgop+psnr" if measure else "+cgop",
        # ssim=1: x264 measures SSIM of its reconstruction against the frames it was given (the
        # scaled source), at no measurable cost, and reports the mean when it closes.
        # stitchable=1: headers that do not depend on the encode (x264 otherwise puts the CRF's
        # QP in the PPS), so chunks of a rung encoded at different CRFs, such as calibration's
        # kept samples, share one avcC and join into one CMAF track.
        "-x264-params", "open-gop=0:ssim=1:stitchable=1" if measure else "open-gop=0:stitchable=1",
        "-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709",
    ]


def uses_x265_cli(rung: RungEncode, gpu: bool) -> bool:
    """HDR rungs are encoded by the x265 CLI (``x265.py``): the static ffmpeg's libx265 is 8-bit only."""
    return rung.codec == "hevc" and rung.hdr and not gpu


def y4m_args(frames: int) -> list[str]:
    # 10-bit frames for x265 (-strict -1: YUV4MPEG above 8 bits is an extension).
    return ["-pix_fmt", "yuv420p10le", "-frames:v", str(frames), "-f", "yuv4mpegpipe", "-strict", "-1"]


def tonemap_filter(lut: Path | None, width: int, height: int) -> str:
    """PQ/BT.2020 frames to SDR BT.709 yuv420p at ``width``x``height`` through the 3D LUT
    (``tonemap.py``); also what the per-title analysis scores tone-mapped trials against."""
    return (f"scale={width}:{height}:in_color_matrix=bt2020:in_range=tv,format=rgb48le,"
            f"lut3d=file='{lut}':interp=tetrahedral,scale=out_color_matrix=bt709:out_range=tv,format=yuv420p")


DEINTERLACE = "bwdif=mode=send_frame:parity=auto:deint=all,"  # one progressive frame per frame


def filter_graph(job: ChunkEncode) -> str:
    """Drop the frames before the chunk, ``trim`` to its frame count, restart timestamps at 0,
    split, scale each rung."""
    # Interlaced masters: one progressive frame per frame (bwdif, send_frame), so the grid's
    # frame counts hold; scaling woven fields instead left combing on every moving edge. Before
    # the frame selection, so the chunk's first frame is interpolated from the one before it.
    deinterlace = DEINTERLACE if job.deinterlace else ""
    head = (f"[0:v:0]{deinterlace}{first_frame_filter(job.start_frame, job.fps)},trim=end_frame={job.frame_count},"
            "setpts=PTS-STARTPTS")
    sdr_from_hdr = job.source_hdr and not all(r.hdr for r in job.rungs)
    if sdr_from_hdr:
        # Tone-map once, at the largest rung's size, before the split.
        top = max(job.rungs, key=lambda r: r.width * r.height)
        head += (f",{tonemap_filter(job.tonemap_lut, top.width, top.height)},"
                 # The frames still say PQ/BT.2020 and ffmpeg 8 tags the stream from the frames
                 # (the encoder's -color_trc lost: a tone-mapped rung came out tagged smpte2084).
                 "setparams=color_primaries=bt709:color_trc=bt709:colorspace=bt709")
    parts = [f"{head},split={len(job.rungs)}" + "".join(f"[s{i}]" for i in range(len(job.rungs)))]
    for i, rung in enumerate(job.rungs):
        pix = "yuv420p10le" if rung.hdr else "yuv420p"
        # setsar=1: 426x240 and 854x480 come out with a non-square SAR otherwise (MEASURED.md).
        parts.append(f"[s{i}]scale={rung.width}:{rung.height}:flags=bicubic,setsar=1,format={pix}[v{i}]")
    return ";".join(parts)


def chunk_command(ffmpeg: str, job: ChunkEncode, vstats: Path) -> list[str]:
    gop = job.frame_count
    # One worker per core: a worker's ffmpeg then decodes, filters and encodes on that core only.
    threads = ["-threads", str(job.threads)] if job.threads else []
    # level+info: x264's closing report (its SSIM) is an info line; every line is tagged with its
    # level, so a failure still shows the errors (``run.error_lines``).
    argv = [ffmpeg, "-nostdin", "-hide_banner", "-nostats", "-loglevel", "level+info", "-y",
            *(["-filter_threads", str(job.threads), "-filter_complex_threads", str(job.threads)] if job.threads else []),
            # Seek to the chunk's keyframe (or the one before); the graph drops what precedes the chunk.
            *threads, *seek_args(job.start_frame, job.fps, job.video_start or Fraction(0)), "-i", str(job.master),
            "-filter_complex", filter_graph(job)]
    for i, (rung, out) in enumerate(zip(job.rungs, job.outputs, strict=True)):
        if uses_x265_cli(rung, job.gpu):
            argv += ["-map", f"[v{i}]", *y4m_args(job.frame_count), str(out.with_suffix(".y4m"))]
            continue
        codec_args = (nvenc_args(rung, gop) if job.gpu else
                      h264_args(rung, gop, job.preset, job.measure) if rung.codec == "h264" else
                      _hevc_sdr_args(rung, gop, job.preset))
        argv += ["-map", f"[v{i}]", *codec_args, *threads, "-fps_mode", "passthrough", "-frames:v", str(job.frame_count),
                 "-an", "-sn", "-dn", "-map_metadata", "-1", "-fflags", "+bitexact",
                 "-video_track_timescale", str(MP4_TIMESCALE), "-movflags", "+faststart", "-f", "mp4", str(out)]
    return argv + (["-vstats_file", str(vstats), "-vstats_version", "2"] if job.measure else [])


def nvenc_args(rung: RungEncode, gop: int) -> list[str]:
    # NVENC: same grid (forced IDR every chunk, no scene cuts), VBR capped like the CPU rungs.
    hdr = ["-profile:v", "main10", "-pix_fmt", "p010le", "-color_primaries", "bt2020", "-color_trc", "smpte2084",
           "-colorspace", "bt2020nc"] if rung.hdr else ["-pix_fmt", "yuv420p"]
    return ["-c:v", "hevc_nvenc" if rung.codec == "hevc" else "h264_nvenc", "-preset", "p5", "-rc", "vbr",
            "-b:v", f"{rung.bitrate_kbps}k", "-maxrate", f"{int(rung.bitrate_kbps * 1.1)}k",
            "-bufsize", f"{rung.bitrate_kbps * 2}k", "-g", str(gop), "-forced-idr", "1", "-no-scenecut", "1",
            *hdr, *(["-tag:v", "hvc1"] if rung.codec == "hevc" else [])]


def _hevc_sdr_args(rung: RungEncode, gop: int, preset: str) -> list[str]:
    return ["-c:v", "libx265", "-preset", preset, "-pix_fmt", "yuv420p", "-tag:v", "hvc1", *rate_control(rung),
            "-x265-params", f"keyint={gop}:min-keyint={gop}:scenecut=0:open-gop=0:log-level=error"]


def aac_args(bitrate_kbps: int) -> list[str]:
    """Every audio rendition: AAC-LC stereo, 48 kHz."""
    return ["-c:a", "aac", "-profile:a", "aac_low", "-b:a", f"{bitrate_kbps}k", "-ac", "2", "-ar", "48000"]


def audio_command(ffmpeg: str, source: Path, stream_index: int, language: str, bitrate_kbps: int,
                  audio_description: bool, out: Path, video_start: Fraction = Fraction(0),
                  duration_s: float | None = None) -> list[str]:
    """AAC-LC stereo, 48 kHz, one MP4 per track, starting where the master's video starts
    (``video_start``, ``probe.video_start``; 0 for a sidecar): silence before a late first
    sample, nothing before the first frame. A late track was written with an empty edit, which
    packaging drops (``remux.py``): it played that much early (0.45 s measured). With
    ``duration_s`` (the video's), padded with silence or cut to it: a dub shorter than the picture
    ended early, a longer one ran on over the last frame."""
    disposition = "+descriptions+visual_impaired" if audio_description else "default"
    align = f"asetpts=PTS-{float(video_start):.6f}/TB,aresample=async=1:first_pts=0"
    length = ["-t", f"{duration_s:.6f}"] if duration_s else []
    return [ffmpeg, "-nostdin", "-hide_banner", "-v", "error", "-y", "-i", str(source),
            "-map", f"0:a:{stream_index}", "-vn", "-sn", "-dn", "-map_metadata", "-1",
            "-af", align + (",apad" if duration_s else ""), *length, *aac_args(bitrate_kbps),
            "-metadata:s:a:0", f"language={language}", "-disposition:a:0", disposition,
            "-fflags", "+bitexact", "-movflags", "+faststart", "-f", "mp4", str(out)]
