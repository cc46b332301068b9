"""A master whose picture starts after its sound: chunks are still cut on the video's own frames."""

from __future__ import annotations

import re
import subprocess
from fractions import Fraction
from pathlib import Path

from reelstream.media import tools
from reelstream.media.probe import video_start
from reelstream.media.transcode.chunk import encode_chunk
from reelstream.media.transcode.commands import ChunkEncode, RungEncode
from tests.support.media import ffmpeg


def late_video_master(path: Path, delay: float = 0.5) -> Path:
    """24 fps, 2-s GOPs; the video track starts ``delay`` s after the audio (an MP4 edit list),
    so the file's first timestamp is the audio's, not the first frame's."""
    ffmpeg("-itsoffset", str(delay), "-f", "lavfi", "-i", "testsrc2=s=160x90:r=24:d=6,noise=alls=8:allf=t",
           "-f", "lavfi", "-i", "sine=d=6.5:sample_rate=48000", "-map", "0:v", "-map", "1:a",
           "-c:v", "libx264", "-preset", "ultrafast", "-qp", "14", "-g", "48", "-keyint_min", "48",
           "-sc_threshold", "0", "-pix_fmt", "yuv420p", "-c:a", "aac", "-metadata:s:a:0", "language=eng", str(path))
    return path


def psnr_against_master(chunk: Path, master: Path, start_frame: int, frames: int) -> float:
    """Mean PSNR of the chunk against the master's frames ``start_frame..+frames`` (by frame index)."""
    out = subprocess.run(
        [tools.ffmpeg(), "-nostdin", "-hide_banner", "-i", str(chunk), "-i", str(master), "-lavfi",
         (f"[1:v]trim=start_frame={start_frame}:end_frame={start_frame + frames},setpts=PTS-STARTPTS[r];"
          "[0:v]setpts=PTS-STARTPTS[c];[c][r]psnr"), "-f", "null", "-"],
        capture_output=True, text=True, check=True).stderr
    return float(re.findall(r"average:([\d.]+|inf)", out)[-1])


def test_a_chunk_of_a_master_whose_video_starts_late_holds_the_grids_frames(tmp_path: Path) -> None:
    master = late_video_master(tmp_path / "late.mp4")
    assert video_start(master) == Fraction(1, 2)
    for start in (48, 60):  # on the master's keyframe, and off it
        out = tmp_path / f"{start}.mp4"
        job = ChunkEncode(master=master, fps=Fraction(24), start_frame=start, frame_count=48,
                          rungs=(RungEncode("h264-90p", "h264", 160, 90, 2000, crf=12.0),), outputs=(out,),
                          threads=1)
        encode_chunk(job, tmp_path)
        # The right frames read above 30 dB; shifted by the half second (12 frames) of moving
        # test pattern, about 12 dB.
        assert psnr_against_master(out, master, start, 48) > 30


def test_the_ladder_analysis_scores_a_late_video_masters_chunk_against_its_own_frames(tmp_path: Path) -> None:
    # The per-title trials score each encode against the master's frames with a seek of their
    # own: off by the half second, a faithful encode scored like a poor one.
    from reelstream.media.ladder.analyze import ssim_of

    master = late_video_master(tmp_path / "late.mp4")
    out = tmp_path / "60.mp4"
    encode_chunk(ChunkEncode(master=master, fps=Fraction(24), start_frame=60, frame_count=48,
                             rungs=(RungEncode("h264-90p", "h264", 160, 90, 2000, crf=12.0),), outputs=(out,),
                             threads=1), tmp_path)
    [score] = ssim_of(master, Fraction(24), 60, 48, [out], (160, 90), tmp_path)
    assert score > 0.9  # 0.94 here; 0.55 scored against frames half a second early
