"""Runs one processor over log records: decode, de-duplicate, handle, write, emit.

Shared by both hosts, so the embedded runtime and the Faust/Kafka runtime apply
events identically. Idempotence: every written row stores the log position of the
event that wrote it, and an event whose position the primary row already holds is
skipped. Emitted events get ids derived from the input's, so a redelivery re-emits
events with the same ids: a consumer that counts de-duplicates on ``event_id``. (This
runner de-duplicates by log position, which a re-emitted copy does not share; the views
fed by other processors' outputs are overwritten by them, so a copy changes nothing.)

Order of durability, per batch: the emitted events (and dead letters) are flushed to the
log before any row is written, so an input is never marked applied while its outputs
could still be lost; a crash in between redelivers the input, which is applied again and
re-emits the same events.

A record that cannot be applied (its own fault: undecodable, a field its processor cannot
use, a row no store accepts, an output that does not fit its schema) is dead-lettered and
the partition moves on; a store or log that fails (``StateStoreError``, ``EventLogError``,
``ObjectStoreError``, ``SchemaRegistryUnavailable``) raises, so nothing is committed and the
batch is redelivered.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from reelstream.errors import (
    EventLogError,
    ObjectStoreError,
    ReelStreamError,
    SchemaRegistryUnavailable,
    StateStoreError,
    UndecodableEvent,
)
from reelstream.events.codec import EventCodec
from reelstream.events.model import Event, derived_event_id, new_event
from reelstream.events.topics import DEAD_LETTER_TOPIC, topic_for
from reelstream.processors.base import MAX_EVENT_TIME_LEAD_MS, Processor
from reelstream.stores.ports import EventLog, Record, Row, StateStore, ViewSpec
from reelstream.stores.sqlite_state import check_key, check_row

log = logging.getLogger(__name__)

# A store or log that failed: not the record's fault, so it raises and the batch is
# redelivered. Checked before RECORD_FAULTS, which contains them (ReelStreamError).
# A schema registry that does not answer is one too (it raised SchemaError, a record fault, and
# every record read during a registry restart was dead-lettered).
INFRASTRUCTURE_FAULTS: tuple[type[Exception], ...] = (StateStoreError, EventLogError, ObjectStoreError,
                                                      SchemaRegistryUnavailable)
# What a record can make a processor raise: dead-lettered, and the partition moves on.
RECORD_FAULTS: tuple[type[Exception], ...] = (ReelStreamError, KeyError, ValueError, TypeError)

_DEAD_LETTER_IDS = uuid.UUID("3b0f6a8e-5c1d-4f7a-9e2b-8d4c6a1f0e37")


class RowRejected(ReelStreamError):
    """A processor asked for a row or key that no store accepts (a NaN in a double column, a
    key of the wrong type): raised by the runner before the store is called, so the record
    that caused it is dead-lettered rather than failing the batch's write."""


def _checked(check: Callable[..., None], spec: ViewSpec, *args: Any) -> None:
    """``check(spec, *args)`` (a store's own value rules), a refusal raised as RowRejected: the
    stores raise StateStoreError for a bad value too, which by type is a store that failed."""
    try:
        check(spec, *args)
    except StateStoreError as e:
        raise RowRejected(str(e)) from e


@dataclass
class RunnerStats:
    applied: int = 0
    duplicates: int = 0
    ignored: int = 0
    dead_lettered: int = 0
    emitted: int = 0


class _BatchRows:
    """The store as one batch sees it: a row is read at most once per batch and an event's
    own writes are never read back (they are held here, and reads see them). Per event
    this saves the read before each write; a session's beats in one batch cost one read in
    all. Each saved read was a synchronous round trip on Cassandra.

    Every write is held until ``write``, which first calls ``before_write`` (the runner
    flushes the log there: the outputs of the events these rows mark applied become durable
    first). ``query`` writes what is held before it reads, so the store holds every write of
    the batch.

    Without ``coalesce`` the held writes are written one by one, in the order they were
    made, as write-through would have: an event's primary row, written last of its writes,
    is never durable before them. With ``coalesce`` (the processor's ``coalesce_writes``)
    each row is written once, its last version (a player's beats in one batch are one write
    per view, not one each), in two rounds: first the rows of views that were no event's
    primary, then the primary rows; that keeps the same promise because such processors
    write nothing else to a primary view. Until the batch is committed a crash loses
    nothing: it is redelivered."""

    def __init__(self, state: StateStore, coalesce: bool = False,
                 before_write: Callable[[], None] = lambda: None) -> None:
        self.state = state
        self.coalesce = coalesce
        self.before_write = before_write
        self.rows: dict[tuple[str, tuple[Any, ...]], Row | None] = {}
        self.held: dict[tuple[str, tuple[Any, ...]], tuple[ViewSpec, Row]] = {}
        self.ordered: list[tuple[ViewSpec, Row]] = []  # without coalesce: every write, in order
        self.primaries: set[str] = set()  # views that hold some event's primary row

    def get(self, spec: ViewSpec, key: Sequence[Any]) -> Row | None:
        k = (spec.name, tuple(key))
        if k not in self.rows:
            _checked(check_key, spec, spec.key_columns, key)
            self.rows[k] = self.state.get(spec, key)
        row = self.rows[k]
        # A copy, as the store would return: a handler changing what it read changes nothing else.
        return Row(dict(row.values), dict(row.applied)) if row is not None else None

    def put(self, spec: ViewSpec, row: Row) -> None:
        """Hold ``row``, already checked with ``check_row``."""
        k = (spec.name, spec.key_of(row.values))
        if self.coalesce:
            self.held[k] = (spec, row)
        else:
            self.ordered.append((spec, row))
        self.rows[k] = row

    def query(self, spec: ViewSpec, partition: Sequence[Any]) -> list[Row]:
        _checked(check_key, spec, spec.partition_key, partition)
        self.write()
        return self.state.query(spec, partition)  # the store: it holds every write of the batch

    def write(self) -> None:
        """Write the held rows (after ``before_write``): in order, or, coalesced, other
        views first, then the primary views."""
        if not self.held and not self.ordered:
            return
        self.before_write()
        for spec, row in self.ordered:
            self.state.put(spec, row)  # one by one: put_many promises no order among its rows
        self.ordered.clear()
        rows = list(self.held.values())
        for first in (True, False):
            if batch := [(spec, row) for spec, row in rows if (spec.name not in self.primaries) == first]:
                self.state.put_many(batch)
        self.held.clear()


@dataclass
class _Applied:
    """What one record's event decided, checked and ready: nothing is queued or held until
    all of it is, so a record that fails part-way leaves nothing behind it."""

    outputs: list[tuple[str, bytes | None, bytes]]  # (topic, key, encoded event)
    rows: list[tuple[ViewSpec, Row]]


def _bounded_by_log_time(event: Event, record: Record) -> Event:
    """``event``, stamped at its record's log time if its own is further ahead than
    ``MAX_EVENT_TIME_LEAD_MS`` (see ``Processor.event_time_bound_by_log``)."""
    if event.header.event_time.timestamp() * 1000 <= record.timestamp_ms + MAX_EVENT_TIME_LEAD_MS:
        return event
    logged = datetime.fromtimestamp(record.timestamp_ms / 1000, tz=UTC)
    return replace(event, header=replace(event.header, event_time=logged))


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
        self._unflushed = False  # this runner appended since its last flush

    def process(self, records: Sequence[Record]) -> None:
        """Apply a batch; durable (outputs flushed, then rows written) when it returns, so
        the caller may commit."""
        rows = self._batch()
        for record in records:
            self.process_one(record, rows)
        rows.write()
        self._flush_outputs()  # the dead letters and outputs of records that wrote no row

    def process_one(self, record: Record, rows: _BatchRows | None = None) -> None:
        if rows is None:
            rows = self._batch()
            self.process_one(record, rows)
            rows.write()
            self._flush_outputs()
            return
        try:
            event = self.codec.decode(record.value)
        except INFRASTRUCTURE_FAULTS:
            raise  # a schema registry that did not answer, say
        except RECORD_FAULTS as e:  # UndecodableEvent, or an upcaster that cannot use its fields
            self._dead_letter(record, f"undecodable: {e if isinstance(e, UndecodableEvent) else repr(e)}")
            return
        try:
            applied = self._apply(record, event, rows)
        except INFRASTRUCTURE_FAULTS:
            raise
        except RECORD_FAULTS as e:
            log.exception("%s failed on %s %s", self.processor.name, event.type, event.event_id)
            self._dead_letter(record, f"{self.processor.name} could not apply {event.type}: {e!r}")
            return
        if applied is None:
            return
        for topic, key, value in applied.outputs:
            self._append(topic, key, value)
        self.stats.emitted += len(applied.outputs)
        for view, row in applied.rows:
            rows.put(view, row)
        self.stats.applied += 1

    def _batch(self) -> _BatchRows:
        return _BatchRows(self.state, self.processor.coalesce_writes, before_write=self._flush_outputs)

    def _apply(self, record: Record, event: Event, rows: _BatchRows) -> _Applied | None:
        """Decide, encode and check everything ``event`` leads to, queueing and holding
        nothing; None when it is ignored or already applied."""
        target = self.processor.primary(event)
        if target is None:
            self.stats.ignored += 1
            return None
        spec, key = target
        rows.primaries.add(spec.name)
        current = rows.get(spec, key)
        if current is not None and current.has_applied(record):
            self.stats.duplicates += 1
            return None
        if self.processor.event_time_bound_by_log:
            event = _bounded_by_log_time(event, record)
        outcome = self.processor.handle(event, rows)
        outputs = self._encode(event, outcome.events) if self.emit else []
        position = f"{record.topic}/{record.partition}"
        primary_key = tuple(key)
        ordered = sorted(outcome.writes, key=lambda w: w[0] is spec and w[0].key_of(w[1]) == primary_key)
        new_rows: list[tuple[ViewSpec, Row]] = []
        for view, values in ordered:
            existing = rows.get(view, view.key_of(values))
            new_rows.append((view, Row(values, {**(existing.applied if existing else {}), position: record.offset})))
        changed_primary = any(w[0] is spec and w[0].key_of(w[1]) == primary_key for w in outcome.writes)
        if not changed_primary and current is not None:
            # The event changed nothing visible; still mark it applied on the primary row.
            new_rows.append((spec, Row(current.values, {**current.applied, position: record.offset})))
        for view, row in new_rows:
            _checked(check_row, view, row)  # here, not in the batch's write: it is this record's fault
        return _Applied(outputs, new_rows)

    def _encode(self, cause: Event, events: Sequence[Event]) -> list[tuple[str, bytes | None, bytes]]:
        outputs: list[tuple[str, bytes | None, bytes]] = []
        for index, out in enumerate(events):
            # Derived from the input's id: a redelivered input re-emits the same ids.
            out = replace(out, header=replace(out.header, event_id=derived_event_id(cause, index)))
            topic = topic_for(out.type)
            outputs.append((topic.name, topic.key_of(out), self.codec.encode(out, topic.name)))
        return outputs

    def _append(self, topic: str, key: bytes | None, value: bytes) -> None:
        self._unflushed = True  # before the append: one that fails may still have queued it
        self.log.append(topic, key, value)

    def _flush_outputs(self) -> None:
        if self._unflushed:
            self.log.flush()
            self._unflushed = False

    def _dead_letter(self, record: Record, reason: str) -> None:
        self.stats.dead_lettered += 1
        if not self.emit:
            # A replay meets the bad records the live run already dead-lettered, and writes
            # nothing to the log: saying "dead-lettering" here sent operators to look for letters.
            log.warning("skipping %s/%d@%d in the replay (the live processor dead-lettered it): %s",
                        record.topic, record.partition, record.offset, reason)
            return
        log.warning("dead-lettering %s/%d@%d: %s", record.topic, record.partition, record.offset, reason)
        source = f"{record.topic}/{record.partition}/{record.offset}"
        letter = new_event("DeadLetter", {
            "source_topic": record.topic, "source_partition": record.partition, "source_offset": record.offset,
            "key": record.key, "value": record.value, "consumer": self.consumer_name, "reason": reason,
        }, producer=self.producer, correlation_id=source,
            # From the position: a redelivered bad record is dead-lettered again under the same id.
            event_id=str(uuid.uuid5(_DEAD_LETTER_IDS, f"{self.consumer_name}/{source}")))
        self._append(DEAD_LETTER_TOPIC, record.topic.encode(), self.codec.encode(letter, DEAD_LETTER_TOPIC))
