"""The decode check of a master's ends, entered where a seek lands in a master without an
index: an MPEG-TS master with B-frames is whole, however its GOPs are made, and a damaged
tail is still found."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from reelstream.media import tools
from reelstream.media.probe import decode_errors


def transport_stream(path: Path, x264_params: str) -> Path:
    subprocess.run([tools.ffmpeg(), "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25",
                    "-f", "lavfi", "-i", "sine", "-t", "16", "-c:v", "libx264", "-bf", "3", "-g", "50",
                    "-x264-params", x264_params, "-c:a", "aac", str(path)], check=True)
    return path


def damage_video_near_the_end(path: Path) -> Path:
    data = bytearray(path.read_bytes())
    for packet in range(len(data) // 188 - 300, len(data) // 188 - 20, 37):
        start = packet * 188
        data[start + 4:start + 188] = bytes(b ^ 0x5A for b in data[start + 4:start + 188])
    damaged = path.with_name(f"damaged-{path.name}")
    damaged.write_bytes(bytes(data))
    return damaged


@pytest.mark.parametrize("gop", ["open-gop=0", "open-gop=1"], ids=["closed GOPs", "open GOPs"])
def test_a_whole_transport_stream_with_b_frames_decodes_cleanly_at_both_ends(tmp_path: Path, gop: str) -> None:
    master = transport_stream(tmp_path / "master.ts", gop)
    # The plain seek into the last 2 s lands mid-GOP: the frames there miss their references.
    entered = subprocess.run([tools.ffmpeg(), "-nostdin", "-v", "error", "-sseof", "-2", "-i", str(master),
                              "-t", "2", "-map", "0:v", "-f", "null", "-"], capture_output=True, text=True, check=True)
    assert entered.stderr.strip(), "the seek no longer lands mid-GOP: this test no longer covers the case"
    assert decode_errors(master) == []


def test_a_damaged_tail_is_still_reported(tmp_path: Path) -> None:
    master = damage_video_near_the_end(transport_stream(tmp_path / "master.ts", "open-gop=1"))
    problems = decode_errors(master)
    assert len(problems) == 1 and problems[0].startswith("last 2s: "), problems
