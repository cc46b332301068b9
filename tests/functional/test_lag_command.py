"""`reel lag` on the embedded log: a group that has read everything is at 0, one behind
says by how much, one that never ran says so, and --max makes it a monitoring check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reelstream.cli import main
from reelstream.config import Settings
from reelstream.processors.embedded import group_id
from reelstream.processors.playback.logic import WatchPositionProcessor
from reelstream.runtime import Runtime
from tests.support.events import heartbeat


def lags(tmp_path: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, dict[tuple[str, str], object]]:
    status = main(["lag", "--json", "--data-dir", str(tmp_path), *extra])
    rows = json.loads(capsys.readouterr().out)
    return status, {(r["consumer"], r["topic"]): r["lag"] for r in rows}


def test_lag_counts_what_each_group_has_still_to_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runtime = Runtime(Settings(data_dir=tmp_path))
    for n in range(5):
        runtime.publish(heartbeat(f"u{n}", "t1", "tv", 1_000 * n, n))
    reader = runtime.log.consumer(["reel.playback"], group_id(WatchPositionProcessor()))
    while records := reader.poll(100, 0.2):
        reader.commit(records)
    reader.close()
    for n in range(3):
        runtime.publish(heartbeat(f"v{n}", "t1", "tv", 1_000 * n, n))
    runtime.close()

    status, by = lags(tmp_path, capsys)
    assert status == 0
    assert by[("processor watch_positions", "reel.playback")] == 3, "read 5, 3 more since"
    assert by[("processor sessions", "reel.playback")] is None, "never ran: not 'behind by the whole topic'"
    assert ("transcode workers (GPU)", "reel.transcode.jobs.gpu") not in by, "no such topic on this log"
    assert lags(tmp_path, capsys, "--max", "3")[0] == 0
    assert lags(tmp_path, capsys, "--max", "2")[0] == 1
