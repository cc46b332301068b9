"""Events: immutable facts, named in the past tense, one Avro schema each."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

# Output events of a processor get ids derived from the input's id, so a redelivered
# input produces byte-identical outputs that consumers de-duplicate on event_id.
_DERIVED_ID_NAMESPACE = uuid.UUID("6f1c9a52-3f0e-4b8e-9a57-0d6c7f3f4a11")


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class EventHeader:
    """The envelope every event carries (``reelstream.events.EventHeader``)."""

    event_id: str
    event_time: datetime
    producer: str
    schema_version: int
    correlation_id: str
    causation_id: str | None = None

    def to_avro(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "event_time": self.event_time,
            "producer": self.producer,
            "schema_version": self.schema_version,
            "correlation_id": self.correlation_id,
            "causation_id": self.causation_id,
        }

    @classmethod
    def from_avro(cls, data: Mapping[str, Any]) -> EventHeader:
        event_id = data["event_id"]
        return cls(
            event_id=str(event_id),
            event_time=data["event_time"],
            producer=data["producer"],
            schema_version=data["schema_version"],
            correlation_id=data["correlation_id"],
            causation_id=data.get("causation_id"),
        )


@dataclass(frozen=True)
class Event:
    """One fact: its type (the schema's short name), envelope, and payload fields."""

    type: str
    header: EventHeader
    data: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "data", MappingProxyType(dict(self.data)))

    @property
    def event_id(self) -> str:
        return self.header.event_id

    def __getitem__(self, name: str) -> Any:
        return self.data[name]

    def with_data(self, **changes: Any) -> Event:
        return replace(self, data={**self.data, **changes})

    def to_avro(self) -> dict[str, Any]:
        return {"header": self.header.to_avro(), **self.data}


def new_event(
    event_type: str,
    data: Mapping[str, Any],
    *,
    producer: str,
    correlation_id: str | None = None,
    caused_by: Event | None = None,
    event_id: str | None = None,
    event_time: datetime | None = None,
    schema_version: int | None = None,
) -> Event:
    """Build an event. ``caused_by`` carries the correlation id forward and sets causation.

    ``schema_version`` defaults to the current version of the event type's schema.
    """
    if schema_version is None:
        from reelstream.events.registry import default_registry

        schema_version = default_registry().current(event_type).version
    if correlation_id is None:
        correlation_id = caused_by.header.correlation_id if caused_by else str(uuid.uuid4())
    header = EventHeader(
        event_id=event_id or str(uuid.uuid4()),
        event_time=event_time or utc_now(),
        producer=producer,
        schema_version=schema_version,
        correlation_id=correlation_id,
        causation_id=caused_by.event_id if caused_by else None,
    )
    return Event(event_type, header, data)


def derived_event_id(cause: Event, index: int) -> str:
    """Deterministic id of the ``index``-th event a processor emits for ``cause``."""
    return str(uuid.uuid5(_DERIVED_ID_NAMESPACE, f"{cause.event_id}/{index}"))
