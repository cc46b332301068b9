"""The Confluent registry client, against a minimal server speaking the two REST calls it uses.

No Confluent-compatible registry is installable from the package registries this
project builds from (Confluent's is not on Maven Central, Karapace is not on PyPI), so
this stands in for one; the wire format itself is checked byte by byte.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from reelstream.errors import SchemaError
from reelstream.events.codec import EventCodec
from reelstream.events.schema_registry import ConfluentSchemaRegistry
from tests.support.events import heartbeat


class _Registry(BaseHTTPRequestHandler):
    schemas: ClassVar[list[str]] = []
    subjects: ClassVar[dict[str, list[int]]] = {}

    def _reply(self, code: int, body: dict[str, object]) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        subject = self.path.split("/")[2]
        schema = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["schema"]
        if schema not in self.schemas:
            self.schemas.append(schema)
        schema_id = self.schemas.index(schema) + 1
        self.subjects.setdefault(subject, []).append(schema_id)
        self._reply(200, {"id": schema_id})

    def do_GET(self) -> None:
        schema_id = int(self.path.rsplit("/", 1)[1])
        if 1 <= schema_id <= len(self.schemas):
            self._reply(200, {"schema": self.schemas[schema_id - 1]})
        else:
            self._reply(404, {"error_code": 40403, "message": "Schema not found"})

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def registry_url() -> Iterator[str]:
    server = HTTPServer(("127.0.0.1", 0), _Registry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_events_round_trip_in_the_confluent_wire_format(registry_url: str) -> None:
    producer = EventCodec(schema_registry=ConfluentSchemaRegistry(registry_url))
    data = producer.encode(heartbeat("u1", "t1", "tv", 5_000, 1), "reel.playback")
    assert data[0] == 0 and int.from_bytes(data[1:5], "big") == 1
    assert "reel.playback-reelstream.events.PlaybackHeartbeat" in _Registry.subjects
    consumer = EventCodec(schema_registry=ConfluentSchemaRegistry(registry_url))  # cold cache: fetches by id
    assert consumer.decode(data)["position_ms"] == 5_000


def test_an_unreachable_registry_is_a_clear_error() -> None:
    client = ConfluentSchemaRegistry("http://127.0.0.1:9", timeout=1)
    with pytest.raises(SchemaError, match="unreachable"):
        EventCodec(schema_registry=client).encode(heartbeat("u1", "t1", "tv", 1, 1), "reel.playback")


def test_an_unknown_schema_id_names_the_registry(registry_url: str) -> None:
    with pytest.raises(SchemaError, match="answered 404"):
        ConfluentSchemaRegistry(registry_url).schema_for(999)


def test_subjects_carry_the_deployments_namespace(registry_url: str, tmp_path: Path) -> None:
    # Two deployments sharing one registry (REEL_NAMESPACE stage and prod) registered under
    # one subject, "reel.entitlements-...", while their topics were apart.
    from reelstream.config import Settings
    from reelstream.runtime import Runtime

    runtime = Runtime(Settings(data_dir=tmp_path, namespace="stage", schema_registry_url=registry_url))
    runtime.codec.encode(heartbeat("u1", "t1", "tv", 5_000, 1), "reel.playback")
    assert "stage.reel.playback-reelstream.events.PlaybackHeartbeat" in _Registry.subjects


class _Down(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize("registry", ["closed port", "503"])
def test_a_registry_that_does_not_answer_is_retried_not_dead_lettered(
        registry: str, registry_url: str, tmp_path: Path) -> None:
    # During a registry restart every record read was dead-lettered: its SchemaError counted as
    # the record's fault. Now the batch raises, is not committed, and the hosts retry it.
    from reelstream.config import Settings
    from reelstream.errors import SchemaRegistryUnavailable
    from reelstream.events.topics import DEAD_LETTER_TOPIC
    from reelstream.processors.playback.logic import WatchPositionProcessor
    from reelstream.processors.runner import ProcessorRunner
    from reelstream.runtime import Runtime
    from reelstream.stores.ports import Record

    data = EventCodec(schema_registry=ConfluentSchemaRegistry(registry_url)).encode(
        heartbeat("u1", "t1", "tv", 5_000, 1), "reel.playback")
    down = HTTPServer(("127.0.0.1", 0), _Down)
    thread = threading.Thread(target=down.serve_forever, daemon=True)
    thread.start()
    url = "http://127.0.0.1:9" if registry == "closed port" else f"http://127.0.0.1:{down.server_port}"
    runtime = Runtime(Settings(data_dir=tmp_path / "reel"))
    processor = WatchPositionProcessor()
    runtime.state.ensure_views(processor.views)
    codec = EventCodec(schema_registry=ConfluentSchemaRegistry(url, timeout=1))
    runner = ProcessorRunner(processor, runtime.log, runtime.state, codec, "test")
    try:
        with pytest.raises(SchemaRegistryUnavailable):
            runner.process([Record("reel.playback", 0, 0, b"u1", data, 0)])
        assert runner.stats.dead_lettered == 0
        assert sum(runtime.log.end_offsets(DEAD_LETTER_TOPIC).values()) == 0
    finally:
        runtime.close()
        down.shutdown()


def test_an_id_the_registry_never_gave_is_the_records_fault(registry_url: str) -> None:
    with pytest.raises(SchemaError, match="404") as raised:
        EventCodec(schema_registry=ConfluentSchemaRegistry(registry_url)).decode(b"\x00\x00\x00\x03\xe7body")
    from reelstream.errors import SchemaRegistryUnavailable
    assert not isinstance(raised.value, SchemaRegistryUnavailable)
