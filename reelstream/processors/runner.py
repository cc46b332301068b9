"""Runs one processor over log records: decode, de-duplicate, handle, write, emit.

Shared by both hosts, so the embedded runtime and the Faust/Kafka runtime apply
events identically. Idempotence: every written row stores the log position of the
event that wrote it, and an event whose position the primary row already holds is
skipped. Emitted events get ids derived from the input's, so a redelivery re-emits
byte-identical events that consumers de-duplicate on ``event_id``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from reelstream.errors import ReelStreamError, UndecodableEvent
from reelstream.events.codec import EventCodec
from reelstream.events.model import derived_event_id, new_event
from reelstream.events.topics import DEAD_LETTER_TOPIC, topic_for
from reelstream.processors.base import Processor
from reelstream.stores.ports import EventLog, Record, Row, StateStore, ViewSpec

log = logging.getLogger(__name__)


@dataclass
class RunnerStats:
    applied: int = 0
    duplicates: int = 0
    ignored: int = 0
    dead_lettered: int = 0
    emitted: int = 0


class _BatchRows:
    """The store as one batch sees it: a row is read at most once per batch and an event's
    own writes are never read back (write-through, so the store always holds them). Per
    event this saves the read before each write; a session's beats in one batch cost one
    read in all. Each saved read was a synchronous round trip on Cassandra.

    ``coalesce`` (the processor's ``coalesce_writes``): writes are held and each row is
    written once, its last version, by ``write`` at the end of the batch (a player's beats
    in one batch are one write per view, not one each), in two rounds: first the rows of
    views that were no event's primary, then the primary rows. An event's primary row
    (its ``applied`` mark) so never becomes durable before its other writes, as with
    write-through; that holds because such processors write nothing else to a primary
    view. Until the batch is committed a crash loses nothing: it is redelivered."""

    def __init__(self, state: StateStore, coalesce: bool = False) -> None:
        self.state = state
        self.coalesce = coalesce
        self.rows: dict[tuple[str, tuple[Any, ...]], Row | None] = {}
        self.held: dict[tuple[str, tuple[Any, ...]], tuple[ViewSpec, Row]] = {}
        self.primaries: set[str] = set()  # views that hold some event's primary row

    def get(self, spec: ViewSpec, key: Sequence[Any]) -> Row | None:
        k = (spec.name, tuple(key))
        if k not in self.rows:
            self.rows[k] = self.state.get(spec, key)
        row = self.rows[k]
        # A copy, as the store would return: a handler changing what it read changes nothing else.
        return Row(dict(row.values), dict(row.applied)) if row is not None else None

    def put(self, spec: ViewSpec, row: Row) -> None:
        k = (spec.name, spec.key_of(row.values))
        if self.coalesce:
            self.held[k] = (spec, row)
        else:
            self.state.put(spec, row)
        self.rows[k] = row

    def query(self, spec: ViewSpec, partition: Sequence[Any]) -> list[Row]:
        self.write()
        return self.state.query(spec, partition)  # the store: it holds every write of the batch

    def write(self) -> None:
        """Write the held rows: other views first, then the primary views."""
        if not self.held:
            return
        rows = list(self.held.values())
        for first in (True, False):
            if batch := [(spec, row) for spec, row in rows if (spec.name not in self.primaries) == first]:
                self.state.put_many(batch)
        self.held.clear()


class ProcessorRunner:
    def __init__(self, processor: Processor, log_: EventLog, state: StateStore, codec: EventCodec,
                 producer: str, emit: bool = True) -> None:
        self.processor = processor
        self.log = log_
        self.state = state
        self.codec = codec
        self.producer = producer
        self.emit = emit  # replays rebuild state without re-emitting history
        self.stats = RunnerStats()
        self.consumer_name = f"reel.processor.{processor.name}"

    def process(self, records: Sequence[Record]) -> None:
        """Apply a batch; durable (outputs flushed) when it returns, so the caller may commit."""
        rows = _BatchRows(self.state, self.processor.coalesce_writes)
        for record in records:
            self.process_one(record, rows)
        rows.write()
        self.log.flush()

    def process_one(self, record: Record, rows: _BatchRows | None = None) -> None:
        if rows is None:
            rows = _BatchRows(self.state, self.processor.coalesce_writes)
            self.process_one(record, rows)
            rows.write()
            return
        try:
            event = self.codec.decode(record.value)
        except UndecodableEvent as e:
            self._dead_letter(record, f"undecodable: {e}")
            return
        target = self.processor.primary(event)
        if target is None:
            self.stats.ignored += 1
            return
        spec, key = target
        rows.primaries.add(spec.name)
        current = rows.get(spec, key)
        if current is not None and current.has_applied(record):
            self.stats.duplicates += 1
            return
        try:
            outcome = self.processor.handle(event, rows)
        except (ReelStreamError, KeyError, ValueError, TypeError) as e:
            log.exception("%s failed on %s %s", self.processor.name, event.type, event.event_id)
            self._dead_letter(record, f"{self.processor.name} could not apply {event.type}: {e!r}")
            return
        if self.emit:
            for index, out in enumerate(outcome.events):
                out = replace(out, header=replace(out.header, event_id=derived_event_id(event, index)))
                topic = topic_for(out.type)
                self.log.append(topic.name, topic.key_of(out), self.codec.encode(out, topic.name))
                self.stats.emitted += 1
        position = f"{record.topic}/{record.partition}"
        primary_key = tuple(key)
        ordered = sorted(outcome.writes, key=lambda w: w[0] is spec and w[0].key_of(w[1]) == primary_key)
        for view, values in ordered:
            existing = rows.get(view, view.key_of(values))
            applied = dict(existing.applied) if existing else {}
            applied[position] = record.offset
            rows.put(view, Row(values, applied))
        changed_primary = any(w[0] is spec and w[0].key_of(w[1]) == primary_key
                              for w in outcome.writes)
        if not changed_primary and current is not None:
            # The event changed nothing visible; still mark it applied on the primary row.
            rows.put(spec, Row(current.values, {**current.applied, position: record.offset}))
        self.stats.applied += 1

    def _dead_letter(self, record: Record, reason: str) -> None:
        self.stats.dead_lettered += 1
        log.warning("dead-lettering %s/%d@%d: %s", record.topic, record.partition, record.offset, reason)
        if not self.emit:
            return  # a replay meets the same bad records the live run already dead-lettered
        letter = new_event("DeadLetter", {
            "source_topic": record.topic, "source_partition": record.partition, "source_offset": record.offset,
            "key": record.key, "value": record.value, "consumer": self.consumer_name, "reason": reason,
        }, producer=self.producer, correlation_id=f"{record.topic}/{record.partition}/{record.offset}")
        self.log.append(DEAD_LETTER_TOPIC, record.topic.encode(), self.codec.encode(letter, DEAD_LETTER_TOPIC))
