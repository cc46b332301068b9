"""Posters: one still per title, extracted with ffmpeg from a video rendition at package
time and stored in the ObjectStore at ``posters/{title_id}.jpg``."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from reelstream.media import tools
from reelstream.stores.ports import ObjectStore


def poster_key(title_id: str) -> str:
    return f"posters/{title_id}.jpg"


def poster_command(ffmpeg: str, source: Path, out: Path, at_s: float = 1.0, width: int = 320) -> list[str]:
    return [ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
            # Seek before the input: fast, lands on the keyframe before at_s (a poster needs no precision).
            "-ss", f"{at_s:.3f}", "-i", str(source),
            # One frame, square pixels, 16:9 width, JPEG quality 4 (of 2-31): ~15 KB for 320 px.
            "-frames:v", "1", "-vf", f"scale={width}:-2,setsar=1", "-q:v", "4", str(out)]


def extract_poster(objects: ObjectStore, title_id: str, source: Path, at_s: float = 1.0) -> str:
    """Extract and store the poster; returns its object key."""
    with tempfile.TemporaryDirectory(prefix="reel-poster-") as tmp:
        out = Path(tmp) / "poster.jpg"
        subprocess.run(poster_command(tools.ffmpeg(), source, out, at_s), check=True, capture_output=True)
        key = poster_key(title_id)
        objects.put(key, out, content_type="image/jpeg")
    return key
