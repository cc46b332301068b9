"""Chunked transcoding on the embedded runtime, end to end, with real ffmpeg.

The same workers and completion processor as on Kafka; workers as local processes.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import pytest

from reelstream.config import Settings
from reelstream.events.model import Event
from reelstream.ingest.service import IngestService
from reelstream.media import tools
from reelstream.media.probe import count_frames, probe
from reelstream.media.transcode.grid import first_frame_filter, seek_args
from reelstream.media.transcode.ladder import Rung
from reelstream.processors.embedded import run_embedded
from reelstream.processors.transcode.completion import TranscodeCompletionProcessor
from reelstream.runtime import Runtime
from reelstream.workers.capabilities import Capabilities
from reelstream.workers.pool import start_pool, stop_pool
from reelstream.workers.transcode import TranscodeWorker
from tests.support.media import (
    make_audio,
    make_master,
    title_metadata,
    write_metadata,
    write_srt,
    write_vtt,
)

LADDER = (Rung("h264", 144, 200), Rung("h264", 180, 300))
FPS = 24


def deliver(folder: Path, title_id: str, seconds: float = 5) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    master = make_master(folder / "film.mp4", seconds=seconds)
    make_audio(folder / "en-ad.m4a", seconds=seconds, language="en")
    write_srt(folder / "en.srt", [(0.5, 1.5, "Hello")])
    write_vtt(folder / "fr.vtt", [(0.5, 1.5, "Bonjour")])
    doc = title_metadata(title_id, master, subtitles=[{"file": "en.srt", "language": "en", "sdh": True},
                                                      {"file": "fr.vtt", "language": "fr"}],
                         audio=[{"file": "en-ad.m4a", "language": "en", "audio_description": True}])
    return master, write_metadata(folder / "title.json", doc)


def events(runtime: Runtime, topic: str) -> list[Event]:
    reader = runtime.log.consumer([topic], group_id=None)
    out = [runtime.codec.decode(r.value) for r in reader.poll(max_records=100_000, timeout=1)]
    reader.close()
    return out


def finished(runtime: Runtime, title_id: str) -> str | None:
    for event in events(runtime, "reel.catalog"):
        if event.type in ("TitleTranscoded", "TitleTranscodeFailed") and event["title_id"] == title_id:
            return event.type
    return None


def run_completion_until(runtime: Runtime, done: Callable[[], bool], timeout: float = 120) -> None:
    """The completion processor on the embedded host until ``done()``."""
    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(run_embedded([TranscodeCompletionProcessor()], runtime.log, runtime.state,
                                                runtime.codec, "test", stop))
        deadline = time.monotonic() + timeout
        while not done():
            assert time.monotonic() < deadline, "the title did not complete in time"
            await asyncio.sleep(0.2)
        stop.set()
        await task

    asyncio.run(main())


def framemd5(argv_input: list[str], frames: int | None = None, vf: str = "null") -> list[str]:
    limit = ["-frames:v", str(frames), "-vf", vf] if frames else []
    out = subprocess.run([tools.ffmpeg(), "-nostdin", "-v", "error", *argv_input, "-map", "0:v:0", *limit,
                          "-f", "framemd5", "-"], capture_output=True, text=True, check=True).stdout
    return [line.split(",")[-1].strip() for line in out.splitlines() if not line.startswith("#")]


def test_a_title_is_transcoded_frame_exact_by_two_worker_processes(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "reel")
    runtime = Runtime(settings)
    master, metadata = deliver(tmp_path / "studio", "film-1")
    IngestService(runtime, LADDER).ingest(master, metadata)
    env = {**os.environ, "REEL_DATA_DIR": str(settings.data_dir)}
    workers = start_pool(2, threads=1, capabilities="cpu", env=env, log_dir=tmp_path)
    try:
        run_completion_until(runtime, lambda: finished(runtime, "film-1") is not None)
    finally:
        stop_pool(workers)
    assert finished(runtime, "film-1") == "TitleTranscoded"
    total = probe(master).video.frame_count  # type: ignore[union-attr]
    assert total == 5 * FPS
    for rendition in ("h264-144p-200k", "h264-180p-300k"):
        keys = [o.key for o in runtime.objects.list(f"titles/film-1/renditions/{rendition}/chunks/")]
        assert keys == [f"titles/film-1/renditions/{rendition}/chunks/{i:06d}.mp4" for i in range(3)]
        files = []
        for key in keys:
            path = tmp_path / "out" / key
            runtime.objects.download(key, path)
            files.append(path)
            first = subprocess.run([tools.ffprobe(), "-v", "error", "-select_streams", "v:0", "-show_entries",
                                    "frame=pict_type,key_frame,pts_time", "-read_intervals", "%+#1", "-of", "csv=p=0",
                                    str(path)], capture_output=True, text=True, check=True).stdout.split(",")
            assert first[0] == "1" and float(first[1]) == 0.0 and first[2].startswith("I")  # IDR first, t=0
        assert [count_frames(f) for f in files] == [48, 48, 24]
        listing = tmp_path / f"{rendition}.txt"
        listing.write_text("".join(f"file '{f}'\n" for f in files))
        joined = tmp_path / f"{rendition}.mp4"
        subprocess.run([tools.ffmpeg(), "-nostdin", "-v", "error", "-f", "concat", "-safe", "0", "-i", str(listing),
                        "-c", "copy", str(joined)], check=True)
        decode = subprocess.run([tools.ffmpeg(), "-nostdin", "-v", "error", "-i", str(joined), "-f", "null", "-"],
                                capture_output=True, text=True, check=False)
        assert decode.returncode == 0 and decode.stderr == ""  # decodes without a single error
        assert count_frames(joined) == total
        # Each output frame is the right source frame: per-frame PSNR against the scaled master stays
        # high across every join; a duplicated or dropped frame would shift the rest by one.
        width, height = (256, 144) if "144p" in rendition else (320, 180)
        stats = tmp_path / f"{rendition}.psnr"
        subprocess.run([tools.ffmpeg(), "-nostdin", "-v", "error", "-i", str(joined), "-i", str(master),
                        "-lavfi", (f"[1:v]scale={width}:{height}:flags=bicubic,setsar=1[r];[0:v][r]"
                                   f"psnr=stats_file={stats}"), "-f", "null", "-"], check=True)
        per_frame = [float(line.split("psnr_avg:")[1].split()[0]) for line in stats.read_text().splitlines()]
        assert len(per_frame) == total and min(per_frame) > 28, min(per_frame)
    # The grid's decode is frame-exact: the frames each chunk job decodes (same seek and
    # first-frame filter as the worker) hash exactly like the master's own frames at every boundary.
    whole = framemd5(["-i", str(master)])
    for start, count in ((0, 48), (48, 48), (96, 24), (30, 20), (50, 10)):  # on and off the master's keyframes
        chunk = framemd5([*seek_args(start, Fraction(FPS)), "-i", str(master)], count,
                         first_frame_filter(start, Fraction(FPS)))
        assert chunk == whole[start:start + count]
    audio = probe(master)  # audio tracks: AAC-LC stereo, one per language plus AD
    for track in ("audio-en", "audio-fr", "audio-en-ad"):
        path = tmp_path / "out" / f"{track}.mp4"
        runtime.objects.download(f"titles/film-1/audio/{track}.mp4", path)
        info = probe(path)
        assert [(a.codec, a.channels, a.sample_rate) for a in info.audio] == [("aac", 2, 48000)]
        assert abs(info.duration_s - audio.duration_s) < 0.1
    done = [e for e in events(runtime, "reel.catalog") if e.type == "RenditionCompleted"]
    assert {(e["rendition_id"], e["chunk_count"], e["width"], e["frame_rate"]) for e in done} == {
        ("h264-144p-200k", 3, 256, "24/1"), ("h264-180p-300k", 3, 320, "24/1")}
    results = [e for e in events(runtime, "reel.transcode.results") if e.type == "ChunkTranscoded"]
    assert all(o["psnr_db"] and o["psnr_db"] > 30 and o["frames"] in (48, 24) for e in results for o in e["outputs"])
    # SSIM per chunk and rung, from x264's own measurement: the same figure as ffmpeg's ssim
    # filter on the decoded chunk against the master's frames scaled to the rung.
    middle = next(e for e in results if e["chunk_index"] == 1)
    for output in middle["outputs"]:
        width, height = (256, 144) if "144p" in output["rendition_id"] else (320, 180)
        measured = subprocess.run(
            [tools.ffmpeg(), "-nostdin", "-hide_banner", "-i", str(tmp_path / "out" / output["object_key"]),
             *seek_args(48, Fraction(FPS)), "-i", str(master), "-lavfi",
             (f"[1:v]{first_frame_filter(48, Fraction(FPS))},trim=end_frame=48,setpts=PTS-STARTPTS,"
              f"scale={width}:{height}:flags=bicubic,setsar=1,format=yuv420p[r];[0:v][r]ssim"), "-f", "null", "-"],
            capture_output=True, text=True, check=True).stderr
        assert output["ssim"] == pytest.approx(float(measured.split("SSIM Y:")[1].split()[0]), abs=0.005), output


def test_a_worker_killed_mid_job_loses_nothing_and_duplicates_nothing(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "reel")
    runtime = Runtime(settings)
    master, metadata = deliver(tmp_path / "studio", "film-2", seconds=12)
    IngestService(runtime, LADDER, calibrate_rate=False).ingest(
        master, metadata)
    env = {**os.environ, "REEL_DATA_DIR": str(settings.data_dir)}
    doomed = start_pool(1, threads=1, capabilities="cpu", env=env, log_dir=tmp_path)[0]
    deadline = time.monotonic() + 60
    while not [e for e in events(runtime, "reel.transcode.results") if e.type == "ChunkTranscoded"]:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    doomed.send_signal(signal.SIGKILL)  # mid-job: it had taken the next job and not committed it
    doomed.wait()
    survivor = start_pool(1, threads=1, capabilities="cpu", env=env, log_dir=tmp_path)
    try:
        run_completion_until(runtime, lambda: finished(runtime, "film-2") is not None, timeout=180)
    finally:
        stop_pool(survivor)
    assert finished(runtime, "film-2") == "TitleTranscoded"
    results = [e for e in events(runtime, "reel.transcode.results") if e.type == "ChunkTranscoded"]
    by_job: dict[str, set[str]] = {}
    for e in results:
        by_job.setdefault(e["job_id"], set()).add(e.event_id)
    assert len(by_job) == 6 and all(len(ids) == 1 for ids in by_job.values())  # one result per job
    keys = [o.key for o in runtime.objects.list("titles/film-2/renditions/")]
    assert len(keys) == len(set(keys)) == 12
    rendition_done = [e for e in events(runtime, "reel.catalog") if e.type == "RenditionCompleted"]
    assert len(rendition_done) == 2


def test_a_chunk_failing_n_times_fails_its_title_and_not_the_others(tmp_path: Path) -> None:
    runtime = Runtime(Settings(data_dir=tmp_path / "reel"))
    for title in ("bad", "good"):
        master, metadata = deliver(tmp_path / title, title, seconds=3)
        IngestService(runtime, (Rung("h264", 144, 200),), calibrate_rate=False).ingest(master, metadata)

    def poisoned(job: Event) -> None:
        if job["title_id"] == "bad" and job.type == "ChunkTranscodeRequested" and job["chunk_index"] == 1:
            raise OSError("disk on fire")

    worker = TranscodeWorker(runtime, "w1", Capabilities(False, tools.ffmpeg()), scratch=tmp_path / "scratch",
                             threads=1, fault=poisoned)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop.is_set,))
    thread.start()
    try:
        run_completion_until(runtime, lambda: finished(runtime, "bad") is not None
                             and finished(runtime, "good") is not None)
    finally:
        stop.set()
        thread.join()
    assert finished(runtime, "bad") == "TitleTranscodeFailed" and finished(runtime, "good") == "TitleTranscoded"
    failures = [e for e in events(runtime, "reel.transcode.results") if e.type == "ChunkFailed"]
    assert [(e["attempt"], e["final"]) for e in failures] == [(1, False), (2, False), (3, True)]
    assert "disk on fire" in failures[-1]["reason"]
    # Redelivery of a finished job: answered from its stored result, same event id, no new encode.
    job = next(e for e in events(runtime, "reel.transcode.jobs")
               if e.type == "ChunkTranscodeRequested" and e["title_id"] == "good")
    before = runtime.objects.head(f"titles/good/renditions/h264-144p-200k/chunks/{job['chunk_index']:06d}.mp4")
    again = worker.handle(job)
    original = next(e for e in events(runtime, "reel.transcode.results")
                    if e.type == "ChunkTranscoded" and e["job_id"] == job["job_id"])
    assert [e.event_id for e in again] == [original.event_id] and worker.stats.replayed == 1
    after = runtime.objects.head(before.key)
    assert after.sha256 == before.sha256
    assert hashlib.sha256(b"").hexdigest() != after.sha256
