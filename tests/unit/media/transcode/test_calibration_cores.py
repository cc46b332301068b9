"""Level-sample encodes run one per core, like a pinned worker's (calibrate._core_per_thread)."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from reelstream.media.transcode.calibrate import _core_per_thread

cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []


@pytest.mark.skipif(len(cores) < 2, reason="needs two cores to pin two encodes apart")
def test_each_pool_thread_gets_a_core_of_its_own_and_keeps_it() -> None:
    pin = _core_per_thread(2)
    assert pin is not None
    barrier = threading.Barrier(2)  # both threads of the pool take a task at once

    def task(_: int) -> tuple[int, frozenset[int]]:
        pin()
        barrier.wait(timeout=10)
        pin()  # a thread's second task keeps its core
        return threading.get_ident(), frozenset(os.sched_getaffinity(0))

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = dict(pool.map(task, range(2)))
    masks = list(results.values())
    assert len(results) == 2
    assert all(len(mask) == 1 for mask in masks)
    assert masks[0] != masks[1]
    assert set().union(*masks) <= set(cores)
    assert os.sched_getaffinity(0) == set(cores)  # the caller's own thread is left as it was


def test_no_pinning_when_there_are_more_encodes_than_cores() -> None:
    assert _core_per_thread(len(cores) + 1) is None
