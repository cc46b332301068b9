"""Masters whose stored size is not their picture's: anamorphic (non-square pixels) and rotated
(phone footage with a display matrix). Their rungs follow the picture as displayed; real ffmpeg."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from reelstream.config import Settings
from reelstream.ingest.reasons import IngestRejected
from reelstream.ingest.service import IngestService
from reelstream.media.probe import probe
from reelstream.media.transcode.chunk import encode_chunk
from reelstream.media.transcode.commands import ChunkEncode, RungEncode
from reelstream.media.transcode.ladder import Rung
from reelstream.runtime import Runtime
from tests.support.media import ISO639_2, ffmpeg, title_metadata, write_metadata

LADDER = (Rung("h264", 144, 200), Rung("h264", 180, 300))


def master(path: Path, size: str, video_filter: str = "null", rotate: int | None = None) -> Path:
    source = path.with_suffix(".src.mp4") if rotate is not None else path
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=s={size}:r=24:d=3,{video_filter}", "-f", "lavfi", "-i", "sine=d=3",
           "-c:v", "libx264", "-preset", "ultrafast", "-g", "48", "-pix_fmt", "yuv420p", "-c:a", "aac",
           "-metadata:s:a:0", f"language={ISO639_2['en']}", str(source))
    if rotate is not None:  # as a phone writes it: landscape pixels, a display matrix turning them
        ffmpeg("-display_rotation", str(rotate), "-i", str(source), "-c", "copy", str(path))
    return path


def planned_sizes(tmp_path: Path, film: Path) -> list[tuple[int, int]]:
    runtime = Runtime(Settings(data_dir=tmp_path / "reel"))
    metadata = write_metadata(tmp_path / "title.json", title_metadata("film-1", film, languages=("en",)))
    IngestService(runtime, LADDER, calibrate_rate=False).ingest(film, metadata)
    reader = runtime.log.consumer(["reel.catalog"], group_id=None)
    events = [runtime.codec.decode(r.value) for r in reader.poll(max_records=1000, timeout=1)]
    reader.close()
    runtime.close()
    plan = next(e for e in events if e.type == "TranscodePlanned")
    return [(r["width"], r["height"]) for r in plan["renditions"]]


@pytest.mark.parametrize(("size", "video_filter", "rotate", "aspect"), [
    ("240x180", "setsar=4/3", None, Fraction(16, 9)),  # 16:9 anamorphic (as HDV 1440x1080), stored 4:3
    ("320x240", "null", 90, Fraction(3, 4)),  # a portrait phone clip, stored landscape
    ("320x240", "null", 180, Fraction(4, 3)),  # upside down: the size stays
])
def test_rungs_take_the_displayed_aspect_ratio(tmp_path: Path, size: str, video_filter: str, rotate: int | None,
                                               aspect: Fraction) -> None:
    film = master(tmp_path / "film.mp4", size, video_filter, rotate)
    width, height = probe(film).video.display_size  # type: ignore[union-attr]
    assert abs(width / height - aspect) < 0.01
    for w, h in planned_sizes(tmp_path, film):
        assert abs(w / h - aspect) < 0.03, (w, h)


def test_a_rotated_master_is_encoded_upright_at_the_planned_size(tmp_path: Path) -> None:
    film = master(tmp_path / "film.mp4", "320x240", rotate=90)
    width, height = planned_sizes(tmp_path, film)[0]
    out = tmp_path / "chunk.mp4"
    encode_chunk(ChunkEncode(master=film, fps=Fraction(24), start_frame=0, frame_count=48,
                             rungs=(RungEncode("r", "h264", width, height, 200),), outputs=(out,)))
    video = probe(out).video
    assert video is not None and (video.width, video.height) == (width, height) == (108, 144)
    assert video.display_size == (108, 144)  # the turn is done: no display matrix left to apply again


def test_a_master_below_every_rung_is_refused_not_left_without_video(tmp_path: Path) -> None:
    """It was planned with no rendition: audio transcoded, TitleTranscoded, never packaged."""
    film = master(tmp_path / "film.mp4", "176x120")
    runtime = Runtime(Settings(data_dir=tmp_path / "reel"))
    metadata = write_metadata(tmp_path / "title.json", title_metadata("film-1", film, languages=("en",)))
    with pytest.raises(IngestRejected) as info:
        IngestService(runtime, LADDER, calibrate_rate=False).ingest(film, metadata)
    [reason] = info.value.reasons
    assert reason.field == "master" and "176x120" in reason.message and "at least 144 lines" in reason.message
    reader = runtime.log.consumer(["reel.catalog", "reel.transcode.jobs"], group_id=None)
    kinds = [runtime.codec.decode(r.value).type for r in reader.poll(max_records=1000, timeout=1)]
    reader.close()
    runtime.close()
    assert "IngestRejected" in kinds and not {"IngestValidated", "TranscodePlanned", "AudioTranscodeRequested"} & set(kinds)
