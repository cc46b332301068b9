"""Ingest on the embedded runtime: real ffmpeg, each fault giving its own rejection, nothing lost."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from reelstream.config import Settings
from reelstream.events.model import Event
from reelstream.ingest.reasons import IngestRejected
from reelstream.ingest.service import IngestService
from reelstream.ingest.upload import upload_resumable
from reelstream.media.transcode.ladder import Rung
from reelstream.runtime import Runtime
from tests.support.media import (
    make_audio,
    make_master,
    sha256,
    title_metadata,
    write_metadata,
    write_srt,
    write_vtt,
)
from tests.support.ports import free_port

LADDER = (Rung("h264", 144, 200), Rung("h264", 180, 300))


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A delivery folder: master (en, fr), an audio-description track, two subtitle files."""
    folder = tmp_path_factory.mktemp("studio")
    make_master(folder / "film.mp4", seconds=4)
    make_audio(folder / "en-ad.m4a", seconds=4, language="en")
    write_srt(folder / "en.srt", [(0.5, 1.5, "Hello"), (2.0, 3.0, "[door slams]")])
    write_vtt(folder / "fr.vtt", [(0.5, 1.5, "Bonjour"), (2.0, 3.5, "Au revoir")])
    return folder


def delivery(studio: Path, tmp_path: Path, **overrides: object) -> tuple[Path, Path]:
    folder = tmp_path / "delivery"
    shutil.copytree(studio, folder)
    master = folder / "film.mp4"
    doc = title_metadata("film-1", master, subtitles=[{"file": "en.srt", "language": "en", "sdh": True},
                                                      {"file": "fr.vtt", "language": "fr"}],
                         audio=[{"file": "en-ad.m4a", "language": "en", "audio_description": True}], **overrides)
    return master, write_metadata(folder / "title.json", doc)


def catalog(runtime: Runtime) -> list[Event]:
    reader = runtime.log.consumer(["reel.catalog"], group_id=None)
    events = [runtime.codec.decode(r.value) for r in reader.poll(max_records=10_000, timeout=1)]
    reader.close()
    return events


def rejected(runtime: Runtime, master: Path, metadata: Path) -> IngestRejected:
    with pytest.raises(IngestRejected) as info:
        IngestService(runtime, LADDER, calibrate_rate=False).ingest(master, metadata)
    assert info.value.uploaded and "The uploaded files are kept" in str(info.value)
    event = [e for e in catalog(runtime) if e.type == "IngestRejected"][-1]
    assert [r["code"] for r in event["reasons"]] == [r.code for r in info.value.reasons]
    assert event["object_key"] == "titles/film-1/master/film.mp4"
    assert runtime.objects.head(event["object_key"]).sha256 == sha256(master)  # the master is kept
    return info.value


def test_a_good_delivery_is_validated_and_planned(studio: Path, tmp_path: Path) -> None:
    runtime = Runtime(Settings(data_dir=tmp_path / "reel"))
    master, metadata = delivery(studio, tmp_path)
    result = IngestService(runtime, LADDER).ingest(master, metadata)
    kinds = [e.type for e in catalog(runtime)]
    assert kinds == ["TitleRegistered", "MezzanineUploaded", "MezzanineUploaded", "MezzanineUploaded",
                     "MezzanineUploaded", "IngestValidated", "TranscodePlanned"]
    validated = next(e for e in catalog(runtime) if e.type == "IngestValidated")
    assert validated["video"]["width"] == 320 and validated["video"]["frame_rate"] == "24/1"
    assert [(a["language"], a["audio_description"]) for a in validated["audio_tracks"]] == [
        ("en", False), ("fr", False), ("en", True)]
    assert [s["sdh"] for s in validated["subtitle_tracks"]] == [True, False]
    assert set(result.crfs) == {"h264-144p-200k", "h264-180p-300k"}  # rate control calibrated per rung
    vtt = runtime.objects.get("titles/film-1/subtitles/text-en-sdh.vtt").decode()
    assert vtt.startswith("WEBVTT") and "00:00:02.000 --> 00:00:03.000" in vtt
    assert runtime.objects.exists("titles/film-1/subtitles/text-fr.vtt")
    # 2 chunks x 1 group, one of them encoded by the calibration (no job, its result published); 3 audio tracks
    assert result.chunk_count == 2 and result.jobs == 1 + 3
    log = runtime.log.consumer(["reel.transcode.results", "reel.transcode.jobs"], group_id=None)
    published = []
    while records := log.poll(100, 0.5):
        published += [runtime.codec.decode(r.value) for r in records]
    log.close()
    kept = [e for e in published if e.type == "ChunkTranscoded"]
    jobs = [e["chunk_index"] for e in published if e.type == "ChunkTranscodeRequested"]
    assert len(kept) == 1 and jobs == [1 - kept[0]["chunk_index"]]
    assert all(runtime.objects.exists(o["object_key"]) for o in kept[0]["outputs"])


def test_wrong_checksum(studio: Path, tmp_path: Path) -> None:
    runtime = Runtime(Settings(data_dir=tmp_path / "reel"))
    master, metadata = delivery(studio, tmp_path, master={"sha256": "0" * 64})
    error = rejected(runtime, master, metadata)
    assert [r.code for r in error.reasons] == ["CHECKSUM_MISMATCH"]


def test_truncated_upload(studio: Path, tmp_path: Path) -> None:
    runtime = Runtime(Settings(data_dir=tmp_path / "reel"))
    master, metadata = delivery(studio, tmp_path)  # checksum and size of the complete file
    data = master.read_bytes()
    master.write_bytes(data[: len(data) * 2 // 3])
    error = rejected(runtime, master, metadata)
    assert error.reasons[0].code == "TRUNCATED_UPLOAD" and "CHECKSUM_MISMATCH" not in {r.code for r in error.reasons}


def test_a_master_cut_short_before_its_checksum_is_named_truncated(studio: Path, tmp_path: Path) -> None:
    """The studio's own copy was cut short, so its checksum and size agree with it: the MP4 index
    (written first) still lists every frame. It was refused as a decode error of its last seconds."""
    folder = tmp_path / "t"
    folder.mkdir()
    master = folder / "film.mp4"
    data = (studio / "film.mp4").read_bytes()
    master.write_bytes(data[: len(data) * 9 // 10])
    error = rejected(runtime=Runtime(Settings(data_dir=tmp_path / "reel")), master=master,
                     metadata=write_metadata(folder / "title.json", title_metadata("film-1", master)))
    truncated = [r for r in error.reasons if r.code == "TRUNCATED_UPLOAD"]
    assert truncated and truncated[0].field == "master"
    assert re.search(r"its index lists 96 video frames, only \d+ are in it", truncated[0].message)


def test_corrupt_master(studio: Path, tmp_path: Path) -> None:
    runtime = Runtime(Settings(data_dir=tmp_path / "reel"))
    folder = tmp_path / "c"
    folder.mkdir()
    master = folder / "film.mp4"
    data = bytearray((studio / "film.mp4").read_bytes())
    for i in range(len(data) * 3 // 4, len(data) - 64, 97):  # damage the last seconds' pictures
        data[i] ^= 0xFF
    master.write_bytes(bytes(data))
    metadata = write_metadata(folder / "title.json", title_metadata("film-1", master))
    error = rejected(runtime, master, metadata)
    assert [r.code for r in error.reasons] == ["DECODE_FAILED"] and "last" in error.reasons[0].message


def test_invalid_metadata_and_bad_subtitle_timing_and_language(studio: Path, tmp_path: Path) -> None:
    runtime = Runtime(Settings(data_dir=tmp_path / "reel"))
    master, metadata = delivery(studio, tmp_path, audio_languages=["en", "fr", "de"])
    write_srt(metadata.parent / "en.srt", [(3.0, 2.0, "Backwards"), (1.0, 9.5, "Past the end")])
    doc = metadata.read_text().replace('"window_end": null', '"window_end": "2020-01-01T00:00:00Z"')
    metadata.write_text(doc)
    error = rejected(runtime, master, metadata)
    by_code = {r.code: r for r in error.reasons}
    assert set(by_code) == {"METADATA_INVALID", "SUBTITLE_INVALID", "LANGUAGE_MISMATCH"}
    assert by_code["METADATA_INVALID"].field == "license_terms.window_end"
    assert by_code["SUBTITLE_INVALID"].field == "subtitles/en.srt"
    assert "cue 1 ends" in by_code["SUBTITLE_INVALID"].message
    assert "'de'" in by_code["LANGUAGE_MISMATCH"].message
    assert "TitleRegistered" not in [e.type for e in catalog(runtime)]  # invalid metadata is not registered


def test_cli_names_the_reason_and_missing_metadata_writes_nothing(studio: Path, tmp_path: Path) -> None:
    master, metadata = delivery(studio, tmp_path, master={"sha256": "0" * 64})
    env = {**os.environ, "REEL_DATA_DIR": str(tmp_path / "reel")}
    cli = [sys.executable, "-m", "reelstream.cli", "ingest", str(master), "--quiet", "--metadata"]
    bad = subprocess.run([*cli, str(metadata)], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert bad.returncode == 2 and "CHECKSUM_MISMATCH [master.sha256]" in bad.stderr
    assert "The uploaded files are kept" in bad.stderr
    missing = subprocess.run([*cli, str(tmp_path / "nope.json")], env=env, capture_output=True, text=True, timeout=60, check=False)
    assert missing.returncode == 2 and "METADATA_INVALID" in missing.stderr
    assert "The uploaded files are kept" not in missing.stderr and "Nothing was uploaded" in missing.stderr


def test_the_cli_shows_the_hashing_before_the_upload(studio: Path, tmp_path: Path) -> None:
    master, metadata = delivery(studio, tmp_path, master={"sha256": "0" * 64})  # rejected once uploaded
    env = {**os.environ, "REEL_DATA_DIR": str(tmp_path / "reel")}
    done = subprocess.run([sys.executable, "-m", "reelstream.cli", "ingest", str(master), "--metadata", str(metadata)],
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    shown = done.stderr.replace("\r", "\n")
    assert "hashing master:" in shown and "uploading master:" in shown, done.stderr
    assert shown.index("hashing master:") < shown.index("uploading master:")


def test_an_interrupted_upload_resumes_without_starting_over(tmp_path: Path) -> None:
    runtime = Runtime(Settings(data_dir=tmp_path / "reel"))
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(10 * 64 * 1024 + 123))  # 11 parts of 64 KiB

    def cut_after_four(part: int) -> None:
        if part == 5:
            raise ConnectionError("network dropped")

    with pytest.raises(ConnectionError):
        upload_resumable(runtime.objects, "titles/x/master/big.bin", source, tmp_path / "journal",
                         part_size=64 * 1024, fault=cut_after_four)
    assert not runtime.objects.exists("titles/x/master/big.bin")
    report = upload_resumable(runtime.objects, "titles/x/master/big.bin", source, tmp_path / "journal",
                              part_size=64 * 1024)
    assert (report.parts, report.parts_sent) == (11, 7)  # parts 1-4 were not sent again
    assert report.info.sha256 == sha256(source) == runtime.objects.head("titles/x/master/big.bin").sha256


def test_two_tracks_that_would_share_a_track_id_are_rejected_not_one_overwritten(studio: Path,
                                                                                 tmp_path: Path) -> None:
    # Audio tracks are named by primary language (audio-fr), subtitles by tag and kind (text-en):
    # a Canadian French dub beside the master's French, or a second plain English subtitle file,
    # would be planned under the same track id, its object written over the other's.
    runtime = Runtime(Settings(data_dir=tmp_path / "reel"))
    master, metadata = delivery(studio, tmp_path)
    make_audio(metadata.parent / "fr-ca.m4a", seconds=4, language="fr")
    write_srt(metadata.parent / "fr-2.srt", [(0.5, 1.5, "Bonjour encore")])
    doc = json.loads(metadata.read_text())
    doc["audio"].append({"file": "fr-ca.m4a", "language": "fr-CA"})
    doc["subtitles"].append({"file": "fr-2.srt", "language": "fr"})
    write_metadata(metadata, doc)
    error = rejected(runtime, master, metadata)
    assert [(r.code, r.field) for r in error.reasons] == [("SUBTITLE_INVALID", "subtitles/fr-2.srt"),
                                                          ("AUDIO_INVALID", "audio/fr-ca.m4a")]
    assert "text-fr" in error.reasons[0].message and "subtitles/fr.vtt" in error.reasons[0].message
    assert "audio-fr" in error.reasons[1].message and "master audio stream 1" in error.reasons[1].message


def nothing_written(data_dir: Path) -> None:
    """No event on reel.catalog and no object in the store: the catalog is as it was."""
    runtime = Runtime(Settings(data_dir=data_dir))
    assert catalog(runtime) == []
    assert list(runtime.objects.list()) == []
    runtime.close()


def test_a_missing_master_is_a_clean_error_and_writes_nothing(studio: Path, tmp_path: Path) -> None:
    _, metadata = delivery(studio, tmp_path)
    missing = tmp_path / "run" / "bad" / "nope.mp4"
    env = {**os.environ, "REEL_DATA_DIR": str(tmp_path / "reel")}
    done = subprocess.run([sys.executable, "-m", "reelstream.cli", "ingest", str(missing), "--quiet",
                           "--metadata", str(metadata)], env=env, capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith("reel ingest: ingest of film-1 rejected")
    assert f"PROBE_FAILED [master]: {missing}: no such file" in done.stderr
    assert "Nothing was uploaded" in done.stderr and "The uploaded files are kept" not in done.stderr
    nothing_written(tmp_path / "reel")  # was: TitleRegistered, then a FileNotFoundError


def test_a_missing_or_unreadable_sidecar_is_refused_before_any_upload(studio: Path, tmp_path: Path) -> None:
    master, metadata = delivery(studio, tmp_path)
    (metadata.parent / "fr.vtt").unlink()
    (metadata.parent / "en-ad.m4a").unlink()
    (metadata.parent / "en-ad.m4a").mkdir()  # there, but not a file
    runtime = Runtime(Settings(data_dir=tmp_path / "reel"))
    with pytest.raises(IngestRejected) as info:
        IngestService(runtime, LADDER, calibrate_rate=False).ingest(master, metadata)
    runtime.close()
    nothing_written(tmp_path / "reel")  # was: master uploaded, TitleRegistered, IngestRejected
    assert [(r.code, r.field) for r in info.value.reasons] == [("SUBTITLE_INVALID", "subtitles/fr.vtt"),
                                                               ("AUDIO_INVALID", "audio/en-ad.m4a")]
    assert "no such file" in info.value.reasons[0].message
    assert "not a regular file" in info.value.reasons[1].message
    assert not info.value.uploaded and "Nothing was uploaded" in str(info.value)


def test_an_upload_cut_off_publishes_nothing(studio: Path, tmp_path: Path) -> None:
    master, metadata = delivery(studio, tmp_path)
    calls = []

    def drop_on_the_second_file(part: int) -> None:
        calls.append(part)
        if len(calls) == 2:  # the master is stored, the first sidecar is not
            raise ConnectionError("network dropped")

    runtime = Runtime(Settings(data_dir=tmp_path / "reel"))
    service = IngestService(runtime, LADDER, calibrate_rate=False, fault=drop_on_the_second_file)
    with pytest.raises(ConnectionError):
        service.ingest(master, metadata)
    assert catalog(runtime) == []  # was: TitleRegistered and the master's MezzanineUploaded
    runtime.close()


def test_an_unreachable_s3_endpoint_publishes_nothing(studio: Path, tmp_path: Path) -> None:
    master, metadata = delivery(studio, tmp_path)
    env = {**os.environ, "REEL_DATA_DIR": str(tmp_path / "reel"), "REEL_S3_ENDPOINT": f"http://127.0.0.1:{free_port()}"}
    done = subprocess.run([sys.executable, "-m", "reelstream.cli", "ingest", str(master), "--quiet", "--s3",
                           "--metadata", str(metadata)], env=env, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 2 and "S3 endpoint unreachable" in done.stderr, done.stderr
    runtime = Runtime(Settings(data_dir=tmp_path / "reel"))
    assert catalog(runtime) == []  # was: TitleRegistered, the title left REGISTERED
    runtime.close()


def test_a_refused_ingest_on_an_unreachable_log_reports_the_refusal(tmp_path: Path) -> None:
    # The CLI flushed the log after any ingest, opening it: with the broker down, its error
    # ("Kafka ... did not answer") hid the ingest's own, a master that does not exist.
    import socket

    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        nowhere = closed.getsockname()[1]
    metadata = tmp_path / "title.json"
    metadata.write_text("{}")
    done = subprocess.run([sys.executable, "-m", "reelstream.cli", "ingest", str(tmp_path / "nope.mp4"),
                           "--metadata", str(metadata), "--data-dir", str(tmp_path / "reel")],
                          capture_output=True, text=True, timeout=120, check=False,
                          env={**os.environ, "REEL_LOG_URL": f"kafka://127.0.0.1:{nowhere}"})
    assert done.returncode == 2 and "nope.mp4" in done.stderr and "did not answer" not in done.stderr, done.stderr
