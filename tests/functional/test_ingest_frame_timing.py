"""A variable-frame-rate master is refused: the grid times frames at the nominal rate, so its
picture would end early and drift from its sound. Constant rates, NTSC's included, pass. Real ffmpeg."""

from __future__ import annotations

from pathlib import Path

import pytest

from reelstream.config import Settings
from reelstream.ingest.reasons import IngestRejected
from reelstream.ingest.service import IngestService
from reelstream.media.transcode.ladder import Rung
from reelstream.runtime import Runtime
from tests.support.media import ffmpeg, title_metadata, write_metadata

LADDER = (Rung("h264", 144, 200),)
# A phone clip: 30 fps, then 2 s at 15 fps (low light), then 30 fps again; MP4 says 30 fps.
PHONE = "testsrc2=s=256x144:r=30:d=6,setpts='if(lt(N,60),N/30,if(lt(N,90),2+(N-60)/15,4+(N-90)/30))/TB'"


def ingest(tmp_path: Path, video: str, seconds: float) -> None:
    film = tmp_path / "film.mp4"
    ffmpeg("-f", "lavfi", "-i", video, "-f", "lavfi", "-i", f"sine=d={seconds}", "-fps_mode", "vfr",
           "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac",
           "-metadata:s:a:0", "language=eng", "-t", str(seconds), str(film))
    runtime = Runtime(Settings(data_dir=tmp_path / "reel"))
    try:
        metadata = write_metadata(tmp_path / "title.json", title_metadata("film-1", film, languages=("en",)))
        IngestService(runtime, LADDER, calibrate_rate=False).ingest(film, metadata)
    finally:
        runtime.close()


def test_a_variable_frame_rate_master_is_refused_with_the_drift(tmp_path: Path) -> None:
    with pytest.raises(IngestRejected) as info:
        ingest(tmp_path, PHONE, 6)
    [reason] = info.value.reasons
    assert reason.code == "DURATION_INVALID" and reason.field == "master"
    assert "variable frame rate: 150 frames at the nominal 30.000 fps run 5.000s" in reason.message
    assert "timestamps 6.000s" in reason.message and "fps=30/1" in reason.message


@pytest.mark.parametrize("rate", ["30000/1001", "60000/1001", "25"])
def test_constant_frame_rates_pass(tmp_path: Path, rate: str) -> None:
    ingest(tmp_path, f"testsrc2=s=256x144:r={rate}:d=3.3", 3.3)
