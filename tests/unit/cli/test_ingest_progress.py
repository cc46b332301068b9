"""`reel ingest`'s progress line: the hashing is shown as its own phase, and the upload's
MB/s and ETA count the transfer only, not the minutes of hashing before it."""

from __future__ import annotations

import io

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
