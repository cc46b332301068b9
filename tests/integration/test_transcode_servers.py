"""Ingest and chunked transcoding on the server runtime: Kafka, Cassandra and S3.

The same code as the embedded tests; only the URLs differ. Workers are separate
processes in one Kafka consumer group.

The title test is the issue's acceptance delivery, shortened to a 5-s 320x180 master and
two small rungs. ``REEL_IT_MASTER=60:1920x1080 pytest --timeout 3000 -s -k title`` runs it
at full size: a 60-s 1080p master through the default ladder (about 15 minutes on 2 cores;
run by hand, not in CI).
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from reelstream.config import Settings
from reelstream.ingest.service import IngestService
from reelstream.ingest.upload import upload_resumable
from reelstream.media import tools
from reelstream.media.probe import count_frames
from reelstream.media.transcode.ladder import DEFAULT_LADDER, Rung
from reelstream.runtime import Runtime
from reelstream.stores.s3 import S3ObjectStore
from tests.support.fleet import transcode_with_fleet
from tests.support.media import (
    make_audio,
    make_master,
    sha256,
    title_metadata,
    write_metadata,
    write_srt,
    write_vtt,
)

LADDER = (Rung("h264", 144, 200), Rung("h264", 180, 300))


def master_shape() -> tuple[int, str, tuple[Rung, ...]]:
    """(seconds, size, ladder) of the title test's master: REEL_IT_MASTER=SECONDS:WxH for the
    full acceptance delivery through the default ladder."""
    spec = os.environ.get("REEL_IT_MASTER")
    if not spec:
        return 5, "320x180", LADDER
    seconds, size = spec.split(":")
    return int(seconds), size, DEFAULT_LADDER


@pytest.fixture
def servers(kafka_bootstrap: str, cassandra_contact: tuple[list[str], int], s3_settings: dict[str, str],
            unique: str, tmp_path: Path) -> Settings:
    hosts, port = cassandra_contact
    # The deployment's setup creates the bucket; the runtime's roles only open it.
    S3ObjectStore(f"reel-it-{unique}", s3_settings["endpoint"], s3_settings["region"], s3_settings["access_key"],
                  s3_settings["secret_key"], create_bucket=True)
    return Settings(data_dir=tmp_path / "reel", log_url=f"kafka://{kafka_bootstrap}", group_prefix=f"it-{unique}",
                    namespace=f"ns-{unique}",  # other runs on the broker must not take its jobs
                    state_url=f"cassandra://{','.join(hosts)}:{port}/reel_it_{unique}",
                    objects_url=f"s3://reel-it-{unique}?endpoint={s3_settings['endpoint']}",
                    s3_access_key=s3_settings["access_key"], s3_secret_key=s3_settings["secret_key"])


def test_a_title_is_transcoded_on_kafka_cassandra_and_s3(servers: Settings, unique: str, tmp_path: Path) -> None:
    runtime = Runtime(servers)
    title = f"it-{unique}"
    seconds, size, ladder = master_shape()
    master = make_master(tmp_path / "film.mp4", seconds=seconds, size=size)
    make_audio(tmp_path / "en-ad.m4a", seconds=seconds)
    write_srt(tmp_path / "en.srt", [(0.5, 1.5, "Hello"), (seconds - 1.5, seconds - 0.5, "Goodbye")])
    write_vtt(tmp_path / "fr.vtt", [(0.5, 1.5, "Bonjour"), (seconds - 1.5, seconds - 0.5, "Au revoir")])
    # The acceptance shape, shorter: two audio languages in the master, an audio-description
    # sidecar and two subtitle files.
    metadata = write_metadata(tmp_path / "title.json", title_metadata(
        title, master, subtitles=[{"file": "en.srt", "language": "en", "sdh": True}, {"file": "fr.vtt", "language": "fr"}],
        audio=[{"file": "en-ad.m4a", "language": "en", "audio_description": True}]))
    started = time.monotonic()
    result = IngestService(runtime, ladder).ingest(master, metadata)
    transcode_with_fleet(runtime, servers, title, tmp_path, timeout_s=240 + 5 * seconds * len(result.renditions))
    print(f"{seconds}-s {size} master, renditions {result.renditions}: transcoded "
          f"{time.monotonic() - started:.0f} s after the ingest began (CRFs {result.crfs})")
    frames = seconds * 24
    for rendition in result.renditions:
        keys = [o.key for o in runtime.objects.list(f"titles/{title}/renditions/{rendition}/chunks/")]
        assert len(keys) == result.chunk_count == -(-seconds // 2)
        files = []
        for key in keys:
            files.append(tmp_path / key)
            runtime.objects.download(key, files[-1])
        listing = tmp_path / f"{rendition}.txt"
        listing.write_text("".join(f"file '{f}'\n" for f in files))
        joined = tmp_path / f"{rendition}.mp4"
        subprocess.run([tools.ffmpeg(), "-nostdin", "-v", "error", "-f", "concat", "-safe", "0", "-i", str(listing),
                        "-c", "copy", str(joined)], check=True)
        assert count_frames(joined) == frames
        decode = subprocess.run([tools.ffmpeg(), "-nostdin", "-v", "error", "-i", str(joined), "-f", "null", "-"],
                                capture_output=True, text=True, check=False)
        assert decode.returncode == 0 and decode.stderr == ""
        print(f"  {rendition}: {len(keys)} chunks, {frames} frames, decoded with no error, "
              f"{joined.stat().st_size * 8 / 1000 / seconds:.0f} kbit/s")
    for track in ("audio-en", "audio-fr", "audio-en-ad"):
        assert runtime.objects.exists(f"titles/{title}/audio/{track}.mp4")
    assert runtime.objects.exists(f"titles/{title}/subtitles/text-en-sdh.vtt")
    assert runtime.objects.exists(f"titles/{title}/subtitles/text-fr.vtt")
    runtime.close()


def test_an_interrupted_s3_multipart_upload_resumes_from_the_servers_parts(servers: Settings, tmp_path: Path) -> None:
    runtime = Runtime(servers)
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(4 * 5 * 1024 * 1024 + 77))  # 5 parts of 5 MiB

    def drop_at_part_4(part: int) -> None:
        if part == 4:
            raise ConnectionError("network dropped")

    with pytest.raises(ConnectionError):
        upload_resumable(runtime.objects, "titles/x/master/big.bin", source, tmp_path / "journal",
                         part_size=5 * 1024 * 1024, fault=drop_at_part_4)
    report = upload_resumable(runtime.objects, "titles/x/master/big.bin", source, tmp_path / "journal",
                              part_size=5 * 1024 * 1024)
    assert (report.parts, report.parts_sent) == (5, 2)
    assert runtime.objects.head("titles/x/master/big.bin").sha256 == sha256(source)
    runtime.objects.download("titles/x/master/big.bin", tmp_path / "back.bin")
    assert sha256(tmp_path / "back.bin") == sha256(source)
