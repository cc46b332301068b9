"""The embedded host waits out a state store that fails (a Cassandra node restarting), on
the same records: the processor does not end (taking `reel processors` with it), and
every record reaches its view once the store is back."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from reelstream.config import Settings
from reelstream.errors import StateStoreError
from reelstream.processors.embedded import run_processor
from reelstream.processors.playback.logic import WATCH_POSITIONS, WatchPositionProcessor
from reelstream.runtime import Runtime
from reelstream.stores.ports import Row, StateStore, ViewSpec
from tests.support.events import heartbeat


class FailingWrites:
    """The runtime's real state store, but its first ``times`` writes fail: a store that is
    down for a while, which SQLite cannot be made to be."""

    def __init__(self, state: StateStore, times: int) -> None:
        self.state, self.left = state, times

    def __getattr__(self, name: str) -> Any:
        return getattr(self.state, name)

    def _fail(self) -> None:
        if self.left:
            self.left -= 1
            raise StateStoreError("injected: the store is down")

    def put(self, spec: ViewSpec, row: Row) -> None:
        self._fail()
        self.state.put(spec, row)

    def put_many(self, rows: Any) -> None:
        self._fail()
        self.state.put_many(rows)


def test_a_failing_store_is_waited_out_on_the_same_records(tmp_path: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    runtime = Runtime(Settings(data_dir=tmp_path))
    for i in range(3):
        runtime.publish(heartbeat(f"u{i}", "t1", "tv", 30_000, i), flush=False)
    runtime.log.flush()
    failing = FailingWrites(runtime.state, times=3)

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(run_processor(WatchPositionProcessor(), runtime.log, failing,  # type: ignore[arg-type]
                                                 runtime.codec, "test", stop))
        deadline = time.monotonic() + 30
        while any(runtime.state.get(WATCH_POSITIONS, (f"u{i}", "t1", "tv")) is None for i in range(3)):
            assert not task.done(), f"the processor ended: {task.exception() if task.done() else ''}"
            assert time.monotonic() < deadline, "the records never reached the view"
            await asyncio.sleep(0.1)
        stop.set()
        await task

    with caplog.at_level(logging.WARNING):
        asyncio.run(main())
    assert failing.left == 0
    assert "not applied, retrying" in caplog.text and "applied after 3 failed tries" in caplog.text
    runtime.close()
