"""A master damaged in its middle passes ingest's decode of its ends; the chunk and audio encodes
then find the damage (ffmpeg conceals it and exits 0) and fail with where it is, instead of
publishing it in every rung. A clean open-GOP master is not mistaken for a damaged one. Real ffmpeg."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from reelstream.config import Settings
from reelstream.events.model import Event
from reelstream.ingest.reasons import IngestRejected
from reelstream.ingest.service import IngestService
from reelstream.media import tools
from reelstream.media.transcode.chunk import encode_chunk
from reelstream.media.transcode.commands import ChunkEncode, RungEncode
from reelstream.media.transcode.ladder import Rung
from reelstream.runtime import Runtime
from reelstream.workers.capabilities import Capabilities
from reelstream.workers.transcode import TranscodeWorker
from tests.support.media import ffmpeg, title_metadata, write_metadata

LADDER = (Rung("h264", 144, 200),)
NOISY = "testsrc2=s=426x240:r=24:d=8,noise=alls=20:allf=t"


@pytest.fixture(scope="module")
def damaged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 s, 2-s GOPs; every 61st byte of the file's middle tenth flipped (video and audio)."""
    path = tmp_path_factory.mktemp("damaged") / "film.mp4"
    ffmpeg("-f", "lavfi", "-i", NOISY, "-f", "lavfi", "-i", "sine=d=8", "-c:v", "libx264", "-preset", "ultrafast",
           "-g", "48", "-pix_fmt", "yuv420p", "-c:a", "aac", "-metadata:s:a:0", "language=eng",
           "-movflags", "+faststart", str(path))
    data = bytearray(path.read_bytes())
    for i in range(len(data) * 45 // 100, len(data) * 55 // 100, 61):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


def ingest(tmp_path: Path, film: Path, calibrate: bool) -> Runtime:
    runtime = Runtime(Settings(data_dir=tmp_path / "reel"))
    metadata = write_metadata(tmp_path / "title.json", title_metadata("film-1", film, languages=("en",)))
    IngestService(runtime, LADDER, calibrate_rate=calibrate).ingest(film, metadata)
    return runtime


def events(runtime: Runtime, topic: str) -> list[Event]:
    reader = runtime.log.consumer([topic], group_id=None)
    out = [runtime.codec.decode(r.value) for r in reader.poll(max_records=10_000, timeout=1)]
    reader.close()
    return out


def test_chunks_and_audio_of_a_damaged_stretch_fail_naming_it(tmp_path: Path, damaged: Path) -> None:
    runtime = ingest(tmp_path, damaged, calibrate=False)  # first and last 2 s decode cleanly
    worker = TranscodeWorker(runtime, "w1", Capabilities(False, tools.ffmpeg()), scratch=tmp_path / "scratch",
                             threads=1)
    outcome: dict[int | str, Event] = {}
    for job in events(runtime, "reel.transcode.jobs"):
        [result, *retries] = worker.handle(job)
        assert retries == [], f"{job['job_id']}: a damaged master is not encoded again"
        outcome[job["chunk_index"] if job.type == "ChunkTranscodeRequested" else "audio"] = result
    runtime.close()
    assert {k: e.type for k, e in outcome.items()} == {
        0: "ChunkTranscoded", 1: "ChunkFailed", 2: "ChunkFailed", 3: "ChunkTranscoded", "audio": "ChunkFailed"}
    assert all(e["final"] and e["attempt"] == 1 for e in outcome.values() if e.type == "ChunkFailed")
    assert "the master's video is damaged in the chunk from frame 48 (48 frames)" in outcome[1]["reason"]
    assert "deliver the master again" in outcome[1]["reason"]
    assert "audio stream 0 of titles/film-1/master/film.mp4 is damaged" in outcome["audio"]["reason"]


def test_a_calibration_sample_in_the_damage_rejects_the_ingest(tmp_path: Path, damaged: Path) -> None:
    with pytest.raises(IngestRejected) as info:
        ingest(tmp_path, damaged, calibrate=True)
    [reason] = info.value.reasons
    assert reason.code == "DECODE_FAILED" and "damaged in the chunk from frame" in reason.message


def test_a_clean_open_gop_master_is_not_taken_for_damaged(tmp_path: Path) -> None:
    """Seeking into it makes H.264 log errors for leading pictures it drops: no corrupt frame."""
    master = tmp_path / "open-gop.mp4"
    ffmpeg("-f", "lavfi", "-i", NOISY.replace("d=8", "d=5"), "-c:v", "libx264", "-preset", "fast",
           "-x264-params", "open-gop=1:keyint=37:bframes=3", "-pix_fmt", "yuv420p", str(master))
    for start in (48, 96):
        encode_chunk(ChunkEncode(master=master, fps=Fraction(24), start_frame=start, frame_count=24,
                                 rungs=(RungEncode("r", "h264", 256, 144, 200),), outputs=(tmp_path / "c.mp4",)))
