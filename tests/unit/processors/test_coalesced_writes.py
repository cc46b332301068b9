"""Processors with ``coalesce_writes``: a batch writes each row once, its last version, other
views before the primary views (an event's applied mark is never durable before its other
writes); the rows are those write-through gives, and a redelivered batch changes nothing."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from reelstream.config import Settings
from reelstream.processors.playback.logic import (
    PROFILE_PROGRESS,
    WATCH_POSITIONS,
    WatchPositionProcessor,
)
from reelstream.processors.runner import ProcessorRunner
from reelstream.processors.sessions.logic import LIVE_SESSIONS, LiveSessionProcessor
from reelstream.runtime import Runtime
from reelstream.stores.ports import Record, Row, StateStore, ViewSpec
from tests.support.events import heartbeat


class Recording:
    """The real store, recording each write call: ("put", view) or ("put_many", [views])."""

    def __init__(self, inner: StateStore) -> None:
        self.inner = inner
        self.calls: list[tuple[str, list[str]]] = []

    def get(self, spec: ViewSpec, key: Sequence[object]) -> Row | None:
        return self.inner.get(spec, key)

    def query(self, spec: ViewSpec, partition: Sequence[object]) -> list[Row]:
        return self.inner.query(spec, partition)

    def put(self, spec: ViewSpec, row: Row) -> None:
        self.calls.append(("put", [spec.name]))
        self.inner.put(spec, row)

    def put_many(self, rows: Sequence[tuple[ViewSpec, Row]]) -> None:
        self.calls.append(("put_many", [spec.name for spec, _ in rows]))
        self.inner.put_many(rows)


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    rt = Runtime(Settings(data_dir=tmp_path / "reel"))
    rt.state.ensure_views([*WatchPositionProcessor.views, *LiveSessionProcessor.views])
    yield rt
    rt.close()


def beats(runtime: Runtime) -> list[Record]:
    """Two players' beats, interleaved, one of them arriving out of order."""
    for user, position, at_s in [("a", 30_000, 100), ("b", 30_000, 101), ("a", 60_000, 102), ("b", 90_000, 104),
                                 ("b", 60_000, 103), ("a", 90_000, 105)]:
        runtime.publish(heartbeat(user, "t1", "tv", position, at_s))
    reader = runtime.log.consumer(["reel.playback"], group_id=None)
    records = reader.poll(max_records=100, timeout=2)
    reader.close()
    assert len(records) == 6
    return records


def table(state: StateStore) -> dict[str, list[dict[str, object]]]:
    return {spec.name: [r.values for r in state.scan(spec)]
            for spec in (WATCH_POSITIONS, PROFILE_PROGRESS, LIVE_SESSIONS)}


def test_a_batch_writes_each_row_once_other_views_before_the_primary(runtime: Runtime, tmp_path: Path) -> None:
    records = beats(runtime)
    store = Recording(runtime.state)
    for processor in (WatchPositionProcessor(), LiveSessionProcessor()):
        ProcessorRunner(processor, runtime.log, store, runtime.codec, "test").process(records)  # type: ignore[arg-type]

    assert store.calls == [
        ("put_many", ["profile_progress", "profile_progress"]),  # one row per player
        ("put_many", ["watch_positions", "watch_positions"]),
        ("put_many", ["live_sessions", "live_sessions"])]

    # The same records one at a time, written through, give the same rows.
    through = Runtime(Settings(data_dir=tmp_path / "through"))
    through.state.ensure_views([*WatchPositionProcessor.views, *LiveSessionProcessor.views])
    try:
        for processor in (WatchPositionProcessor(), LiveSessionProcessor()):
            runner = ProcessorRunner(processor, through.log, through.state, through.codec, "test")
            for record in records:
                runner.process_one(record)
        assert table(runtime.state) == table(through.state)
    finally:
        through.close()
    assert {r["user_id"]: r["position_ms"] for r in table(runtime.state)["watch_positions"]} == {
        "a": 90_000, "b": 90_000}  # b's late 60 s beat did not move it back


def test_a_redelivered_coalesced_batch_changes_nothing(runtime: Runtime) -> None:
    records = beats(runtime)
    runners = [ProcessorRunner(p, runtime.log, runtime.state, runtime.codec, "test")
               for p in (WatchPositionProcessor(), LiveSessionProcessor())]
    for runner in runners:
        runner.process(records)
    before = table(runtime.state)

    for runner in runners:
        runner.process(records)

    assert table(runtime.state) == before
    assert [r.stats.duplicates for r in runners] == [6, 6]
