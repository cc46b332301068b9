"""A title's jobs split evenly between the workers of a fleet, on the embedded log as on Kafka.

The planner slots jobs over the partitions (``layout.spread_order``); consumer groups range-assign
partitions. Two members of the embedded log's group each read half of a 14-job title (the bench's
30-s title less the chunk kept from calibration); in plain partition order one read 8, the other 6.
"""

from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path

from reelstream.config import Settings
from reelstream.events.model import new_event
from reelstream.ingest.plan import SourceVideo, plan_events
from reelstream.media.transcode.ladder import ladder_for
from reelstream.runtime import Runtime
from reelstream.workers.transcode import JOBS_TOPIC, worker_group


def test_two_members_of_the_embedded_group_each_get_half_of_a_titles_jobs(tmp_path: Path) -> None:
    runtime = Runtime(Settings(data_dir=tmp_path / "reel"))
    group = worker_group(runtime.settings.group_prefix)
    members = [runtime.log.consumer([JOBS_TOPIC], group) for _ in range(2)]
    deadline = time.monotonic() + 30
    while [len(m.assignment()) for m in members] != [6, 6]:  # both join, then each takes its range
        assert time.monotonic() < deadline, [m.assignment() for m in members]
        for member in members:
            member.poll(1, 0.1)
    assert all(sorted(p for _, p in m.assignment()) in ([0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11]) for m in members)
    cause = new_event("IngestValidated", {}, producer="test", schema_version=1)
    rungs = [r for r in ladder_for(1280, 720, False) if r.codec == "h264"]
    for title in ("bench", "film-2", "film-3"):  # wherever the title's first slot falls
        jobs = plan_events(title, f"titles/{title}/master/m.mp4", SourceVideo(Fraction(24), 24 * 30, False), rungs,
                           {}, [], [], producer="test", caused_by=cause, encoded={("h264-sdr", 7)})[1:]
        for job in jobs:
            runtime.publish(job, flush=False)
        runtime.log.flush()
        taken = [sum(1 for r in m.poll(100, 0.5) if r.topic == JOBS_TOPIC) for m in members]
        assert taken == [7, 7], (title, taken)
    for member in members:
        member.close()
    runtime.close()
