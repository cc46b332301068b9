"""Rebuilding a processor's state from the start of the log, and proving it equals the live state."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from reelstream.errors import ReplayMismatch
from reelstream.events.codec import EventCodec
from reelstream.processors.base import Processor
from reelstream.processors.embedded import group_id
from reelstream.processors.runner import ProcessorRunner
from reelstream.stores.ports import Column, EventLog, StateStore, ViewSpec

# Float sums round by fold order (live: arrival; replay: partition by partition): match relatively.
DOUBLE_REL_TOL = 1e-9


@dataclass
class ReplayReport:
    processor: str
    records: int
    rows: dict[str, int]
    seconds: float


def rebuild(processor: Processor, event_log: EventLog, fresh: StateStore, codec: EventCodec,
            progress: Callable[[int, int], None] | None = None) -> ReplayReport:
    """Apply every record of the processor's topics, from offset 0 to the current end, into ``fresh``."""
    started = time.monotonic()
    fresh.ensure_views(processor.views)
    for spec in processor.views:
        fresh.truncate(spec)
    ends = {(t, p): o for t in processor.topics for p, o in event_log.end_offsets(t).items()}
    total = sum(ends.values())
    runner = ProcessorRunner(processor, event_log, fresh, codec, producer="reel replay", emit=False)
    reader = event_log.consumer(list(processor.topics), group_id=None)
    done = 0
    positions: dict[tuple[str, int], int] = {}
    try:
        while any(positions.get(tp, 0) < end for tp, end in ends.items()):
            batch = [r for r in reader.poll(max_records=1000, timeout=1.0)
                     if r.offset < ends[(r.topic, r.partition)]]
            for r in batch:
                positions[(r.topic, r.partition)] = r.offset + 1
            runner.process(batch)
            done += len(batch)
            if progress:
                progress(done, total)
    finally:
        reader.close()
    rows = {spec.name: sum(1 for _ in fresh.scan(spec)) for spec in processor.views}
    return ReplayReport(processor.name, done, rows, time.monotonic() - started)


def wait_until_caught_up(processor: Processor, event_log: EventLog, timeout: float = 60.0,
                         group_prefix: str = "reel") -> None:
    """Wait for the live processor to commit up to the end of its topics, so both states cover the same log.

    The live processor is either the embedded host (group ``PREFIX.processor.NAME``) or the
    Faust worker (group ``PREFIX.processors``); whichever has committed is the one checked.
    """
    from reelstream.processors.app import faust_app_id

    deadline = time.monotonic() + timeout
    if not any(o for t in processor.topics for o in event_log.end_offsets(t).values()):
        return  # nothing to have processed
    while True:
        lags = []
        for group in (group_id(processor, group_prefix), faust_app_id(group_prefix)):
            committed = {t: event_log.committed(group, t) for t in processor.topics}
            if not any(committed.values()):
                continue
            lags.append(sum(end - committed[t].get(p, 0)
                            for t in processor.topics for p, end in event_log.end_offsets(t).items()))
        if lags and min(lags) <= 0:
            return
        if time.monotonic() > deadline:
            behind = f"{min(lags)} records behind the log" if lags else "not running (no committed offsets)"
            raise ReplayMismatch(f"the live {processor.name} processor is {behind}; start it (`reel up` or "
                                 "`reel processors`) and let it catch up, then verify again")
        time.sleep(0.5)


def diff_states(processor: Processor, live: StateStore, rebuilt: StateStore) -> list[str]:
    """Human-readable differences between two states of the same processor (empty when equal)."""
    problems: list[str] = []
    for spec in processor.views:
        a = {spec.key_of(r.values): (r.values, r.applied) for r in live.scan(spec)}
        b = {spec.key_of(r.values): (r.values, r.applied) for r in rebuilt.scan(spec)}
        for key in sorted(set(a) | set(b), key=repr):
            if key not in b:
                problems.append(f"{spec.name}{key}: in live state only")
            elif key not in a:
                problems.append(f"{spec.name}{key}: in rebuilt state only")
            elif a[key][1] != b[key][1] or not same_values(spec, a[key][0], b[key][0]):
                problems.append(f"{spec.name}{key}: live {a[key]} != rebuilt {b[key]}")
    return problems


def same_values(spec: ViewSpec, live: Mapping[str, Any], rebuilt: Mapping[str, Any]) -> bool:
    """Whether two rows of ``spec`` agree: DOUBLEs within DOUBLE_REL_TOL, the rest exactly."""
    if live.keys() != rebuilt.keys():
        return False
    for name, a in live.items():
        b = rebuilt[name]
        if spec.columns.get(name) is Column.DOUBLE and _number(a) and _number(b):
            if not math.isclose(a, b, rel_tol=DOUBLE_REL_TOL):
                return False
        elif a != b:
            return False
    return True


def fresh_suffix() -> str:
    return f"replay_{uuid.uuid4().hex[:8]}"


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
