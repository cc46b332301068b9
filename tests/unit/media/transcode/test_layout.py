"""Job slots: a title's jobs spread evenly over the members of a range-assigned consumer group."""

from __future__ import annotations

import pytest

from reelstream.events.partitioning import partition_for
from reelstream.media.transcode.layout import chunk_job_id, spread_order


def ranges(partitions: int, members: int) -> list[range]:
    """Kafka's range assignor: contiguous blocks, the first ``partitions % members`` one larger."""
    size, extra = divmod(partitions, members)
    starts = [m * size + min(m, extra) for m in range(members + 1)]
    return [range(starts[m], starts[m + 1]) for m in range(members)]


@pytest.mark.parametrize("partitions", [1, 2, 6, 12, 16])
def test_spread_order_is_a_permutation(partitions: int) -> None:
    assert sorted(spread_order(partitions)) == list(range(partitions))


@pytest.mark.parametrize(("members", "tolerance"), [(2, 0), (4, 0), (3, 1), (6, 1)])
def test_any_run_of_slots_splits_evenly_between_range_assigned_members(members: int, tolerance: int) -> None:
    order = spread_order(12)
    blocks = ranges(12, members)
    for start in range(12):  # a title's jobs start at the slot its id hashes to
        for jobs in range(1, 25):
            per_member = [0] * members
            for k in range(jobs):
                partition = order[(start + k) % 12]
                per_member[next(m for m, b in enumerate(blocks) if partition in b)] += 1
            assert max(per_member) - min(per_member) <= 1 + tolerance, (start, jobs, per_member)


def test_fourteen_jobs_split_seven_seven_between_two_workers() -> None:
    """The bench's 30-s title: 15 chunks, one kept from calibration; in plain partition order
    one worker got 8 encodes and the other 6."""
    halves = [0, 0]
    for k in range(14):
        partition = partition_for(chunk_job_id("bench", "h264-sdr", k, 5 + k).encode(), 12)
        halves[partition // 6] += 1
    assert halves == [7, 7]
