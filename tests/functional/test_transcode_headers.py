"""Chunks of one rung encoded at different CRFs must still join into one CMAF track.

Calibration keeps its sample encodes (made at a trial CRF) as final chunks, and a
per-title ladder may move a rung's CRF: the native packager needs every chunk of a track
to carry the same decoder configuration (avcC), or it refuses the title.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from reelstream.media import tools
from reelstream.media.package.packager import check_source
from reelstream.media.transcode.commands import RungEncode, h264_args


def encode(path: Path, crf: float) -> bytes:
    rung = RungEncode("h264-180p-300k", "h264", 320, 180, 300, crf=crf)
    subprocess.run([tools.ffmpeg(), "-nostdin", "-v", "error", "-f", "lavfi", "-i",
                    "testsrc2=s=320x180:r=24:d=1", *h264_args(rung, 24, "veryfast"), "-an", str(path)],
                   check=True)
    return path.read_bytes()


def test_chunks_encoded_at_different_crfs_share_one_decoder_configuration(tmp_path: Path) -> None:
    low, high = encode(tmp_path / "low.mp4", 18.0), encode(tmp_path / "high.mp4", 34.5)
    assert len(low) > len(high)  # really two different encodes
    assert check_source(low, "low", "video") == check_source(high, "high", "video")
