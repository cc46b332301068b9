"""A record the processor cannot apply is dead-lettered and its partition moves on, wherever
it fails: in primary(), in a read, in the rows it would write, or in encoding its outputs.
Nothing of such a record is emitted or written. A store or log that fails is not the
record's fault: it raises, so nothing is committed and the batch is redelivered."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest

from reelstream.config import Settings
from reelstream.errors import EventLogError, StateStoreError
from reelstream.events.model import Event, new_event
from reelstream.events.topics import DEAD_LETTER_TOPIC
from reelstream.processors.base import Outcome, Processor, StateReader
from reelstream.processors.runner import ProcessorRunner
from reelstream.processors.transcode.fleet import TRANSCODE_WORKERS, TranscodeFleetProcessor
from reelstream.processors.transcode.progress import CHUNK_PROGRESS, ChunkProgressProcessor
from reelstream.runtime import Runtime
from reelstream.stores.ports import Column, EventLog, Record, Row, StateStore, ViewSpec
from tests.support.events import T0, heartbeat, registered


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    rt = Runtime(Settings(data_dir=tmp_path / "reel"))
    rt.state.ensure_views([PROBE, OTHER])
    yield rt
    rt.close()


def read(rt: Runtime, topics: list[str]) -> list[Record]:
    reader = rt.log.consumer(topics, group_id=None)
    records = reader.poll(max_records=100, timeout=1)
    reader.close()
    return records


def dead_letters(rt: Runtime) -> list[Event]:
    return [rt.codec.decode(r.value) for r in read(rt, [DEAD_LETTER_TOPIC])]


def chunk_done(chunk: int, psnr: float | None) -> Event:
    return new_event("ChunkTranscoded", {
        "job_id": f"t1:h264:{chunk}", "title_id": "t1", "encoder_group": "h264", "chunk_index": chunk,
        "worker_id": "w1", "encode_ms": 1000, "used_gpu": False,
        "outputs": [{"rendition_id": "h264-360p", "object_key": f"chunks/t1/{chunk}.mp4", "size_bytes": 1000,
                     "duration_ms": 2000, "frames": 48, "bitrate_kbps": 400, "psnr_db": psnr, "ssim": None}]},
        producer="test", event_time=T0)


def test_a_nan_in_a_double_column_is_dead_lettered_and_the_partition_moves_on(runtime: Runtime) -> None:
    runtime.publish(chunk_done(0, float("nan")))  # a valid Avro double, refused by every store
    runtime.publish(chunk_done(1, 41.5))  # same title, same partition, behind it
    records = read(runtime, ["reel.transcode.results"])
    assert len({r.partition for r in records}) == 1 and len(records) == 2
    runner = ProcessorRunner(ChunkProgressProcessor(), runtime.log, runtime.state, runtime.codec, "test")

    runner.process(records)

    assert (runner.stats.dead_lettered, runner.stats.applied) == (1, 1)
    assert runtime.state.get(CHUNK_PROGRESS, ("t1", "h264-360p", 1)) is not None
    # Nothing of the bad record: neither its good-looking marker row nor its output row.
    assert runtime.state.get(CHUNK_PROGRESS, ("t1", "group:h264", 0)) is None
    assert runtime.state.get(CHUNK_PROGRESS, ("t1", "h264-360p", 0)) is None
    [letter] = dead_letters(runtime)
    assert letter["source_offset"] == records[0].offset and letter["consumer"] == "reel.processor.chunk_progress"
    assert "psnr_db" in letter["reason"] and "nan" in letter["reason"]


def test_an_event_its_processor_cannot_key_is_dead_lettered(runtime: Runtime) -> None:
    """primary() meets an event of a foreign type another producer wrote to the topic."""
    runtime.log.append("reel.workers", b"w1", runtime.codec.encode(registered("t1")))
    runtime.log.flush()
    runner = ProcessorRunner(TranscodeFleetProcessor(), runtime.log, runtime.state, runtime.codec, "test")

    runner.process(read(runtime, ["reel.workers"]))

    assert runner.stats.dead_lettered == 1
    [letter] = dead_letters(runtime)
    assert "KeyError('worker_id')" in letter["reason"]
    assert list(runtime.state.scan(TRANSCODE_WORKERS)) == []


def test_a_redelivered_bad_record_is_dead_lettered_again_under_the_same_id(runtime: Runtime) -> None:
    runtime.publish(chunk_done(0, float("nan")))
    records = read(runtime, ["reel.transcode.results"])
    runner = ProcessorRunner(ChunkProgressProcessor(), runtime.log, runtime.state, runtime.codec, "test")
    runner.process(records)
    runner.process(records)  # not committed (a crash before the commit): redelivered
    first, again = dead_letters(runtime)
    assert first.event_id == again.event_id


# --------------------------------------------------------------------------- a probe processor

PROBE = ViewSpec(name="runner_probe", partition_key=("user_id",), clustering_key=(),
                 columns={"user_id": Column.TEXT, "score": Column.DOUBLE},
                 query="test: one row per user")
OTHER = ViewSpec(name="runner_probe_other", partition_key=("user_id",), clustering_key=(),
                 columns={"user_id": Column.TEXT, "seen": Column.INT},
                 query="test: another view read while handling")

Decide = Callable[[Event, StateReader], Outcome]


class Probe(Processor):
    """Keys heartbeats by user; what it decides is the test's ``decide``."""

    name: ClassVar[str] = "probe"
    topics: ClassVar[tuple[str, ...]] = ("reel.playback",)
    views: ClassVar[tuple[ViewSpec, ...]] = (PROBE, OTHER)

    def __init__(self, decide: Decide, key: Callable[[Event], tuple[Any, ...]] = lambda e: (e["user_id"],)) -> None:
        self.decide, self.key = decide, key

    def primary(self, event: Event) -> tuple[ViewSpec, tuple[Any, ...]] | None:
        return PROBE, self.key(event)

    def handle(self, event: Event, state: StateReader) -> Outcome:
        return self.decide(event, state)


def scored(event: Event, state: StateReader) -> Outcome:
    return Outcome().write(PROBE, {"user_id": event["user_id"], "score": 1.0})


def beats(rt: Runtime, *users: str) -> list[Record]:
    for i, user in enumerate(users):
        rt.publish(heartbeat(user, "t1", "tv", 30_000, i))
    return read(rt, ["reel.playback"])


def test_a_key_no_store_accepts_is_dead_lettered_before_the_store_is_asked(runtime: Runtime) -> None:
    runner = ProcessorRunner(Probe(scored, key=lambda e: (len(e["user_id"]),)),  # an int for a text key
                             runtime.log, runtime.state, runtime.codec, "test")
    runner.process(beats(runtime, "u1"))
    [letter] = dead_letters(runtime)
    assert "RowRejected" in letter["reason"] and "user_id" in letter["reason"]


def test_an_output_that_does_not_fit_its_schema_dead_letters_its_record_and_emits_none(runtime: Runtime) -> None:
    def echo_then_bogus(event: Event, state: StateReader) -> Outcome:
        outcome = scored(event, state)
        outcome.events.append(new_event("PlaybackHeartbeat", dict(event.data), producer="probe"))
        if event["user_id"] == "bad":
            outcome.events.append(new_event("PlaybackSessionClosed", {"user_id": "bad", "session_id": 7},
                                            producer="probe"))
        return outcome

    records = beats(runtime, "bad", "good")
    runner = ProcessorRunner(Probe(echo_then_bogus), runtime.log, runtime.state, runtime.codec, "test")
    runner.process(records)

    assert (runner.stats.dead_lettered, runner.stats.applied, runner.stats.emitted) == (1, 1, 1)
    echoed = [e for e in (runtime.codec.decode(r.value) for r in read(runtime, ["reel.playback"]))
              if e.header.producer == "probe"]
    assert [e["user_id"] for e in echoed] == ["good"]  # not the bad record's valid first output
    assert runtime.state.get(PROBE, ("bad",)) is None and runtime.state.get(PROBE, ("good",)) is not None
    [letter] = dead_letters(runtime)
    assert "SchemaViolation" in letter["reason"] and "PlaybackSessionClosed" in letter["reason"]


class FailingStore:
    """The real store, except that reads of ``OTHER`` fail as an unreachable store's do."""

    def __init__(self, inner: StateStore) -> None:
        self.inner = inner

    def get(self, spec: ViewSpec, key: Sequence[object]) -> Row | None:
        if spec is OTHER:
            raise StateStoreError("Cassandra: reading 'runner_probe_other': no host available")
        return self.inner.get(spec, key)

    def query(self, spec: ViewSpec, partition: Sequence[object]) -> list[Row]:
        return self.inner.query(spec, partition)

    def put(self, spec: ViewSpec, row: Row) -> None:
        self.inner.put(spec, row)

    def put_many(self, rows: Sequence[tuple[ViewSpec, Row]]) -> None:
        self.inner.put_many(rows)


def test_a_store_that_fails_while_handling_raises_and_dead_letters_nothing(runtime: Runtime) -> None:
    def reads_other(event: Event, state: StateReader) -> Outcome:
        state.get(OTHER, (event["user_id"],))
        return scored(event, state)

    runner = ProcessorRunner(Probe(reads_other), runtime.log, FailingStore(runtime.state),  # type: ignore[arg-type]
                             runtime.codec, "test")
    with pytest.raises(StateStoreError, match="no host available"):
        runner.process(beats(runtime, "u1"))
    assert runner.stats.dead_lettered == 0 and dead_letters(runtime) == []


class RefusingLog:
    """A log whose appends fail as an unreachable broker's do."""

    def __init__(self, inner: EventLog) -> None:
        self.inner = inner

    def append(self, topic: str, key: bytes | None, value: bytes, **kw: Any) -> None:
        raise EventLogError(f"append to {topic} failed: broker unreachable")

    def flush(self, timeout: float = 30.0) -> None:
        self.inner.flush(timeout)


def test_a_log_that_fails_raises_and_writes_no_row(runtime: Runtime) -> None:
    def echoes(event: Event, state: StateReader) -> Outcome:
        outcome = scored(event, state)
        outcome.events.append(new_event("PlaybackHeartbeat", dict(event.data), producer="probe"))
        return outcome

    runner = ProcessorRunner(Probe(echoes), RefusingLog(runtime.log), runtime.state,  # type: ignore[arg-type]
                             runtime.codec, "test")
    with pytest.raises(EventLogError, match="broker unreachable"):
        runner.process(beats(runtime, "u1"))
    assert runtime.state.get(PROBE, ("u1",)) is None
