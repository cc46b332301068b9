"""The embedded host gives every processor a thread of its own: with asyncio's shared pool
(6 threads on 2 cores) a dozen processors parked in their polls queued each other's
batches, and a heartbeat took about 2 s to become readable."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

from reelstream.config import Settings
from reelstream.events.model import Event
from reelstream.processors.base import Outcome, StateReader
from reelstream.processors.embedded import run_embedded
from reelstream.processors.playback.logic import WATCH_POSITIONS, WatchPositionProcessor
from reelstream.processors.registry import all_processors
from reelstream.processors.sessions.logic import LIVE_SESSIONS, LiveSessionProcessor
from reelstream.runtime import Runtime
from tests.support.events import heartbeat

SEEN: dict[str, set[str]] = {}


class Positions(WatchPositionProcessor):
    def handle(self, event: Event, state: StateReader) -> Outcome:
        SEEN.setdefault(self.name, set()).add(threading.current_thread().name)
        return super().handle(event, state)


class Sessions(LiveSessionProcessor):
    def handle(self, event: Event, state: StateReader) -> Outcome:
        SEEN.setdefault(self.name, set()).add(threading.current_thread().name)
        return super().handle(event, state)


def test_each_processor_handles_its_batches_on_a_thread_of_its_own(tmp_path: Path) -> None:
    runtime = Runtime(Settings(data_dir=tmp_path))
    for i in range(3):
        runtime.publish(heartbeat("u1", "t1", "tv", 30_000 * (i + 1), 30 * i))
    others = [p for p in all_processors() if p.name not in (Positions.name, Sessions.name)]
    processors = [Positions(), Sessions(), *others]  # more processors than asyncio's default pool has threads

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(run_embedded(processors, runtime.log, runtime.state, runtime.codec, "test", stop))
        deadline = time.monotonic() + 60
        while (runtime.state.get(WATCH_POSITIONS, ("u1", "t1", "tv")) is None
               or not runtime.state.query(LIVE_SESSIONS, ("u1",))):
            assert time.monotonic() < deadline, "the playback processors did not fold the beats"
            await asyncio.sleep(0.05)
        stop.set()
        await task

    try:
        asyncio.run(main())
    finally:
        runtime.close()
    assert SEEN == {"watch_positions": {"processor-watch_positions_0"}, "sessions": {"processor-sessions_0"}}
