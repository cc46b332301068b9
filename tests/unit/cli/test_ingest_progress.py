"""`reel ingest`'s progress line: the hashing is shown as its own phase, and the upload's
MB/s and ETA count the transfer only, not the minutes of hashing before it. A log gets whole
lines every tick; a step that reads the master says how far, how fast and how long to go."""

from __future__ import annotations

import io
import time
from pathlib import Path

from reelstream.cli.media import CliProgress, amount, eta_text
from reelstream.media.reading import Reading
from tests.unit.ingest.test_upload_meter import Clock


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_rate_and_eta_leave_out_the_hashing() -> None:
    clock, out = Clock(), Terminal()
    progress = CliProgress(clock=clock, out=out)
    progress.hashing("master.mov", 100_000_000, 100_000_000)
    clock.now = 300.0  # five minutes of hashing
    progress.uploading("master.mov", 0, 100_000_000)
    clock.now = 310.0
    progress.uploading("master.mov", 50_000_000, 100_000_000)
    lines = out.getvalue().replace("\r", "\n").split("\n")
    assert any(line.startswith("  hashing master.mov:") for line in lines)
    last = [line for line in lines if line.startswith("  uploading")][-1]
    assert "5.0 MB/s" in last and "ETA   10s" in last, last  # not 50 MB over 310 s


def test_quiet_prints_nothing() -> None:
    out = io.StringIO()
    progress = CliProgress(quiet=True, out=out)
    progress.hashing("m", 1, 1)
    progress.uploading("m", 1, 1)
    progress.step("validating")
    assert out.getvalue() == ""


def test_a_long_step_says_it_is_still_running_until_the_next_one() -> None:
    out = io.StringIO()
    progress = CliProgress(out=out, tick_s=0.02)
    progress.step("validating the master and sidecars")
    deadline = time.monotonic() + 10
    while out.getvalue().count("still validating") < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    progress.step("calibrating rate control for 6 rungs")
    progress.close()
    time.sleep(0.1)  # a tick's length several times over: nothing more comes
    lines = out.getvalue().splitlines()
    assert lines[0] == "  validating the master and sidecars"
    assert lines[1].startswith("  ... still validating the master and sidecars (") and lines[1].endswith(" s)")
    assert "  calibrating rate control for 6 rungs" in lines
    settled = out.getvalue()
    time.sleep(0.1)
    assert out.getvalue() == settled  # closed: silent


def test_a_log_gets_a_whole_line_per_tick_and_the_last_one() -> None:
    clock, out = Clock(), io.StringIO()  # not a terminal: a file, a pipe, a CI log
    progress = CliProgress(clock=clock, out=out, tick_s=15)
    total = 100 * 10**9
    for second in range(101):  # 100 GB hashed at 1 GB/s, reported every 8 MiB would be 12,000 updates
        clock.now = float(second)
        progress.hashing("master.mov", min(total, second * 10**9), total)
    lines = out.getvalue().split("\n")
    assert "\r" not in out.getvalue() and lines[-1] == ""
    assert len(lines) - 1 == 8  # at 0, 15, ..., 90 s, and the end
    assert lines[1] == "  hashing master.mov:   15.0 / 100.0 GB  1000.0 MB/s  ETA   85s"
    assert lines[-2].startswith("  hashing master.mov:  100.0 / 100.0 GB")


class Reads:
    """A media command reading a 100-MB master at 2.5 MB/s of the fake clock, one tick a call."""

    def __init__(self, clock: Clock) -> None:
        self.clock, self.position = clock, 0

    def __call__(self, path: Path) -> Reading | None:
        self.clock.now += 10
        self.position += 25_000_000
        return Reading(pid=4242, fd=3, position=self.position) if self.position < 100_000_000 else None


def test_a_step_that_reads_the_master_says_how_far_how_fast_and_how_long(tmp_path: Path) -> None:
    master = tmp_path / "film.mkv"
    with master.open("wb") as f:
        f.truncate(100_000_000)
    clock, out = Clock(), io.StringIO()
    progress = CliProgress(clock=clock, out=out, tick_s=0.01, reader=Reads(clock))
    progress.step("validating the master and sidecars", reading=master)
    deadline = time.monotonic() + 10
    while out.getvalue().count("\n") < 5 and time.monotonic() < deadline:
        time.sleep(0.01)
    progress.close()
    lines = out.getvalue().splitlines()
    assert lines[1] == "  ... still validating the master and sidecars (10 s): film.mkv read 25.0 / 100.0 MB"
    assert lines[2] == ("  ... still validating the master and sidecars (20 s): film.mkv read 50.0 / 100.0 MB, "
                        "2.5 MB/s, ETA 20s")
    assert lines[3].endswith("read 75.0 / 100.0 MB, 2.5 MB/s, ETA 10s")
    assert lines[4].endswith("(40 s)")  # no command has the file open: elapsed time only


def test_sizes_and_times_read_at_a_glance() -> None:
    assert amount(5 * 10**9, 9 * 10**9) == "  5000.0 / 9000.0 MB"
    assert amount(5 * 10**9, 120 * 10**9) == "   5.0 / 120.0 GB"
    assert (eta_text(42), eta_text(330), eta_text(4 * 3600 + 125)) == ("  42s", "5m30s", "4h02m")
