"""Subtitle sidecars as studios deliver them: UTF-16 with a byte order mark (Windows "Unicode")
is read, Windows-1252 is refused with the line and the fix; the WebVTT stored is UTF-8. Real ffmpeg."""

from __future__ import annotations

from pathlib import Path

import pytest

from reelstream.config import Settings
from reelstream.ingest.reasons import IngestRejected
from reelstream.ingest.service import IngestService
from reelstream.media.transcode.ladder import Rung
from reelstream.runtime import Runtime
from tests.support.media import make_master, title_metadata, write_metadata

SRT = "1\r\n00:00:00,500 --> 00:00:01,500\r\nCafé, déjà vu\r\n\r\n2\r\n00:00:02,000 --> 00:00:03,000\r\n¿Qué?\r\n"


@pytest.fixture
def runtime(tmp_path: Path):  # type: ignore[no-untyped-def]
    rt = Runtime(Settings(data_dir=tmp_path / "reel"))
    yield rt
    rt.close()


def ingest(runtime: Runtime, tmp_path: Path, subtitle: bytes) -> None:
    film = make_master(tmp_path / "film.mp4", seconds=4, languages=("en",))
    (tmp_path / "fr.srt").write_bytes(subtitle)
    doc = title_metadata("film-1", film, languages=("en",), subtitles=[{"file": "fr.srt", "language": "fr"}])
    IngestService(runtime, (Rung("h264", 144, 200),), calibrate_rate=False).ingest(
        film, write_metadata(tmp_path / "title.json", doc))


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-8-sig"])
def test_a_subtitle_file_with_a_byte_order_mark_is_read_in_its_encoding(runtime: Runtime, tmp_path: Path,
                                                                       encoding: str) -> None:
    data = SRT.encode(encoding)
    if encoding == "utf-16-be":
        data = b"\xfe\xff" + data  # Python writes no mark for an explicit byte order
    ingest(runtime, tmp_path, data)
    vtt = runtime.objects.get("titles/film-1/subtitles/text-fr.vtt").decode("utf-8")
    assert vtt.startswith("WEBVTT\n\n00:00:00.500 --> 00:00:01.500\nCafé, déjà vu\n") and "¿Qué?" in vtt


def test_a_windows_1252_subtitle_file_is_refused_with_the_line_and_the_fix(runtime: Runtime, tmp_path: Path) -> None:
    with pytest.raises(IngestRejected) as info:
        ingest(runtime, tmp_path, SRT.encode("cp1252"))
    [reason] = info.value.reasons
    assert reason.code == "SUBTITLE_INVALID" and reason.field == "subtitles/fr.srt"
    assert "line 3: byte 0xe9 is not UTF-8" in reason.message and "iconv" in reason.message
