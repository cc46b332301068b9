"""While the ingest validates the master, its progress says how far into the file ffprobe and
ffmpeg have read: the kernel's file offset of the child's descriptor. Real processes, real ffmpeg."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from reelstream.cli.media import CliProgress
from reelstream.config import Settings
from reelstream.ingest.service import IngestService
from reelstream.media import reading as reading_module
from reelstream.media.reading import reading
from reelstream.media.transcode.ladder import Rung
from reelstream.runtime import Runtime
from tests.support.media import ffmpeg, title_metadata, write_metadata

READER = "import sys; f = open(sys.argv[1], 'rb', buffering=0); f.read(3_000_000); print('ready', flush=True); sys.stdin.read()"


@pytest.mark.parametrize("children_files", [True, False])
def test_how_far_a_child_process_has_read_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 children_files: bool) -> None:
    if not children_files:  # a kernel without /proc/PID/task/TID/children: every process's stat is read
        monkeypatch.setattr(reading_module, "_children", lambda pid: None)
    master = tmp_path / "film.mkv"
    master.write_bytes(bytes(8_000_000))
    assert reading(master) is None  # nobody has it open
    child = subprocess.Popen([sys.executable, "-c", READER, str(master)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline() == "ready\n"
        found = reading(tmp_path / "." / "film.mkv")  # the same file by another spelling
        assert found is not None and found.pid == child.pid and found.position == 3_000_000
        assert reading(master, root=child.pid) is None  # only the given process's descendants count
    finally:
        child.communicate("")


def test_the_validation_step_reports_bytes_read_of_the_master(tmp_path: Path) -> None:
    film = tmp_path / "film.mkv"  # long enough for the sampled timestamp windows: a step of a few seconds
    ffmpeg("-f", "lavfi", "-i", "testsrc2=s=256x144:r=25:d=120", "-f", "lavfi", "-i", "sine=d=120",
           "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac",
           "-metadata:s:a:0", "language=eng", str(film))
    out = io.StringIO()
    runtime = Runtime(Settings(data_dir=tmp_path / "reel"))
    try:
        metadata = write_metadata(tmp_path / "title.json", title_metadata("film-1", film, languages=("en",)))
        progress = CliProgress(out=out, tick_s=0.02)
        IngestService(runtime, (Rung("h264", 144, 200),), progress, calibrate_rate=False).ingest(film, metadata)
        progress.close()
    finally:
        runtime.close()
    size = film.stat().st_size / 1e6
    still = [line for line in out.getvalue().splitlines() if line.startswith("  ... still validating")]
    with_bytes = [line for line in still if f" / {size:.1f} MB" in line and ": film.mkv read " in line]
    assert with_bytes, out.getvalue()
