"""`reel ingest`'s progress line: the hashing is shown as its own phase, and the upload's
MB/s and ETA count the transfer only, not the minutes of hashing before it."""

from __future__ import annotations

import io
import time

from reelstream.cli.media import CliProgress
from tests.unit.ingest.test_upload_meter import Clock


def test_rate_and_eta_leave_out_the_hashing() -> None:
    clock, out = Clock(), io.StringIO()
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
