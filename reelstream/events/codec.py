"""Event <-> bytes.

Default: Avro single-object encoding (Avro spec, "Single-object encoding"): the two
marker bytes C3 01, the 8-byte little-endian CRC-64-AVRO fingerprint of the writer
schema, then the Avro binary body. A consumer resolves the writer schema from the
files in ``events/schemas/`` with no registry. With a schema-registry URL configured,
the Confluent wire format (magic 0, 4-byte schema id) is written instead; both are
always readable.
"""

from __future__ import annotations

import io
import struct
from typing import Protocol

import fastavro

from reelstream.errors import SchemaViolation, UndecodableEvent
from reelstream.events.model import Event, EventHeader
from reelstream.events.registry import SchemaRegistry, SchemaVersion, default_registry
from reelstream.events.upcasters import upcast
from reelstream.events.validation import first_violation, is_valid

SINGLE_OBJECT_MARKER = b"\xc3\x01"
CONFLUENT_MAGIC = b"\x00"


class SchemaIdResolver(Protocol):
    """What the codec needs from a Confluent-compatible schema registry."""

    def id_for(self, subject: str, schema: SchemaVersion) -> int: ...

    def schema_for(self, schema_id: int) -> str: ...


class EventCodec:
    """Validates, encodes and decodes events against the schemas kept in the repository."""

    def __init__(
        self,
        registry: SchemaRegistry | None = None,
        schema_registry: SchemaIdResolver | None = None,
        namespace: str = "",
    ) -> None:
        self.registry = registry or default_registry()
        self._schema_registry = schema_registry
        # Subjects are named after the topic as the log names it (REEL_NAMESPACE's prefix
        # included), so deployments sharing a registry keep their subjects apart.
        self._subject_prefix = f"{namespace}." if namespace else ""
        self._confluent_cache: dict[int, SchemaVersion] = {}

    def validate(self, event: Event) -> SchemaVersion:
        """Raise SchemaViolation naming the field when ``event`` does not match its schema."""
        schema = self.registry.current(event.type)
        datum = event.to_avro()
        unknown = set(event.data) - schema.field_names
        if unknown:
            # fastavro ignores extra keys; they would be dropped silently, so refuse them.
            raise SchemaViolation(event.type, min(unknown), "is not a field of this event")
        if not is_valid(schema.parsed, datum):
            field, message = first_violation(schema.resolved, datum) or ("<event>", "does not match the schema")
            raise SchemaViolation(event.type, field, message)
        if event.header.schema_version != schema.version:
            raise SchemaViolation(
                event.type, "header.schema_version",
                f"is {event.header.schema_version}, but the current schema is version {schema.version}",
            )
        return schema

    def encode(self, event: Event, topic: str | None = None) -> bytes:
        schema = self.validate(event)
        body = io.BytesIO()
        if self._schema_registry is not None:
            subject = f"{self._subject_prefix}{topic}-{schema.full_name}" if topic else schema.full_name
            schema_id = self._schema_registry.id_for(subject, schema)
            body.write(CONFLUENT_MAGIC + struct.pack(">I", schema_id))
        else:
            body.write(SINGLE_OBJECT_MARKER + schema.fingerprint)
        fastavro.schemaless_writer(body, schema.parsed, event.to_avro())
        return body.getvalue()

    def decode(self, data: bytes) -> Event:
        writer, offset = self._writer_schema(data)
        reader = self.registry.current(writer.event_type)
        try:
            record = fastavro.schemaless_reader(io.BytesIO(data[offset:]), writer.parsed, reader.parsed)
        except Exception as e:  # corrupt body: fastavro raises EOFError, ValueError, UnicodeDecodeError...
            raise UndecodableEvent(f"{writer.event_type} v{writer.version}: corrupt Avro body: {e}") from e
        if not isinstance(record, dict):  # every event schema is a record; a writer schema is not
            raise UndecodableEvent(f"{writer.event_type} v{writer.version}: the writer schema is not a record")
        header = EventHeader.from_avro(record.pop("header"))
        event = Event(writer.event_type, header, record)
        return upcast(event, from_version=writer.version, to_version=reader.version)

    def _writer_schema(self, data: bytes) -> tuple[SchemaVersion, int]:
        if data[:2] == SINGLE_OBJECT_MARKER and len(data) >= 10:
            writer = self.registry.by_fingerprint(data[2:10])
            if writer is None:
                raise UndecodableEvent(
                    f"unknown schema fingerprint {data[2:10].hex()}: written with a schema this "
                    "ReelStream does not have (newer release?)"
                )
            return writer, 10
        if data[:1] == CONFLUENT_MAGIC and len(data) >= 5:
            return self._confluent_writer(struct.unpack(">I", data[1:5])[0]), 5
        raise UndecodableEvent(f"not a ReelStream event: starts with {data[:10].hex() or 'nothing'}")

    def _confluent_writer(self, schema_id: int) -> SchemaVersion:
        if schema_id not in self._confluent_cache:
            if self._schema_registry is None:
                raise UndecodableEvent(f"Confluent-framed message (schema id {schema_id}) but no schema registry is configured")
            import json as _json

            from fastavro.schema import to_parsing_canonical_form

            from reelstream.events.registry import crc64_avro

            raw = _json.loads(self._schema_registry.schema_for(schema_id))
            canonical = to_parsing_canonical_form(fastavro.parse_schema(raw, named_schemas={}))
            writer = self.registry.by_fingerprint(struct.pack("<Q", crc64_avro(canonical.encode())))
            if writer is None:
                raise UndecodableEvent(f"schema id {schema_id} is not a schema this ReelStream knows")
            self._confluent_cache[schema_id] = writer
        return self._confluent_cache[schema_id]
