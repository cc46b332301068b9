"""Reading topics for a command: decoded events, and a topic read to its end.

A topic may hold a record that is no ReelStream event (bytes produced by another tool, a
schema from a newer release): the processors dead-letter it, and a command that reads
the topic skips it with a warning naming where it is, rather than fail for every title.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from reelstream.errors import EventLogError, UndecodableEvent
from reelstream.events.codec import EventCodec
from reelstream.events.model import Event
from reelstream.stores.ports import EventLog, Record

STALL_S = 30.0  # no record for this long while short of the end: the log is not answering


def decoded(codec: EventCodec, records: Iterable[Record], command: str) -> Iterator[Event]:
    """The events of ``records``; each one that does not decode is skipped, told on stderr."""
    for record in records:
        try:
            event = codec.decode(record.value)
        except UndecodableEvent as e:
            print(f"reel {command}: skipping undecodable record {record.topic}/{record.partition}@{record.offset}: "
                  f"{e}", file=sys.stderr, flush=True)
            continue
        yield event


@dataclass
class Horizon:
    """The end offsets of some topics at one moment, and how far a reader has got to them.

    A poll may return before the end even when there is more (Kafka returns what one fetch
    brought), so "read it all" is "read until every partition reaches its end offset"."""

    ends: dict[tuple[str, int], int]
    at: dict[tuple[str, int], int] = field(default_factory=dict)

    @classmethod
    def now(cls, log: EventLog, topics: Sequence[str]) -> Horizon:
        # From the first record still held: a partition that retention emptied is read already.
        return cls({(t, p): end for t in topics for p, end in log.end_offsets(t).items()},
                   {(t, p): start for t in topics for p, start in log.start_offsets(t).items()})

    def advance(self, records: Iterable[Record]) -> None:
        for r in records:
            if (r.topic, r.partition) in self.ends:
                self.at[(r.topic, r.partition)] = max(self.at.get((r.topic, r.partition), 0), r.offset + 1)

    def skip_emptied(self, log: EventLog) -> None:
        """Retention may empty a partition while it is read: what it holds then starts at (or
        past) its end, and no record will come."""
        for t in {t for t, _ in self.ends}:
            for p, start in log.start_offsets(t).items():
                self.at[(t, p)] = max(self.at.get((t, p), 0), start)

    def below(self, record: Record) -> bool:
        return record.offset < self.ends.get((record.topic, record.partition), 0)

    @property
    def reached(self) -> bool:
        return all(self.at.get(tp, 0) >= end for tp, end in self.ends.items())

    def behind(self) -> str:
        return ", ".join(f"{t}/{p} at {self.at.get((t, p), 0)} of {end}"
                         for (t, p), end in sorted(self.ends.items()) if self.at.get((t, p), 0) < end)


def read_to_end(log: EventLog, topics: Sequence[str], stall_s: float = STALL_S) -> list[Record]:
    """Every record of ``topics`` up to their end offsets at the call, in order per partition."""
    horizon = Horizon.now(log, topics)
    reader = log.consumer(topics, group_id=None)
    out: list[Record] = []
    last = time.monotonic()
    try:
        while not horizon.reached:
            batch = reader.poll(max_records=10_000, timeout=1.0)
            if batch:
                last = time.monotonic()
            else:
                horizon.skip_emptied(log)
                if not horizon.reached and time.monotonic() - last > stall_s:
                    raise EventLogError(f"no record for {stall_s:.0f}s while reading to the end "
                                        f"({horizon.behind()}); is the log reachable?")
            horizon.advance(batch)
            out += [r for r in batch if horizon.below(r)]
    finally:
        reader.close()
    return out
