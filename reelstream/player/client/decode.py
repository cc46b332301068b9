"""A real decode of decrypted media with ffmpeg: the check the cheap per-segment checks
cannot make for video (that the slice data decrypted to pictures a decoder accepts).

``decode_frames(init, segments)`` writes the clear init and segments to one temporary
fragmented MP4 and decodes every frame (``-xerror``: the first decode error fails), with
``-f framemd5`` so tests can compare the pictures with the clear source, frame by frame.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from reelstream.media import tools
from reelstream.player.client.errors import SegmentInvalid


def decode_args(ffmpeg: str, source: Path) -> list[str]:
    return [ffmpeg, "-nostdin", "-v", "error",
            "-xerror",  # stop at the first corrupt picture instead of concealing it
            "-i", str(source), "-map", "0:0", "-f", "framemd5", "-"]


def decode_frames(init: bytes, segments: Sequence[bytes], what: str) -> list[str]:
    """The framemd5 of every decoded frame; SegmentInvalid with ffmpeg's message if any
    frame fails to decode or nothing decodes."""
    with tempfile.TemporaryDirectory(prefix="reel-player-decode-") as tmp:
        source = Path(tmp) / "clear.mp4"
        source.write_bytes(init + b"".join(segments))
        args = decode_args(tools.ffmpeg(), source)
        done = subprocess.run(args, capture_output=True, text=True, check=False)
    frames = [line.rsplit(",", 1)[-1].strip() for line in done.stdout.splitlines()
              if line and not line.startswith("#")]
    if done.returncode != 0 or done.stderr.strip() or not frames:
        raise SegmentInvalid(f"{what}: ffmpeg could not decode it ({done.stderr.strip()[-400:] or 'no frames'})"
                             f"\ncommand: {' '.join(args)}")
    return frames
