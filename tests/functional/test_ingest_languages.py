"""Audio streams tagged with any ISO 639-2 code, bibliographic ('slo', 'per') or terminology
('slk', 'fas'), match the BCP 47 tags of the metadata ('sk', 'fa'). Real ffmpeg."""

from __future__ import annotations

from pathlib import Path

import pytest

from reelstream.config import Settings
from reelstream.ingest.service import IngestService
from reelstream.media.transcode.ladder import Rung
from reelstream.runtime import Runtime
from tests.support.media import make_master, title_metadata, write_metadata


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

