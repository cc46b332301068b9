"""Rebuilding a processor's state from the start of the log, and proving it equals the live state."""

from __future__ import annotations

import math
import shlex
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from reelstream.config import local_path
from reelstream.errors import ConfigError, ReelStreamError, ReplayMismatch
from reelstream.events.codec import EventCodec
from reelstream.processors.base import Processor
from reelstream.processors.embedded import group_id
from reelstream.processors.runner import ProcessorRunner
from reelstream.stores.ports import Column, EventLog, Row, StateStore, ViewSpec

# Float sums round by fold order (live: arrival; replay: partition by partition): match relatively.
DOUBLE_REL_TOL = 1e-9

Partition = tuple[str, int]


class ReplayRefused(ReelStreamError):
    """A replay target whose rows the rebuild would destroy: the live state store itself, or
    a store already holding the processor's views (unless ``--force``). Raised before anything
    is written."""


# Where a rebuild has got to, in the store it rebuilds: per partition, the next offset to
# apply, written after each batch is durable there. An interrupted rebuild resumes from it
# (`reel replay NAME --into URL --resume`); the rows' own applied positions make the batch
# in flight when it stopped a no-op the second time.
REPLAY_PROGRESS = ViewSpec(
    name="replay_progress", partition_key=("processor",), clustering_key=("topic", "partition"),
    columns={"processor": Column.TEXT, "topic": Column.TEXT, "partition": Column.INT, "next_offset": Column.BIGINT},
    query="how far a rebuild of a processor's views has read each partition (resuming it)",
)


@dataclass
class ReplayReport:
    processor: str
    records: int
    rows: dict[str, int]
    seconds: float
    skipped: int = 0  # records the live processor dead-letters (undecodable, unapplicable): logged
    resumed_at: int = 0  # records applied before an interruption this run resumed after


def rebuild(processor: Processor, event_log: EventLog, fresh: StateStore, codec: EventCodec,
            progress: Callable[[int, int], None] | None = None, *, overwrite: bool = False,
            resume: bool = False) -> ReplayReport:
    """Apply every record the processor's topics still hold, up to their current end, into ``fresh``.

    ``fresh`` is emptied first; ReplayRefused if its views hold rows and not ``overwrite``.
    With ``resume`` it is not emptied: reading goes on from where a rebuild into it stopped
    (ReplayRefused if none did). ``progress(done, total)`` counts the records of the log,
    those read before the interruption included.
    """
    started = time.monotonic()
    fresh.ensure_views([*processor.views, REPLAY_PROGRESS])
    saved = {(r.values["topic"], r.values["partition"]): r.values["next_offset"]
             for r in fresh.query(REPLAY_PROGRESS, (processor.name,))}
    if resume and not saved:
        raise ReplayRefused(f"the target holds no interrupted rebuild of {processor.name} to resume; "
                            "leave --resume out to rebuild from the start")
    if not resume:
        if not overwrite:
            refuse_occupied(processor, fresh)
        for spec in processor.views:
            fresh.truncate(spec)
        saved = {}  # this processor's progress is overwritten below (another's in the store stays)
    ends = _offsets(event_log.end_offsets, processor.topics)
    # Retention may have removed a partition's oldest records, or all of them: reading starts
    # at its first record still held, and a partition holding none is done before any poll.
    firsts = _offsets(event_log.start_offsets, processor.topics)
    positions = {tp: max(first, saved.get(tp, first)) for tp, first in firsts.items()}
    done = sum(max(0, min(positions[tp], end) - firsts[tp]) for tp, end in ends.items())
    total = sum(max(0, end - firsts[tp]) for tp, end in ends.items())
    resumed_at = done
    _save_progress(fresh, processor, positions, saved)
    runner = ProcessorRunner(processor, event_log, fresh, codec, producer="reel replay", emit=False)
    reader = event_log.consumer(list(processor.topics), group_id=None)
    try:
        for (topic, partition), offset in positions.items():
            if offset > firsts[(topic, partition)]:
                reader.seek(topic, partition, offset)
        while any(positions[tp] < end for tp, end in ends.items()):
            records = reader.poll(max_records=1000, timeout=1.0)
            for r in records:
                tp = (r.topic, r.partition)
                positions[tp] = max(positions[tp], r.offset + 1)
            if not records:
                # Retention may have emptied a partition while it was being read: what it
                # still holds then starts at (or past) its end, and no record will come.
                for tp, start in _offsets(event_log.start_offsets, processor.topics).items():
                    positions[tp] = max(positions[tp], start)
            batch = [r for r in records if r.offset < ends[(r.topic, r.partition)]]
            runner.process(batch)  # durable when it returns: only then is the progress saved
            # Not past a partition's end: records appended since were read but not applied, and
            # a resumed rebuild (whose end is later) must apply them.
            _save_progress(fresh, processor, {tp: min(o, ends[tp]) for tp, o in positions.items()}, saved)
            done += len(batch)
            if progress:
                progress(done, total)
    finally:
        reader.close()
    rows = {spec.name: sum(1 for _ in fresh.scan(spec)) for spec in processor.views}
    return ReplayReport(processor.name, done - resumed_at, rows, time.monotonic() - started,
                        skipped=runner.stats.dead_lettered, resumed_at=resumed_at)


def _save_progress(store: StateStore, processor: Processor, positions: Mapping[Partition, int],
                   saved: dict[Partition, int]) -> None:
    """Record the partitions whose position moved since the last save."""
    moved = [(tp, o) for tp, o in positions.items() if saved.get(tp) != o]
    if not moved:
        return
    store.put_many([(REPLAY_PROGRESS, Row({"processor": processor.name, "topic": t, "partition": p,
                                           "next_offset": o})) for (t, p), o in moved])
    saved.update(moved)


def _offsets(of_topic: Callable[[str], dict[int, int]], topics: Iterable[str]) -> dict[Partition, int]:
    return {(t, p): o for t in topics for p, o in of_topic(t).items()}


def refuse_occupied(processor: Processor, target: StateStore) -> None:
    """ReplayRefused if any of the processor's views in ``target`` holds a row (a rebuild empties them)."""
    target.ensure_views(processor.views)
    occupied = [spec.name for spec in processor.views if next(iter(target.scan(spec)), None) is not None]
    if occupied:
        raise ReplayRefused(
            f"the target already holds rows of {', '.join(occupied)}, which the rebuild would delete; "
            "name an empty store with --into, leave --into out for a fresh one, add --resume to go on "
            "with a rebuild into it that was interrupted, or add --force to overwrite them")


def refuse_live_target(into_url: str, live_url: str) -> None:
    """ReplayRefused if ``into_url`` names the live state store, however it is spelt."""
    if same_store(into_url, live_url):
        raise ReplayRefused(
            f"--into {into_url} is the live state store ({live_url}): a rebuild empties its views first, "
            "deleting the live rows; leave --into out to rebuild into a fresh store beside it")


def same_store(a: str, b: str) -> bool:
    """Whether two state URLs name one store: the same SQLite file (relative, ``..`` or linked
    paths resolved), or the same Cassandra keyspace through a contact point both name (host
    names resolved to addresses). Two contact points of one cluster that neither URL shares
    are not seen as one: ``refuse_occupied`` still stands between such a target and its rows."""
    scheme_a, scheme_b = urlparse(a).scheme, urlparse(b).scheme
    if scheme_a != scheme_b:
        return False
    if scheme_a == "sqlite":
        return local_path(a).resolve() == local_path(b).resolve()
    hosts_a, port_a, keyspace_a = cassandra_parts(a)
    hosts_b, port_b, keyspace_b = cassandra_parts(b)
    if keyspace_a != keyspace_b:
        return False
    return not ({(ip, port_a) for h in hosts_a for ip in _addresses(h, port_a)}
                .isdisjoint({(ip, port_b) for h in hosts_b for ip in _addresses(h, port_b)}))


def cassandra_parts(url: str) -> tuple[list[str], int, str]:
    """Hosts, port and keyspace of ``cassandra://host[,host]:port/keyspace`` (as ``open_state`` reads it)."""
    parsed = urlparse(url)
    hosts, _, port = parsed.netloc.rpartition(":")
    if not hosts or not port.isdigit():
        raise ConfigError(f"state URL {url!r}: use cassandra://host[,host]:port/keyspace")
    return hosts.lower().split(","), int(port), (parsed.path.strip("/") or "reelstream").lower()


def _addresses(host: str, port: int) -> set[str]:
    try:
        return {str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)}
    except OSError:
        return {host}  # unresolvable here: compared by name


def removal_hint(url: str) -> str:
    """The shell command that deletes the store at ``url``."""
    if urlparse(url).scheme == "sqlite":
        path = str(local_path(url))
        return "rm -f " + " ".join(shlex.quote(p) for p in (path, f"{path}-wal", f"{path}-shm"))
    hosts, port, keyspace = cassandra_parts(url)
    return f"cqlsh {hosts[0]} {port} -e 'DROP KEYSPACE {keyspace}'"


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
