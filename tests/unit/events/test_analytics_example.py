"""The README's consumer example decodes ReelStream's events without importing ReelStream."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from reelstream.events.codec import EventCodec
from tests.support.events import heartbeat, registered

REPO = Path(__file__).resolve().parents[3]


def test_the_example_decodes_every_current_event_type() -> None:
    spec = importlib.util.spec_from_file_location("example", REPO / "examples" / "analytics_consumer.py")
    example = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(example)  # type: ignore[union-attr]
    writers = example.load_writers(str(REPO / "events" / "schemas"))
    codec = EventCodec()
    current = [codec.registry.current(t) for t in codec.registry.event_types]
    assert all(v.fingerprint in writers for v in current)
    name, body = example.decode(codec.encode(heartbeat("u1", "t1", "tv", 90_000, 3)), writers)
    assert name == "reelstream.events.PlaybackHeartbeat"
    assert body["position_ms"] == 90_000 and body["header"]["producer"] == "test"
    name, body = example.decode(codec.encode(registered("t7")), writers)
    assert body["license_terms"]["territories"] == ["US"]


def test_the_example_decodes_events_written_with_earlier_schema_versions() -> None:
    # Old events stay on the topics (reel.catalog is kept forever); their writers are in history/.
    import io

    from fastavro import schemaless_writer

    spec = importlib.util.spec_from_file_location("example", REPO / "examples" / "analytics_consumer.py")
    example = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(example)  # type: ignore[union-attr]
    writers = example.load_writers(str(REPO / "events" / "schemas"))
    registry = EventCodec().registry
    old = [v for t in registry.event_types for v in registry.versions(t) if v is not registry.current(t)]
    assert len(old) == len(list((REPO / "events" / "schemas" / "history").glob("*.avsc"))) > 0
    assert len(writers) == len(codec_versions := [*old, *(registry.current(t) for t in registry.event_types)]) + 1
    v1 = next(v for v in old if (v.event_type, v.version) == ("TitleRegistered", 1))
    current = EventCodec().encode(registered("t9"))
    header = example.decode(current, writers)[1]["header"]
    body = {f["name"]: None for f in v1.raw["fields"]}
    record = {**{k: v for k, v in example.decode(current, writers)[1].items() if k in body}, "header": header}
    out = io.BytesIO()
    schemaless_writer(out, v1.parsed, record)
    name, decoded = example.decode(b"\xc3\x01" + v1.fingerprint + out.getvalue(), writers)
    assert name == "reelstream.events.TitleRegistered" and decoded["title_id"] == "t9"
    assert all(v.fingerprint in writers for v in codec_versions), "the same fingerprints ReelStream writes"
    with pytest.raises(ValueError, match="not a ReelStream event"):
        example.decode(b"not avro at all", writers)


class _Message:
    def __init__(self, value: bytes, offset: int, error: str | None = None) -> None:
        self._value, self._offset, self._error = value, offset, error

    def error(self) -> str | None:
        return self._error

    def value(self) -> bytes:
        return self._value

    def topic(self) -> str:
        return "reel.playback"

    def partition(self) -> int:
        return 3

    def offset(self) -> int:
        return self._offset


class _Consumer:
    """confluent-kafka's Consumer as the example uses it: joining (None before an assignment), then the messages."""

    def __init__(self, messages: list[_Message]) -> None:
        self.queue: list[_Message | None] = [None, *messages]
        self.stored: list[int] = []
        self.assigned = False

    def poll(self, timeout: float) -> _Message | None:
        if self.queue:
            message = self.queue.pop(0)
            self.assigned = self.assigned or message is not None
            return message
        return None

    def assignment(self) -> list[str]:
        return ["reel.playback/3"] if self.assigned else []

    def store_offsets(self, message: _Message) -> None:
        self.stored.append(message.offset())


def test_the_example_reports_a_bad_record_with_its_position_and_reads_on() -> None:
    # It raised on the first record it could not decode: it never read past it, ReelStream's
    # processors having dead-lettered it and moved on; and a poll that came back empty while
    # the group was still forming ended it before its first event.
    import io

    spec = importlib.util.spec_from_file_location("example", REPO / "examples" / "analytics_consumer.py")
    example = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(example)  # type: ignore[union-attr]
    writers = example.load_writers(str(REPO / "events" / "schemas"))
    codec = EventCodec()
    consumer = _Consumer([
        _Message(codec.encode(heartbeat("u1", "t1", "tv", 1_000, 1)), 10),
        _Message(b"\xc3\x01" + b"\x11" * 8 + b"a newer schema's body", 11),
        _Message(b"", 12, error="broker transport failure"),
        _Message(codec.encode(heartbeat("u1", "t1", "tv", 2_000, 2)), 13),
    ])
    out, err = io.StringIO(), io.StringIO()
    example.consume(consumer, writers, out, err)
    assert [line.split()[0] for line in out.getvalue().splitlines()] == ["reelstream.events.PlaybackHeartbeat"] * 2
    assert "skipped reel.playback/3@11: not a ReelStream event, or a schema newer" in err.getvalue()
    assert "consumer error: broker transport failure" in err.getvalue()
    assert consumer.stored == [10, 11, 13]  # each once handled; the bad record is on the topic still
