"""Job claims on a real local object store: a second worker sees a live claim, not a stale one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from reelstream.stores.localdir import LocalDirObjectStore
from reelstream.workers.claims import JobClaims


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_live_claim_is_seen_an_expired_or_orphaned_one_is_not(tmp_path: Path) -> None:
    objects, clock = LocalDirObjectStore(tmp_path), Clock()
    a = JobClaims(objects, "a", lease_s=15, clock=clock)
    b = JobClaims(objects, "b", lease_s=15, clock=clock)
    key = "titles/t/jobs/h264-sdr/3~1.claim"
    with a.holding(key):
        assert b.held_by_other(key) == "a" and a.held_by_other(key) is None
        clock.now += 16  # the holder stopped renewing (a frozen machine): the lease ran out
        assert b.held_by_other(key) is None
    assert not objects.exists(key)  # released when the job is done
    # A holder on this host whose process is gone (killed mid-job) is stale at once.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True).stdout.strip()
    claim = {"worker": "c", "host": a.host, "pid": int(dead), "until_ms": int((clock.now + 15) * 1000)}
    objects.put(key, json.dumps(claim).encode())
    assert b.held_by_other(key) is None
