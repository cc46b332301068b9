"""Masters whose sound and picture do not start or end together: the audio track is encoded from
the first video frame on, so it stays in sync after packaging (which drops edit lists), and to the
video's length, so every track ends with the picture. Real ffmpeg."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from reelstream.config import Settings
from reelstream.ingest.service import IngestService
from reelstream.media import tools
from reelstream.media.probe import probe
from reelstream.media.transcode.ladder import Rung
from reelstream.runtime import Runtime
from reelstream.workers.capabilities import Capabilities
from reelstream.workers.transcode import TranscodeWorker
from tests.support.media import ffmpeg, title_metadata, write_metadata

PICTURE = "testsrc2=s=256x144:r=24:d={d}"
TONE_THEN_SILENCE = "sine=f=440:sample_rate=48000:d=1,apad=whole_dur={d}"  # 1 s of tone from its start


def audio_track(tmp_path: Path, video_offset: float, audio_offset: float, audio_end: float = 4) -> Path:
    """The worker's encode of a 4-s master's audio; the master's streams start at the offsets given."""
    film = tmp_path / "film.mp4"
    ffmpeg("-itsoffset", str(video_offset), "-f", "lavfi", "-i", PICTURE.format(d=4 - video_offset),
           "-itsoffset", str(audio_offset), "-f", "lavfi", "-i", TONE_THEN_SILENCE.format(d=audio_end - audio_offset),
           "-c:v", "libx264", "-preset", "ultrafast", "-g", "48", "-pix_fmt", "yuv420p", "-c:a", "aac",
           "-metadata:s:a:0", "language=eng", str(film))
    runtime = Runtime(Settings(data_dir=tmp_path / "reel"))
    try:
        metadata = write_metadata(tmp_path / "title.json", title_metadata("film-1", film, languages=("en",)))
        IngestService(runtime, (Rung("h264", 144, 200),), calibrate_rate=False).ingest(film, metadata)
        reader = runtime.log.consumer(["reel.transcode.jobs"], group_id=None)
        job = next(e for e in (runtime.codec.decode(r.value) for r in reader.poll(1000, 1))
                   if e.type == "AudioTranscodeRequested")
        reader.close()
        worker = TranscodeWorker(runtime, "w1", Capabilities(False, tools.ffmpeg()), scratch=tmp_path / "scratch")
        [done] = worker.handle(job)
        out = tmp_path / "audio.mp4"
        out.write_bytes(runtime.objects.get(done["object_key"]))
    finally:
        runtime.close()
    return out


def tone_spans(path: Path) -> tuple[float, float]:
    """(where the tone starts, where it stops) on the track's own timeline, edit lists ignored as
    the packaged CMAF track ignores them."""
    stderr = subprocess.run([tools.ffmpeg(), "-nostdin", "-hide_banner", "-ignore_editlist", "1", "-i", str(path),
                             "-af", "silencedetect=n=-40dB:d=0.2", "-f", "null", "-"],
                            capture_output=True, text=True, check=True).stderr
    starts = [float(x) for x in re.findall(r"silence_start: ([\d.]+)", stderr)]
    ends = [float(x) for x in re.findall(r"silence_end: ([\d.]+)", stderr)]
    tone_start = ends[0] if starts and starts[0] < 0.05 else 0.0
    return tone_start, next(s for s in starts if s > tone_start)


@pytest.mark.parametrize(("video_offset", "audio_offset", "tone"), [
    (0.0, 0.5, (0.5, 1.5)),  # sound starts half a second after the picture: silence first
    (0.5, 0.0, (0.0, 0.5)),  # picture starts late: the sound before it is not part of the title
])
def test_the_audio_track_starts_with_the_first_video_frame(tmp_path: Path, video_offset: float, audio_offset: float,
                                                           tone: tuple[float, float]) -> None:
    start, stop = tone_spans(audio_track(tmp_path, video_offset, audio_offset))
    assert abs(start - tone[0]) < 0.04 and abs(stop - tone[1]) < 0.04, (start, stop)


@pytest.mark.parametrize("audio_end", [2.5, 5.5])
def test_the_audio_track_lasts_as_long_as_the_video(tmp_path: Path, audio_end: float) -> None:
    """A dub 1.5 s short ended before the picture; one 1.5 s long ran on past its last frame."""
    track = audio_track(tmp_path, 0.0, 0.0, audio_end)
    assert abs(probe(track).duration_s - 4.0) < 0.03
