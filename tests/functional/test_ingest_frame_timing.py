"""A variable-frame-rate master is refused: the grid times frames at the nominal rate, so its
picture would end early and drift from its sound. Constant rates, NTSC's included, pass. In MP4
and in Matroska, whose header claims a constant rate (its DefaultDuration) whatever the frames'
timestamps say, and rounds them to 1 ms, and in MPEG-TS, whose rate is guessed from its first frames. Real ffmpeg."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from reelstream.config import Settings
from reelstream.ingest.reasons import IngestRejected
from reelstream.ingest.service import IngestService
from reelstream.media import timestamps, tools
from reelstream.media.transcode.ladder import Rung
from reelstream.runtime import Runtime
from tests.support.media import ffmpeg, title_metadata, write_metadata

LADDER = (Rung("h264", 144, 200),)
# A phone clip: 30 fps, then 2 s at 15 fps (low light), then 30 fps again; MP4 says 30 fps.
PHONE = "testsrc2=s=256x144:r=30:d=6,setpts='if(lt(N,60),N/30,if(lt(N,90),2+(N-60)/15,4+(N-90)/30))/TB'"


def ingest(tmp_path: Path, video: str, seconds: float, container: str = "mp4", preset: str = "ultrafast",
           extra: tuple[str, ...] = ()) -> None:
    film = tmp_path / f"film.{container}"
    ffmpeg("-f", "lavfi", "-i", video, "-f", "lavfi", "-i", f"sine=d={seconds}", "-fps_mode", "vfr",
           *extra, "-c:v", "libx264", "-preset", preset, "-pix_fmt", "yuv420p", "-c:a", "aac",
           "-metadata:s:a:0", "language=eng", "-t", str(seconds), str(film))
    ingest_file(tmp_path, film)


def ingest_file(tmp_path: Path, film: Path) -> None:
    runtime = Runtime(Settings(data_dir=tmp_path / "reel"))
    try:
        metadata = write_metadata(tmp_path / "title.json", title_metadata("film-1", film, languages=("en",)))
        IngestService(runtime, LADDER, calibrate_rate=False).ingest(film, metadata)
    finally:
        runtime.close()


@pytest.mark.parametrize("container", ["mp4", "mkv", "ts"])
def test_a_variable_frame_rate_master_is_refused_with_the_drift(tmp_path: Path, container: str) -> None:
    with pytest.raises(IngestRejected) as info:
        ingest(tmp_path, PHONE, 6, container)
    [reason] = info.value.reasons
    assert reason.code == "DURATION_INVALID" and reason.field == "master"
    assert "variable frame rate: 150 frames at the nominal 30.000 fps run 5.000s" in reason.message
    assert "timestamps 6.000s" in reason.message and "fps=30/1" in reason.message


@pytest.mark.parametrize("container", ["mp4", "mkv", "ts"])
@pytest.mark.parametrize("rate", ["30000/1001", "60000/1001", "24000/1001", "25"])
def test_constant_frame_rates_pass(tmp_path: Path, rate: str, container: str) -> None:
    ingest(tmp_path, f"testsrc2=s=256x144:r={rate}:d=3.3", 3.3, container)


# 90 s at 30 fps but for 2 s at 15 fps (low light) and then 2 s at 45 fps: the frame count
# matches the span, so only the timestamps in the middle show it (a sampled window starts at
# 40 s); the grid would put the picture up to 1 s away from its sound there. A time base of
# 1/90000: setpts rounds to the source's 1/30, which 45 fps overfills.
SWINGING = ("testsrc2=s=256x144:r=30:d=90,settb=1/90000,setpts='if(lt(N,1200),N/30,if(lt(N,1230),40+(N-1200)/15,"
            "if(lt(N,1320),42+(N-1230)/45,44+(N-1320)/30)))/TB'")


@pytest.mark.parametrize("container", ["mp4", "mkv"])
def test_a_rate_that_swings_back_is_found_in_the_middle(tmp_path: Path, container: str) -> None:
    with pytest.raises(IngestRejected) as info:
        ingest(tmp_path, SWINGING, 90, container, extra=("-enc_time_base", "1/90000", "-g", "60"))
    [reason] = info.value.reasons
    assert reason.code == "DURATION_INVALID" and reason.field == "master"
    assert "variable frame rate: in the " in reason.message and "off where the nominal 30.000 fps" in reason.message
    assert "fps=30/1" in reason.message


@pytest.mark.parametrize("container", ["mp4", "mkv"])
def test_a_long_constant_rate_master_with_b_frames_passes(tmp_path: Path, container: str) -> None:
    # Long enough for the sampled windows; B-frames store a picture after the one it references.
    ingest(tmp_path, "testsrc2=s=256x144:r=24000/1001:d=90", 90, container, preset="veryfast")


def piped_mkv(tmp_path: Path, video: str, seconds: float) -> Path:
    """A Matroska file written to a pipe, as a live capture is: no Cues (the index ffmpeg seeks by)."""
    film = tmp_path / "film.mkv"
    with film.open("wb") as out:
        subprocess.run([tools.ffmpeg(), "-nostdin", "-v", "error", "-f", "lavfi", "-i", video, "-f", "lavfi", "-i",
                        f"sine=d={seconds}", "-fps_mode", "vfr", "-c:v", "libx264", "-preset", "ultrafast",
                        "-pix_fmt", "yuv420p", "-c:a", "aac", "-metadata:s:a:0", "language=eng", "-t", str(seconds),
                        "-f", "matroska", "-"], stdout=out, check=True)
    return film


def test_a_matroska_file_without_cues_is_read_in_one_pass_and_still_checked(tmp_path: Path) -> None:
    # Without Cues each window's seek would read the file from its start: one pass reads it once.
    ingest(tmp_path, "testsrc2=s=256x144:r=25:d=2", 2, "mkv")
    assert timestamps.matroska_has_cues(tmp_path / "film.mkv")
    piped = tmp_path / "piped"
    piped.mkdir()
    film = piped_mkv(piped, PHONE, 6)
    assert not timestamps.matroska_has_cues(film)
    with pytest.raises(IngestRejected) as info:
        ingest_file(piped, film)
    [reason] = info.value.reasons
    assert "variable frame rate: 150 frames at the nominal 30.000 fps run 5.000s" in reason.message
