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
