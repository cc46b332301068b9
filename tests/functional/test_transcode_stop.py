"""Stopping a transcode worker mid-job, with real signals to a real `reel worker transcode`.

A terminal's Ctrl-C sends SIGINT to the whole foreground process group; `stop_pool` and
service managers send SIGTERM to the worker alone. Either way the worker kills its ffmpeg,
publishes no failure (a stop must not use up one of the job's attempts), leaves the job
uncommitted for the fleet, and exits 0 at once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from reelstream.config import Settings
from reelstream.events.model import Event
from reelstream.media.transcode import layout
from reelstream.media.transcode.run import (
    MediaCommandFailed,
    MediaStopped,
    Supervisor,
    run,
    run_with_readers,
)
from reelstream.runtime import Runtime
from reelstream.workers.pool import worker_command
from reelstream.workers.transcode import JOBS_TOPIC, worker_group
from tests.support.jobs import publish_chunk_job

TITLE = "stopped"


def a_long_job(runtime: Runtime, folder: Path) -> Event:
    """One HEVC job over a whole 10-s master: seconds of libx265 on one thread."""
    return publish_chunk_job(runtime, folder, TITLE, seconds=10, size="640x360", group="hevc-sdr",
                             rendition=("hevc-360p-800k", "hevc", 640, 360, 800))


def descendants(pid: int) -> dict[int, str]:
    """pid -> command name of every process below ``pid``, from /proc."""
    parents: dict[int, tuple[int, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1:stat.rindex(")")]
        parents[int(entry.name)] = (int(stat[stat.rindex(")") + 2:].split()[1]), comm)
    found: dict[int, str] = {}
    frontier = {pid}
    while frontier:
        frontier = {child for child, (parent, _) in parents.items() if parent in frontier}
        found.update((child, parents[child][1]) for child in frontier)
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("processes,stop", [
    (1, "ctrl-c"),  # SIGINT to the worker's whole process group, as a terminal sends it
    (1, "sigterm"),  # SIGTERM to the worker alone, as stop_pool sends it
    (2, "ctrl-c"),  # `reel worker transcode --processes 2`: the pool and both its workers get SIGINT
])
def test_a_stopped_worker_kills_its_encode_and_leaves_the_job_to_the_fleet(
        tmp_path: Path, processes: int, stop: str) -> None:
    settings = Settings(data_dir=tmp_path / "reel")
    runtime = Runtime(settings)
    job = a_long_job(runtime, tmp_path / "studio")
    argv = worker_command(1, "cpu", None)
    argv[argv.index("--processes") + 1] = str(processes)
    env = {**os.environ, "REEL_DATA_DIR": str(settings.data_dir), "TMPDIR": str(tmp_path)}
    with open(tmp_path / "worker.log", "wb") as out:
        # A session of its own: the test stands in for the terminal, whose foreground group it is.
        worker = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not (encoders := [p for p, name in descendants(worker.pid).items() if name.startswith("ffmpeg")]):
            assert worker.poll() is None and time.monotonic() < deadline, (tmp_path / "worker.log").read_text()
            time.sleep(0.02)
        stopped = time.monotonic()
        if stop == "ctrl-c":
            os.killpg(worker.pid, signal.SIGINT)
        else:
            os.kill(worker.pid, signal.SIGTERM)
        assert worker.wait(timeout=30) == 0, (tmp_path / "worker.log").read_text()
        assert time.monotonic() - stopped < 3, "the worker finished the encode instead of stopping"
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()
    time.sleep(0.2)
    assert not [p for p in encoders if alive(p)], "an ffmpeg outlived its worker"
    reader = runtime.log.consumer(["reel.transcode.results", JOBS_TOPIC], group_id=None)
    published = [runtime.codec.decode(r.value) for r in reader.poll(max_records=1000, timeout=1)]
    reader.close()
    assert [e.type for e in published] == ["ChunkTranscodeRequested"]  # no ChunkFailed, no retry, no result
    assert runtime.log.committed(worker_group(settings.group_prefix), JOBS_TOPIC) == {}  # redelivered to the fleet
    assert not runtime.objects.exists(layout.job_claim_key(TITLE, job["job_id"]))  # free for the next member


@pytest.mark.parametrize("supervised", [True, False])
def test_a_killed_worker_takes_its_media_commands_with_it(supervised: bool) -> None:
    """SIGKILL (the OOM killer, `kill -9`) leaves a worker no clean-up. Its commands were
    started with a parent-death signal, so the kernel kills them: an encode that writes
    nothing until it ends (ffmpeg -v error) would otherwise run on for minutes, with no
    closed pipe to stop it. `sleep` stands in for such an encode."""
    script = ("import sys; from reelstream.media.transcode.run import Supervisor, run\n"
              "if sys.argv[1] == 'yes':\n    Supervisor().watching().__enter__()\n"
              "run(['sleep', '300'], 'a quiet encode')")
    worker = subprocess.Popen([sys.executable, "-c", script, "yes" if supervised else "no"], start_new_session=True)
    encodes: list[int] = []
    try:
        deadline = time.monotonic() + 30
        while not (encodes := [p for p, name in descendants(worker.pid).items() if name == "sleep"]):
            assert worker.poll() is None and time.monotonic() < deadline, "the command never started"
            time.sleep(0.02)
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)
        deadline = time.monotonic() + 5
        while [p for p in encodes if alive(p)] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [p for p in encodes if alive(p)], "a media command outlived its SIGKILLed worker"
    finally:
        for pid in encodes:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if worker.poll() is None:
            worker.kill()
            worker.wait()


def test_a_missing_media_tool_is_named() -> None:
    with pytest.raises(MediaCommandFailed, match="probing: cannot start /nonexistent/ffprobe: no such executable"):
        run(["/nonexistent/ffprobe", "-version"], "probing")


class Interrupted(Exception):
    pass


def test_no_reader_outlives_a_run_with_readers_that_ends_in_an_exception() -> None:
    """Whatever ends the call (here a signal handler's exception in the middle of it), the
    readers go with the writer: an x265 left reading a FIFO would run on without its worker."""
    def interrupt(signum: int, frame: object) -> None:
        raise Interrupted

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.3)
        with pytest.raises(Interrupted):
            run_with_readers(["sleep", "30"], [["sleep", "29.5"], ["sleep", "29.25"]], "waiting")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert [name for name in descendants(os.getpid()).values() if name == "sleep"] == []


def test_a_stopped_supervisor_kills_writer_and_readers_and_says_so() -> None:
    media = Supervisor()
    threading.Timer(0.3, media.stop).start()
    started = time.monotonic()
    with media.watching(), pytest.raises(MediaStopped):
        run_with_readers(["sleep", "30"], [["sleep", "29.5"]], "waiting")
    assert time.monotonic() - started < 5
    assert [name for name in descendants(os.getpid()).values() if name == "sleep"] == []
    with media.watching(), pytest.raises(MediaStopped):  # and starts nothing more
        run(["true"], "after the stop")
