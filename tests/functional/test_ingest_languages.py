"""Audio streams tagged with any ISO 639-2 code, bibliographic ('slo', 'per') or terminology
('slk', 'fas'), match the BCP 47 tags of the metadata ('sk', 'fa'). Real ffmpeg."""

from __future__ import annotations

from pathlib import Path

import pytest

from reelstream.config import Settings
from reelstream.ingest.reasons import IngestRejected
from reelstream.ingest.service import IngestService
from reelstream.media.transcode.ladder import Rung
from reelstream.runtime import Runtime
from tests.support.media import ffmpeg, make_master, title_metadata, write_metadata


@pytest.mark.parametrize(("stored", "declared"), [(("slo", "per"), ("sk", "fa")), (("slk", "bul"), ("sk", "bg")),
                                                  (("ice", "hrv"), ("is", "hr"))])
def test_master_streams_in_iso_639_2_match_the_declared_languages(tmp_path: Path, stored: tuple[str, str],
                                                                  declared: tuple[str, str]) -> None:
    film = make_master(tmp_path / "film.mp4", seconds=2, languages=stored)
    runtime = Runtime(Settings(data_dir=tmp_path / "reel"))
    try:
        metadata = write_metadata(tmp_path / "title.json", title_metadata("film-1", film, languages=declared))
        IngestService(runtime, (Rung("h264", 144, 200),), calibrate_rate=False).ingest(film, metadata)
        reader = runtime.log.consumer(["reel.catalog"], group_id=None)
        plan = next(e for e in (runtime.codec.decode(r.value) for r in reader.poll(1000, 1))
                    if e.type == "TranscodePlanned")
        reader.close()
    finally:
        runtime.close()
    assert [(t["language"], t["track_id"]) for t in plan["audio_tracks"]] == [
        (lang, f"audio-{lang}") for lang in declared]



class Steps:
    def __init__(self) -> None:
        self.steps: list[str] = []

    def hashing(self, name: str, done: int, total: int) -> None:
        pass

    def uploading(self, name: str, done: int, total: int) -> None:
        pass

    def step(self, message: str, reading: Path | None = None) -> None:
        self.steps.append(message)


def test_a_language_in_5_1_and_stereo_becomes_one_track_from_the_stereo_mix(tmp_path: Path) -> None:
    """Streams: English 5.1, English stereo, French stereo. Both English ones were refused as
    one track id; tracks are AAC stereo, so the studio's stereo mix is the English track."""
    film = tmp_path / "film.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=256x144:r=24:d=2", "-f", "lavfi", "-i", "sine=d=2",
           "-f", "lavfi", "-i", "sine=f=660:d=2", "-f", "lavfi", "-i", "sine=f=880:d=2",
           "-filter_complex", "[1:a]pan=5.1|FL=c0|FR=c0|FC=c0|LFE=c0|BL=c0|BR=c0[surround]", "-map", "0:v",
           "-map", "[surround]", "-map", "2:a", "-map", "3:a", "-ac:a:1", "2", "-ac:a:2", "2", "-c:v", "libx264",
           "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac", "-metadata:s:a:0", "language=eng",
           "-metadata:s:a:1", "language=eng", "-metadata:s:a:2", "language=fra", str(film))
    runtime = Runtime(Settings(data_dir=tmp_path / "reel"))
    progress = Steps()
    try:
        metadata = write_metadata(tmp_path / "title.json", title_metadata("film-1", film, languages=("en", "fr")))
        IngestService(runtime, (Rung("h264", 144, 200),), progress=progress, calibrate_rate=False).ingest(
            film, metadata)
        reader = runtime.log.consumer(["reel.catalog", "reel.transcode.jobs"], group_id=None)
        published = [runtime.codec.decode(r.value) for r in reader.poll(1000, 1)]
        reader.close()
    finally:
        runtime.close()
    validated = next(e for e in published if e.type == "IngestValidated")
    assert [(a["language"], a["channels"]) for a in validated["audio_tracks"]] == [("en", 2), ("fr", 2)]
    jobs = {e["track_id"]: e["stream_index"] for e in published if e.type == "AudioTranscodeRequested"}
    assert jobs == {"audio-en": 1, "audio-fr": 2}
    assert "master audio stream 0 (en, 6 channels) is not used: stream 1 (2 channels)" in " ".join(progress.steps)


def test_a_silent_master_is_told_how_to_declare_itself_and_then_has_no_audio_track(tmp_path: Path) -> None:
    film = tmp_path / "film.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=256x144:r=24:d=2", "-c:v", "libx264", "-preset", "ultrafast",
           "-pix_fmt", "yuv420p", str(film))
    runtime = Runtime(Settings(data_dir=tmp_path / "reel"))
    service = IngestService(runtime, (Rung("h264", 144, 200),), calibrate_rate=False)
    try:
        with pytest.raises(IngestRejected) as info:
            service.ingest(film, write_metadata(tmp_path / "en.json", title_metadata("film-1", film, languages=("en",))))
        [reason] = info.value.reasons
        assert reason.code == "LANGUAGE_MISMATCH" and 'audio_languages ["zxx"]' in reason.message
        result = service.ingest(film, write_metadata(tmp_path / "zxx.json",
                                                     title_metadata("film-1", film, languages=("zxx",))))
    finally:
        runtime.close()
    assert result.jobs == 1  # one video chunk, no audio job
