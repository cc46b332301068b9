"""Generated test media: masters from ffmpeg's lavfi sources, sidecar audio, subtitle files, metadata."""

from __future__ import annotations

import hashlib
import json
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
    args: list[str] = ["-f", "lavfi", "-i", video]
    for lang in languages:
        args += ["-f", "lavfi", "-i", f"sine=f={TONES.get(lang, 500)}:sample_rate=48000:d={seconds}"]
    args += ["-map", "0:v"]
    for i, lang in enumerate(languages):
        args += ["-map", f"{i + 1}:a", f"-metadata:s:a:{i}", f"language={ISO639_2.get(lang, lang)}"]
    gop = str(2 * fps)
    if hdr:
        args += ["-vf", "format=yuv420p10le", "-c:v", "libx265", "-preset", "ultrafast", "-x265-params",
                 (f"keyint={gop}:min-keyint={gop}:scenecut=0:qp=12:hdr10=1:colorprim=bt2020:transfer=smpte2084:"
                  f"colormatrix=bt2020nc:master-display={MASTER_DISPLAY}:max-cll=1000,400:log-level=error"),
                 "-color_primaries", "bt2020", "-color_trc", "smpte2084", "-colorspace", "bt2020nc", "-tag:v", "hvc1"]
    else:
        args += ["-c:v", "libx264", "-preset", "ultrafast", "-qp", "14", "-g", gop, "-keyint_min", gop,
                 "-sc_threshold", "0", "-pix_fmt", "yuv420p"]
    args += ["-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart", str(path)]
    ffmpeg(*args)
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
