"""What a processor is: an event in, view rows and new events out, no I/O of its own.

A processor reads current state only through the ``StateReader`` it is handed, so a
unit test passes a dict-backed reader and needs no runtime. The hosts (embedded
asyncio loop, Faust agents) wrap the same processor in a ``ProcessorRunner``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from reelstream.events.model import Event
from reelstream.stores.ports import Row, ViewSpec


class StateReader(Protocol):
    def get(self, spec: ViewSpec, key: Sequence[Any]) -> Row | None: ...

    def query(self, spec: ViewSpec, partition: Sequence[Any]) -> list[Row]: ...


@dataclass
class Outcome:
    """What handling one event decided: rows to upsert (in order) and events to emit."""

    writes: list[tuple[ViewSpec, dict[str, Any]]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    def write(self, spec: ViewSpec, values: Mapping[str, Any]) -> Outcome:
        self.writes.append((spec, dict(values)))
        return self


# How far an event time may run ahead of its record's log time and still be believed: the
# producing host's clock and the log's differ by milliseconds to seconds (and a test's
# injected clock by minutes); a device clock set wrong is off by hours.
MAX_EVENT_TIME_LEAD_MS = 15 * 60 * 1000


class Processor(ABC):
    """A pure stream processor. Subclasses set ``name``, ``topics`` and ``views``."""

    name: ClassVar[str]
    topics: ClassVar[tuple[str, ...]]
    views: ClassVar[tuple[ViewSpec, ...]]
    coalesce_writes: ClassVar[bool] = False
    """True lets the runner write each row once per batch (its last version), all at once
    at the batch's end: for processors whose writes outside an event's primary row go only
    to views that are never a primary (see ``runner._BatchRows``)."""
    event_time_bound_by_log: ClassVar[bool] = False
    """True makes the runner hand ``handle`` an event whose ``event_time`` is at most
    ``MAX_EVENT_TIME_LEAD_MS`` after its record's log timestamp, a later one being taken as
    the log timestamp (a broken clock, as the gateway takes a future ``ts``): for processors
    that keep the newest event by event time, where one event stamped far in the future (a
    producer writing to the topic with a fast clock) would otherwise outrank every later one
    until the wall clock caught up. The log timestamp is stored with the record, so a replay
    bounds it alike."""

    @abstractmethod
    def primary(self, event: Event) -> tuple[ViewSpec, tuple[Any, ...]] | None:
        """The row whose ``applied`` position records that ``event`` was handled, or None
        when this processor ignores the event. It is written last, so a crash part-way
        through an event's writes makes the redelivered event run again in full."""

    @abstractmethod
    def handle(self, event: Event, state: StateReader) -> Outcome:
        """Decide the rows to write and events to emit. Must be deterministic."""


def newer(event: Event, row: Row | None, time_column: str = "event_time_ms") -> bool:
    """True when ``event`` happened after what ``row`` holds (ordering by event time, not arrival)."""
    if row is None or row.values.get(time_column) is None:
        return True
    return bool(millis(event.header.event_time) >= row.values[time_column])


def millis(moment: Any) -> int | None:
    if moment is None:
        return None
    return int(moment.timestamp() * 1000)
