"""The README's consumer example decodes ReelStream's events without importing ReelStream."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from reelstream.events.codec import EventCodec
from tests.support.events import heartbeat, registered

REPO = Path(__file__).resolve().parents[3]


def test_the_example_decodes_every_current_event_type() -> None:
    spec = importlib.util.spec_from_file_location("example", REPO / "examples" / "analytics_consumer.py")
    example = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(example)  # type: ignore[union-attr]
    writers = example.load_writers(str(REPO / "events" / "schemas"))
    codec = EventCodec()
    assert len(writers) == len(codec.registry.event_types) + 1  # + the EventHeader record itself
    name, body = example.decode(codec.encode(heartbeat("u1", "t1", "tv", 90_000, 3)), writers)
    assert name == "reelstream.events.PlaybackHeartbeat"
    assert body["position_ms"] == 90_000 and body["header"]["producer"] == "test"
    name, body = example.decode(codec.encode(registered("t7")), writers)
    assert body["license_terms"]["territories"] == ["US"]
