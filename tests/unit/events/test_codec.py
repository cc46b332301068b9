"""Encoding: single-object framing, produce-time validation, decoding old versions."""

from __future__ import annotations

import io
import struct
from datetime import UTC, datetime

import fastavro
import pytest

from reelstream.errors import EventNotAllowedOnTopic, SchemaViolation, UndecodableEvent
from reelstream.events.codec import EventCodec
from reelstream.events.model import Event, EventHeader, derived_event_id, new_event
from reelstream.events.partitioning import partition_for
from reelstream.events.registry import default_registry
from reelstream.events.topics import TOPICS, topic, topic_for
from tests.support.avro_samples import sample

codec = EventCodec()
registry = default_registry()
WHEN = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def title_registered(**overrides: object) -> Event:
    data = {"title_id": "t-1", "title": "Big Buck Bunny", "original_language": "en", "audio_languages": ["en", "fr"],
            "rating": {"system": "MPAA", "value": "PG"},
            "license_terms": {"territories": ["US", "FR"], "window_start": WHEN, "window_end": None,
                              "offline_download_allowed": True, "max_height": 2160},
            "genres": ["animation"]}
    data.update(overrides)
    return new_event("TitleRegistered", data, producer="test", correlation_id="ingest-1", event_time=WHEN)


@pytest.mark.parametrize("event_type", registry.event_types)
def test_every_event_type_round_trips(event_type: str) -> None:
    datum = sample(registry.current(event_type).resolved)
    header = EventHeader.from_avro(datum.pop("header"))
    header = EventHeader(header.event_id, WHEN, "test", registry.current(event_type).version, "corr")
    event = Event(event_type, header, datum)
    decoded = codec.decode(codec.encode(event))
    assert decoded.type == event_type
    assert decoded.header == header
    assert dict(decoded.data) == datum


def test_single_object_encoding_frame_is_marker_fingerprint_body() -> None:
    event = title_registered()
    data = codec.encode(event)
    schema = registry.current("TitleRegistered")
    assert data[:2] == b"\xc3\x01"
    assert data[2:10] == schema.fingerprint
    body = fastavro.schemaless_reader(io.BytesIO(data[10:]), schema.parsed, schema.parsed)
    assert body["title"] == "Big Buck Bunny"


def test_a_field_of_the_wrong_type_is_rejected_with_its_path() -> None:
    bad = title_registered(license_terms={"territories": ["US"], "window_start": "yesterday", "window_end": None,
                                          "offline_download_allowed": True, "max_height": 2160})
    with pytest.raises(SchemaViolation) as err:
        codec.encode(bad)
    assert err.value.field == "license_terms.window_start"
    assert "TitleRegistered" in str(err.value)


def test_a_missing_field_and_an_unknown_field_are_named() -> None:
    event = title_registered()
    missing = Event(event.type, event.header, {k: v for k, v in event.data.items() if k != "title"})
    with pytest.raises(SchemaViolation, match="'title': is required"):
        codec.encode(missing)
    with pytest.raises(SchemaViolation, match="'colour'"):
        codec.encode(event.with_data(colour="red"))
    with pytest.raises(SchemaViolation, match="rating.value"):
        codec.encode(event.with_data(rating={"system": "MPAA", "value": 3}))


def test_an_event_from_an_older_schema_version_is_upcast() -> None:
    old = registry.versions("TitleRegistered")[0]
    assert old.version == 1
    record = {**title_registered().to_avro()}
    del record["genres"]
    record["header"] = {**record["header"], "schema_version": 1}
    buf = io.BytesIO()
    buf.write(b"\xc3\x01" + old.fingerprint)
    fastavro.schemaless_writer(buf, old.parsed, record)
    decoded = codec.decode(buf.getvalue())
    assert decoded.header.schema_version == registry.current("TitleRegistered").version == 3
    assert decoded["series"] is None and decoded["end_credits_start_ms"] is None  # v3 defaults
    assert decoded["genres"] == ["uncategorised"]
    assert decoded["title"] == "Big Buck Bunny"


@pytest.mark.parametrize("data, message", [
    (b"", "not a ReelStream event"),
    (b"{\"json\": true}", "not a ReelStream event"),
    (b"\xc3\x01" + b"\x00" * 8 + b"body", "unknown schema fingerprint"),
    (b"\x00\x00\x00\x00\x07abc", "no schema registry"),
])
def test_undecodable_bytes_raise_a_specific_error(data: bytes, message: str) -> None:
    with pytest.raises(UndecodableEvent, match=message):
        codec.decode(data)


def test_a_truncated_body_is_undecodable() -> None:
    data = codec.encode(title_registered())
    with pytest.raises(UndecodableEvent, match="corrupt Avro body"):
        codec.decode(data[:20])


def test_confluent_wire_format_with_a_registry() -> None:
    class Registry:
        def __init__(self) -> None:
            self.schemas: dict[int, str] = {}

        def id_for(self, subject: str, schema: object) -> int:
            self.schemas[42] = schema.canonical  # type: ignore[attr-defined]
            self.subject = subject
            return 42

        def schema_for(self, schema_id: int) -> str:
            return self.schemas[schema_id]

    registry_ = Registry()
    confluent = EventCodec(schema_registry=registry_)
    data = confluent.encode(title_registered(), "reel.catalog")
    assert data[:5] == b"\x00" + struct.pack(">I", 42)
    assert registry_.subject == "reel.catalog-reelstream.events.TitleRegistered"
    assert confluent.decode(data)["title"] == "Big Buck Bunny"
    assert confluent.decode(codec.encode(title_registered()))["title_id"] == "t-1"  # both framings readable


def test_every_event_type_has_exactly_one_topic_and_a_key_field() -> None:
    for event_type in registry.event_types:
        t = topic_for(event_type)
        fields = {f["name"] for f in registry.current(event_type).raw["fields"]}
        assert t.key_field in fields, (event_type, t.name)
    assert sum(len(t.event_types) for t in TOPICS) == len(registry.event_types)


def test_topic_refuses_events_it_does_not_carry() -> None:
    with pytest.raises(EventNotAllowedOnTopic, match="reel.playback"):
        topic("reel.playback").key_of(title_registered())
    assert topic("reel.catalog").key_of(title_registered()) == b"t-1"


def test_caused_events_carry_correlation_and_deterministic_ids() -> None:
    cause = title_registered()
    effect = new_event("TitlePublished", {"title_id": "t-1", "package_id": "p"}, producer="x", caused_by=cause)
    assert effect.header.correlation_id == "ingest-1"
    assert effect.header.causation_id == cause.event_id
    assert derived_event_id(cause, 0) == derived_event_id(cause, 0) != derived_event_id(cause, 1)


def test_partitioner_matches_kafkas_murmur2_vectors() -> None:
    # Vectors from Kafka's UtilsTest.testMurmur2, then toPositive(h) % n.
    from reelstream.events.partitioning import murmur2

    assert murmur2(b"21") == -973932308
    assert murmur2(b"foobar") == -790332482
    assert murmur2(b"a-little-bit-long-string") == -985981536
    assert murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8") == -58897971
    assert partition_for(b"21", 12) == (-973932308 & 0x7FFFFFFF) % 12
