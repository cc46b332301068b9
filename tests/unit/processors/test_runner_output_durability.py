"""What a processor emits is durable before the rows that mark its input applied.

Otherwise a crash (or a failed flush) between the two leaves the input uncommitted but
marked applied: its redelivery is skipped as a duplicate and its outputs are never emitted.
In the right order, a crash in between only redelivers the input, which is applied again and
re-emits its outputs under the same (derived) event ids, which consumers de-duplicate on.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest

from reelstream.config import Settings
from reelstream.errors import EventLogError
from reelstream.events.model import Event, new_event
from reelstream.processors.base import Outcome, Processor, StateReader
from reelstream.processors.runner import ProcessorRunner
from reelstream.processors.sessions.logic import LIVE_SESSIONS, LiveSessionProcessor
from reelstream.runtime import Runtime
from reelstream.stores.embedded_log import EmbeddedLog
from reelstream.stores.ports import Column, EventLog, Record, Row, StateStore, ViewSpec
from tests.support.events import T0, heartbeat

SESSION_EVENTS = ["PlaybackSessionClosed", "PlaybackSessionOpened", "PlaybackSessionSummarized"]


class Crash(BaseException):
    """The process is killed at this point (not an error anything may catch)."""


def stopped(user: str, at_s: float) -> Event:
    return new_event("PlaybackStopped", {
        "session_id": f"{user}-tv", "user_id": user, "profile_id": "main", "device_id": f"{user}-tv",
        "device_type": "tv", "title_id": "t1", "position_ms": 90_000, "reason": "EXIT"},
        producer="test", event_time=T0 + timedelta(seconds=at_s))


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "reel"


@pytest.fixture
def runtime(data_dir: Path) -> Iterator[Runtime]:
    rt = Runtime(Settings(data_dir=data_dir))
    yield rt
    rt.close()


def session_records(rt: Runtime) -> list[Record]:
    """A session opened and stopped: three events to emit (opened, closed, summarized)."""
    rt.publish(heartbeat("u1", "t1", "tv", 30_000, 0))
    rt.publish(stopped("u1", 30))
    return read(rt, ["reel.playback"], expect=2)


def read(rt: Runtime, topics: list[str], expect: int | None = None) -> list[Record]:
    reader = rt.log.consumer(topics, group_id=None)
    records = reader.poll(max_records=100, timeout=1)
    reader.close()
    if expect is not None:
        assert len(records) == expect
    return records


def emitted(rt: Runtime) -> list[Event]:
    return [rt.codec.decode(r.value) for r in read(rt, ["reel.sessions", "reel.qoe"])]


class Calls:
    """One sequence of the log's and the store's calls, in the order they were made."""

    def __init__(self) -> None:
        self.seen: list[str] = []


class RecordingLog:
    def __init__(self, inner: EventLog, calls: Calls) -> None:
        self.inner, self.calls = inner, calls

    def append(self, topic: str, key: bytes | None, value: bytes, **kw: Any) -> None:
        self.calls.seen.append("append")
        self.inner.append(topic, key, value, **kw)

    def flush(self, timeout: float = 30.0) -> None:
        self.calls.seen.append("flush")
        self.inner.flush(timeout)


class RecordingStore:
    def __init__(self, inner: StateStore, calls: Calls) -> None:
        self.inner, self.calls = inner, calls

    def get(self, spec: ViewSpec, key: Sequence[object]) -> Row | None:
        return self.inner.get(spec, key)

    def query(self, spec: ViewSpec, partition: Sequence[object]) -> list[Row]:
        self.calls.seen.append("query")
        return self.inner.query(spec, partition)

    def put(self, spec: ViewSpec, row: Row) -> None:
        self.calls.seen.append("put")
        self.inner.put(spec, row)

    def put_many(self, rows: Sequence[tuple[ViewSpec, Row]]) -> None:
        self.calls.seen.append("put_many")
        self.inner.put_many(rows)


def test_outputs_are_flushed_before_the_rows_that_mark_their_input_applied(runtime: Runtime) -> None:
    records = session_records(runtime)
    calls = Calls()
    runner = ProcessorRunner(LiveSessionProcessor(), RecordingLog(runtime.log, calls),  # type: ignore[arg-type]
                             RecordingStore(runtime.state, calls), runtime.codec, "test")  # type: ignore[arg-type]
    runner.process(records)
    assert calls.seen == ["append"] * 3 + ["flush", "put_many"]


def test_a_crash_before_the_outputs_are_flushed_re_emits_them_on_redelivery(data_dir: Path) -> None:
    rt = Runtime(Settings(data_dir=data_dir))
    records = session_records(rt)
    runner = ProcessorRunner(LiveSessionProcessor(), rt.log, rt.state, rt.codec, "test")

    def killed(timeout: float = 30.0) -> None:
        raise Crash()

    rt.log.flush = killed  # type: ignore[method-assign]
    with pytest.raises(Crash):
        runner.process(records)
    rt.state.close()  # the process is gone, its queued appends with it; nothing was committed

    again = Runtime(Settings(data_dir=data_dir))
    try:
        redelivered = ProcessorRunner(LiveSessionProcessor(), again.log, again.state, again.codec, "test")
        redelivered.process(records)
        assert redelivered.stats.duplicates == 0 and redelivered.stats.applied == 2
        row = again.state.get(LIVE_SESSIONS, ("u1", "u1-tv"))
        assert row is not None and row.values["ended"] is True
        assert sorted(e.type for e in emitted(again)) == SESSION_EVENTS
    finally:
        again.close()


def test_a_crash_after_the_flush_re_emits_the_same_event_ids(data_dir: Path) -> None:
    rt = Runtime(Settings(data_dir=data_dir))
    records = session_records(rt)

    class DiesWriting(RecordingStore):
        def put_many(self, rows: Sequence[tuple[ViewSpec, Row]]) -> None:
            raise Crash()

    store = DiesWriting(rt.state, Calls())
    with pytest.raises(Crash):
        ProcessorRunner(LiveSessionProcessor(), rt.log, store, rt.codec, "test").process(records)  # type: ignore[arg-type]
    rt.state.close()  # killed: no close() flushing what is still queued

    again = Runtime(Settings(data_dir=data_dir))
    try:
        redelivered = ProcessorRunner(LiveSessionProcessor(), again.log, again.state, again.codec, "test")
        redelivered.process(records)
        assert redelivered.stats.applied == 2  # not marked applied by the crashed run: applied again
        events = emitted(again)
        assert sorted({e.type for e in events}) == SESSION_EVENTS
        # Each output twice (the crashed run's and the redelivery's), each time under one id.
        assert sorted(Counter(e.event_id for e in events).values()) == [2, 2, 2]
    finally:
        again.close()


def test_a_flush_that_fails_leaves_the_input_to_be_applied_again(runtime: Runtime) -> None:
    records = session_records(runtime)
    log = runtime.log
    assert isinstance(log, EmbeddedLog)
    log.db.conn.execute("PRAGMA busy_timeout = 0")  # this thread's connection: fail at once
    other = sqlite3.connect(log.db.path, isolation_level=None)  # another writer holds the lock
    other.execute("BEGIN IMMEDIATE")
    runner = ProcessorRunner(LiveSessionProcessor(), log, runtime.state, runtime.codec, "test")
    with pytest.raises(EventLogError, match="locked"):
        runner.process(records)
    assert runtime.state.get(LIVE_SESSIONS, ("u1", "u1-tv")) is None  # not marked applied
    other.execute("ROLLBACK")
    other.close()

    runner.process(records)  # not committed, so redelivered
    assert runner.stats.duplicates == 0
    row = runtime.state.get(LIVE_SESSIONS, ("u1", "u1-tv"))
    assert row is not None and row.values["ended"] is True
    events = emitted(runtime)
    assert sorted({e.type for e in events}) == SESSION_EVENTS
    assert len({e.event_id for e in events}) == 3  # the failed try's outputs, kept, share their ids


# A processor that reads back its own view with query() (as transcode completion does): the
# rows held from earlier events are written before the read, so the log is flushed before them.
TALLY = ViewSpec(name="runner_tally", partition_key=("user_id",), clustering_key=("session_id",),
                 columns={"user_id": Column.TEXT, "session_id": Column.TEXT, "beats": Column.INT},
                 query="test: sessions of a user")


class Tally(Processor):
    name: ClassVar[str] = "tally"
    topics: ClassVar[tuple[str, ...]] = ("reel.playback",)
    views: ClassVar[tuple[ViewSpec, ...]] = (TALLY,)

    def primary(self, event: Event) -> tuple[ViewSpec, tuple[Any, ...]] | None:
        return TALLY, (event["user_id"], event["session_id"])

    def handle(self, event: Event, state: StateReader) -> Outcome:
        sessions = state.query(TALLY, (event["user_id"],))
        beats = sum(r.values["beats"] for r in sessions if r.values["session_id"] == event["session_id"])
        outcome = Outcome().write(TALLY, {"user_id": event["user_id"], "session_id": event["session_id"],
                                           "beats": beats + 1})
        outcome.events.append(new_event("PlaybackHeartbeat", dict(event.data), producer="tally", caused_by=event,
                                        event_time=event.header.event_time))
        return outcome


def test_a_query_mid_batch_flushes_the_outputs_before_writing_the_rows_it_needs(runtime: Runtime) -> None:
    runtime.state.ensure_views([TALLY])
    runtime.publish(heartbeat("u1", "t1", "tv", 30_000, 0))
    runtime.publish(heartbeat("u1", "t1", "tv", 60_000, 30))
    records = read(runtime, ["reel.playback"], expect=2)
    calls = Calls()
    runner = ProcessorRunner(Tally(), RecordingLog(runtime.log, calls),  # type: ignore[arg-type]
                             RecordingStore(runtime.state, calls), runtime.codec, "test")  # type: ignore[arg-type]
    runner.process(records)
    assert calls.seen == ["query", "append", "flush", "put", "query", "append", "flush", "put"]
    row = runtime.state.get(TALLY, ("u1", "u1-tv"))
    assert row is not None and row.values["beats"] == 2  # the second event read the first's write
