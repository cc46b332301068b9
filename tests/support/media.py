"""Generated test media: masters from ffmpeg's lavfi sources, sidecar audio, subtitle files, metadata."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reelstream.media import tools

TONES = {"en": 440, "fr": 660, "de": 550, "es": 770}
ISO639_2 = {"en": "eng", "fr": "fra", "de": "deu", "es": "spa"}  # MP4 stores three-letter codes
# A typical HDR10 grading monitor (P3-D65, 1000 nits) in x265 syntax.
MASTER_DISPLAY = "G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,50)"


def ffmpeg(*args: str) -> None:
    subprocess.run([tools.ffmpeg(), "-nostdin", "-hide_banner", "-v", "error", "-y", *args], check=True,
                   capture_output=True)


def make_master(path: Path, seconds: float = 4, size: str = "320x180", fps: int = 24,
                languages: Sequence[str] = ("en", "fr"), hdr: bool = False, noise: int = 8) -> Path:
    """A master like a studio's: testsrc2 with film grain, closed 2-s GOPs, one sine track per language."""
    video = f"testsrc2=s={size}:r={fps}:d={seconds},noise=alls={noise}:allf=t"
    gop = str(2 * fps)
    args: list[str] = ["-f", "lavfi", "-i", video]
    if hdr:  # a real Main10 HDR10 master: the static ffmpeg's libx265 would make 8-bit
        args = ["-i", str(_hdr10_video(path.with_suffix(".video.mp4"), video, fps, int(seconds * fps)))]
    for lang in languages:
        args += ["-f", "lavfi", "-i", f"sine=f={TONES.get(lang, 500)}:sample_rate=48000:d={seconds}"]
    args += ["-map", "0:v"]
    for i, lang in enumerate(languages):
        args += ["-map", f"{i + 1}:a", f"-metadata:s:a:{i}", f"language={ISO639_2.get(lang, lang)}"]
    if hdr:
        args += ["-c:v", "copy", "-tag:v", "hvc1"]
    else:
        args += ["-c:v", "libx264", "-preset", "ultrafast", "-qp", "14", "-g", gop, "-keyint_min", gop,
                 "-sc_threshold", "0", "-pix_fmt", "yuv420p"]
    args += ["-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart", str(path)]
    ffmpeg(*args)
    return path


def _hdr10_video(path: Path, source: str, fps: int, frames: int) -> Path:
    """testsrc2 as 10-bit PQ/BT.2020 HEVC Main10 with HDR10 metadata, through the x265 CLI
    (the same FIFO, frame log and mux as the HDR rungs), closed 2-s GOPs."""
    from fractions import Fraction

    from reelstream.media.transcode.commands import RungEncode
    from reelstream.media.transcode.run import run_with_readers
    from reelstream.media.transcode.x265 import (
        csv_of,
        fifo_of,
        mux_command,
        read_frame_log,
        x265_binary,
        x265_command,
    )

    rung = RungEncode("master", "hevc", 0, 0, 20000, hdr=True, crf=12.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    fifo_of(path).unlink(missing_ok=True)
    os.mkfifo(fifo_of(path))
    reader = x265_command(x265_binary(), rung, frames, "ultrafast", MASTER_DISPLAY, "1000,400", 0, path)
    gop = str(2 * fps)
    reader[reader.index("--keyint") + 1] = reader[reader.index("--min-keyint") + 1] = gop
    writer = [tools.ffmpeg(), "-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", source,
              "-pix_fmt", "yuv420p10le", "-frames:v", str(frames), "-f", "yuv4mpegpipe", "-strict", "-1",
              str(fifo_of(path))]
    try:
        run_with_readers(writer, [reader], "making an HDR10 master")
    finally:
        fifo_of(path).unlink(missing_ok=True)
    pocs = read_frame_log(csv_of(path)).pocs
    # Several GOPs: POCs restart at each IDR; the display index is the GOP's start plus the POC.
    display: list[int] = []
    start = 0
    for n, poc in enumerate(pocs):
        if n and poc == 0:
            start = max(display) + 1
        display.append(start + poc)
    ffmpeg(*mux_command(tools.ffmpeg(), path, display, Fraction(fps))[6:])
    return path


def make_audio(path: Path, seconds: float = 4, language: str = "en", freq: int = 330) -> Path:
    ffmpeg("-f", "lavfi", "-i", f"sine=f={freq}:sample_rate=48000:d={seconds}", "-ac", "2",
           "-metadata:s:a:0", f"language={ISO639_2.get(language, language)}", "-c:a", "aac", "-b:a", "96k", str(path))
    return path


Cue = tuple[float, float, str]


def _stamp(seconds: float, sep: str) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}{sep}{ms % 1000:03d}"


def write_srt(path: Path, cues: Sequence[Cue]) -> Path:
    blocks = [f"{i}\n{_stamp(a, ',')} --> {_stamp(b, ',')}\n{text}\n" for i, (a, b, text) in enumerate(cues, 1)]
    path.write_text("\n".join(blocks))
    return path


def write_vtt(path: Path, cues: Sequence[Cue]) -> Path:
    blocks = [f"{_stamp(a, '.')} --> {_stamp(b, '.')}\n{text}\n" for a, b, text in cues]
    path.write_text("WEBVTT\n\n" + "\n".join(blocks))
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def title_metadata(title_id: str, master_path: Path, *, languages: Sequence[str] = ("en", "fr"),
                   subtitles: Sequence[dict[str, Any]] = (), audio: Sequence[dict[str, Any]] = (),
                   **overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "title_id": title_id, "title": f"Test title {title_id}", "original_language": languages[0],
        "audio_languages": list(languages), "rating": {"system": "MPAA", "value": "PG-13"}, "genres": ["drama"],
        "license_terms": {"territories": ["US", "FR"], "window_start": "2026-01-01T00:00:00Z", "window_end": None,
                          "offline_download_allowed": True, "max_height": 2160},
        "master": {"file": master_path.name, "sha256": sha256(master_path), "size_bytes": master_path.stat().st_size},
        "subtitles": list(subtitles), "audio": list(audio),
    }
    doc.update(overrides)
    return doc


def write_metadata(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(json.dumps(doc, indent=2))
    return path
