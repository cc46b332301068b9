"""Processes sized "one per core" count the cores they may run on, not the machine's."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PRINT = ("from reelstream.cpus import usable_cores; from reelstream.workers.pool import default_processes; "
         "print(usable_cores(), default_processes())")


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity on this platform")
def test_a_process_bound_to_one_core_sizes_itself_for_one() -> None:
    one = min(os.sched_getaffinity(0))
    out = subprocess.run([sys.executable, "-c", PRINT], capture_output=True, text=True, check=True,
                         preexec_fn=lambda: os.sched_setaffinity(0, {one})).stdout.split()
    assert out == ["1", "1"]


def test_an_unbound_process_counts_every_core_it_may_use() -> None:
    out = subprocess.run([sys.executable, "-c", PRINT], capture_output=True, text=True, check=True).stdout.split()
    expected = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert out == [str(expected), str(expected)]
