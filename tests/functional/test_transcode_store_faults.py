"""A transcode worker outlives a store's or the log's bad moment (embedded runtime, real ffmpeg).

Nothing restarts a worker that dies, so a failure outside the encode (claiming the job,
storing its result, publishing it) must not end it: it pauses, and the job, never
committed, comes back. The faults are injected (a store that fails twice); the rest is real.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from reelstream.config import Settings
from reelstream.errors import EventLogError, ObjectStoreError
from reelstream.events.model import Event
from reelstream.media import tools
from reelstream.runtime import Runtime
from reelstream.stores.localdir import LocalDirObjectStore
from reelstream.stores.ports import EventLog, ObjectInfo
from reelstream.workers.capabilities import Capabilities
from reelstream.workers.transcode import TranscodeWorker
from tests.support.jobs import publish_chunk_job

TITLE = "flaky"


class FailingPuts(LocalDirObjectStore):
    """A local store whose first ``times`` puts of keys ending in ``suffix`` fail."""

    def __init__(self, root: Path, suffix: str, times: int = 2) -> None:
        super().__init__(root)
        self.suffix, self.left = suffix, times

    def put(self, key: str, source: Any, **kwargs: Any) -> ObjectInfo:
        if key.endswith(self.suffix) and self.left:
            self.left -= 1
            raise ObjectStoreError(f"injected: cannot put {key}")
        return super().put(key, source, **kwargs)


class FailingAppends:
    """The event log, but its first ``times`` appends to ``topic`` fail."""

    def __init__(self, log: EventLog, topic: str, times: int = 2) -> None:
        self._log, self.topic, self.left = log, topic, times

    def append(self, topic: str, key: bytes | None, value: bytes, **kwargs: Any) -> Any:
        if topic == self.topic and self.left:
            self.left -= 1
            raise EventLogError(f"injected: cannot append to {topic}")
        return self._log.append(topic, key, value, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._log, name)


def a_job(runtime: Runtime, folder: Path) -> Event:
    return publish_chunk_job(runtime, folder, TITLE, seconds=2, size="320x180", group="h264-sdr",
                             rendition=("h264-144p-200k", "h264", 256, 144, 200))


def results(runtime: Runtime) -> list[Event]:
    reader = runtime.log.consumer(["reel.transcode.results"], group_id=None)
    out = [runtime.codec.decode(r.value) for r in reader.poll(max_records=1000, timeout=0.5)]
    reader.close()
    return out


@pytest.mark.parametrize("fault", ["claim", "result record", "publishing"])
def test_a_failing_store_or_log_pauses_the_worker_and_the_job_comes_again(
        tmp_path: Path, fault: str, caplog: pytest.LogCaptureFixture) -> None:
    runtime = Runtime(Settings(data_dir=tmp_path / "reel"))
    job = a_job(runtime, tmp_path / "studio")
    flaky: FailingPuts | FailingAppends
    if fault == "publishing":
        flaky = FailingAppends(runtime.log, "reel.transcode.results")
        runtime.log = flaky  # type: ignore[assignment]
    else:
        flaky = FailingPuts(tmp_path / "reel" / "objects", ".claim" if fault == "claim" else ".json")
        runtime.objects = flaky
    worker = TranscodeWorker(runtime, "w1", Capabilities(False, tools.ffmpeg()), scratch=tmp_path / "scratch",
                             threads=1)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop.is_set,))
    caplog.set_level(logging.WARNING, "reelstream.workers.transcode")
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not (done := [e for e in results(runtime) if e.type == "ChunkTranscoded"]):
            assert thread.is_alive(), "the worker died of a transient fault: nothing would restart it"
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert thread.is_alive()
    finally:
        stop.set()
        thread.join(timeout=30)
    assert flaky.left == 0  # both faults were met
    assert [e["job_id"] for e in done] == [job["job_id"]]
    assert [e.type for e in results(runtime)] == ["ChunkTranscoded"]  # no attempt used up: no ChunkFailed
    assert worker.stats.failed == 0
    assert sum("the job will come again" in r.getMessage() for r in caplog.records) == 2
