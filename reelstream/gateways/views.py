"""Processor views as a gateway reads them on the hot path: one account's partition,
cached in-process and kept current by the log itself.

``FoldedView`` loads an account's rows from the view on a miss and folds every event of
the view's topic (read by ``follow``, or handed in by the gateway that produced it) with
the processor's own pure ``handle``, into the cached rows and into a short overlay
applied to every fresh load. So a change takes effect as soon as the gateway reads its
event, even before the processor has written it to the view, and a miss in that gap
cannot bring back the old row. Folding is idempotent: an event applied to rows that
already hold it changes nothing.

``peek`` never does I/O (the license server calls it on the event loop); ``get`` loads
on a miss and belongs in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from reelstream.errors import ReelStreamError, SchemaRegistryUnavailable
from reelstream.events.codec import EventCodec
from reelstream.events.model import Event
from reelstream.processors.base import Processor
from reelstream.stores.ports import EventLog, Row, StateStore, ViewSpec

log = logging.getLogger(__name__)
OVERLAY_S = 120.0  # longer than any processor lag we tolerate before the view catches up
PASSED_RELOAD_S = 5.0
EMPTY_RELOAD_S = 5.0  # an account with no rows (see FoldedView.get)
OVERLAY_MAX = 64  # events kept per account

Rows = dict[str, dict[str, Any]]  # one account's rows by their last clustering column


class _Reader:
    """A StateReader over one account's cached rows, for the processor's pure ``handle``."""

    def __init__(self, rows: Rows) -> None:
        self.rows = rows

    def get(self, spec: ViewSpec, key: Sequence[Any]) -> Row | None:
        values = self.rows.get(key[-1])
        return Row(values) if values is not None else None

    def query(self, spec: ViewSpec, partition: Sequence[Any]) -> list[Row]:
        return [Row(v) for v in self.rows.values()]


class FoldedView:
    """One view's rows per account (partition key ``user_id``); thread-safe.

    ``keep(values)`` drops rows that can no longer matter (an expired license), at load
    and after each fold, so a long-lived account's cache stays small. ``supersedes(old,
    new)`` says when folding ``new`` alone gives the rows folding both would: ``old`` then
    leaves the overlay (a renewal of the same license). ``clock`` is
    monotonic seconds (injected)."""

    def __init__(self, state: StateStore, spec: ViewSpec, processor: Processor, *,
                 keep: Callable[[dict[str, Any]], bool] = lambda values: True,
                 clock: Callable[[], float] = time.monotonic, ttl_s: float = 300.0,
                 capacity: int = 200_000, empty_ttl_s: float | None = None,
                 supersedes: Callable[[Event, Event], bool] | None = None) -> None:
        self._state = state
        self._supersedes = supersedes
        self._empty_ttl = empty_ttl_s
        self._spec = spec
        self._processor = processor
        self._id = spec.clustering_key[-1]
        self._keep = keep
        self._clock = clock
        self._ttl = ttl_s
        self._capacity = capacity
        self._cached: OrderedDict[str, tuple[float, Rows]] = OrderedDict()
        self._overlay: dict[str, deque[tuple[float, Event]]] = {}
        self._passed: dict[str, float] = {}  # accounts whose events ``follow`` skipped undecoded
        self._lock = threading.Lock()
        self.loads = 0

    def peek(self, user_id: str) -> Rows | None:
        """The cached rows (do not mutate), or None when absent or stale."""
        with self._lock:
            hit = self._cached.get(user_id)
            if hit is None or self._clock() - hit[0] >= self._ttl:
                return None
            self._cached.move_to_end(user_id)
            return hit[1]

    def get(self, user_id: str) -> Rows:
        hit = self.peek(user_id)
        if hit is not None:
            return hit
        now = self._clock()
        rows = {r.values[self._id]: dict(r.values) for r in self._state.query(self._spec, (user_id,))}
        with self._lock:
            self.loads += 1
            for _, event in tuple(self._overlay.get(user_id, ())):
                self._fold(rows, event)
            rows = {k: v for k, v in rows.items() if self._keep(v)}
            passed = self._passed.pop(user_id, None)
            # Events skipped for this account may not be in the view yet: keep these rows only
            # a few seconds (the view catches up well within that), not the full ttl.
            loaded = now - self._ttl + PASSED_RELOAD_S if passed is not None and now - passed < OVERLAY_S else now
            if not rows and self._empty_ttl is not None:
                # An account with nothing yet (a viewer who subscribes and presses play at once)
                # is read again soon: should its event be late to reach the follower, the
                # view still lets it in within seconds rather than after the full ttl.
                loaded = min(loaded, now - self._ttl + self._empty_ttl)
            self._cached[user_id] = (loaded, rows)
            while len(self._cached) > self._capacity:
                self._cached.popitem(last=False)
            return rows

    def wants(self, user_id: str) -> bool:
        """Whether ``follow`` should decode this account's events (see ``follow``'s
        ``cached_only``); if not, note that it passed them by."""
        if user_id in self._cached:
            return True
        with self._lock:
            self._passed[user_id] = self._clock()
            if len(self._passed) > 100_000:
                now = self._clock()
                self._passed = {u: t for u, t in self._passed.items() if now - t < OVERLAY_S}
        return False

    def apply(self, event: Event) -> None:
        """Fold an event of the view's topic into the cache and the overlay."""
        if self._processor.primary(event) is None:
            return  # the processor keeps nothing for it (a denial)
        user = event["user_id"]
        now = self._clock()
        with self._lock:
            recent = self._overlay.setdefault(user, deque())
            if self._supersedes is not None and any(self._supersedes(e, event) for _, e in recent):
                # Folding the new event alone gives the same rows: keep the overlay (every event of
                # it held until OVERLAY_S, and walked by each full garbage collection) small.
                recent = self._overlay[user] = deque((t, e) for t, e in recent if not self._supersedes(e, event))
            recent.append((now, event))
            # Drop from the oldest end: past OVERLAY_S, or beyond OVERLAY_MAX (a busy account's
            # older events are superseded: the view has them long before the overlay fills).
            while recent and (now - recent[0][0] >= OVERLAY_S or len(recent) > OVERLAY_MAX):
                recent.popleft()
            hit = self._cached.get(user)
            if hit is not None:
                # Copy on write: a request may be reading the old dict outside the lock.
                rows = dict(hit[1])
                self._fold(rows, event)
                self._cached[user] = (hit[0], {k: v for k, v in rows.items() if self._keep(v)})
            if len(self._overlay) > 10_000:
                self._overlay = {u: es for u, es in self._overlay.items() if now - es[-1][0] < OVERLAY_S}

    def withdraw(self, event: Event) -> None:
        """Undo ``apply`` of an event that did not happen after all (a grant whose license the
        vendor never issued): it leaves the overlay, and the account's rows are read again
        at their next use, without it."""
        user = event["user_id"]
        with self._lock:
            recent = self._overlay.get(user)
            if recent is not None:
                self._overlay[user] = deque((t, e) for t, e in recent if e.header.event_id != event.header.event_id)
            self._cached.pop(user, None)

    def _fold(self, rows: Rows, event: Event) -> None:
        for spec, values in self._processor.handle(event, _Reader(rows)).writes:
            if spec is self._spec:
                rows[values[self._id]] = values


RESTART_DELAY_S = 1.0


class Folding(Protocol):
    """What ``follow`` folds into: a ``FoldedView``, or any cache with the same two calls."""

    def apply(self, event: Event) -> None: ...

    def wants(self, user_id: str) -> bool: ...


async def follow(views: Sequence[Folding], topic: str, log_: EventLog, codec: EventCodec,
                 stop: asyncio.Event, from_ms: int, skip_origin: tuple[str, bytes] | None = None,
                 cached_only: bool = False) -> None:
    """Fold every event of ``topic`` from ``from_ms`` on into each of ``views`` until ``stop``,
    except those with the header ``skip_origin`` (this instance's own, folded as it emitted
    them: decoding them again would double the license server's work).

    ``cached_only`` (one view): decode only the events of accounts the view holds, judged by
    the message key (the account id), so an instance's work does not grow with the whole
    fleet's license rate; an account loaded soon after events of it passed by is reloaded
    after ``PASSED_RELOAD_S``, when the view has them.

    A follower that stopped would leave the caches stale for their whole ttl, so a failed
    read is logged and the follower starts again from the last event it folded (folding is
    idempotent, so re-reading a few is harmless)."""
    position = [from_ms]
    while not stop.is_set():
        try:
            await _follow(views, topic, log_, codec, stop, position, skip_origin, cached_only)
        except Exception as e:  # noqa: BLE001 - any failure: the follower must outlive it
            log.warning("follower of %s failed (%s: %s); restarting from %d ms", topic, type(e).__name__, e,
                        position[0])
            try:
                await asyncio.wait_for(stop.wait(), RESTART_DELAY_S)
            except TimeoutError:
                pass


async def _follow(views: Sequence[Folding], topic: str, log_: EventLog, codec: EventCodec,
                  stop: asyncio.Event, position: list[int], skip_origin: tuple[str, bytes] | None,
                  cached_only: bool) -> None:
    reader = await asyncio.to_thread(log_.consumer, [topic], None)
    try:
        await asyncio.to_thread(reader.seek_to_timestamp, position[0])
        while not stop.is_set():
            records = await asyncio.to_thread(reader.poll, 500, 0.25)
            for record in records:
                position[0] = max(position[0], record.timestamp_ms)
                if skip_origin is not None and skip_origin in record.headers:
                    continue
                if cached_only and record.key is not None and not views[0].wants(record.key.decode()):
                    continue
                try:
                    event = codec.decode(record.value)
                    for view in views:
                        view.apply(event)
                except SchemaRegistryUnavailable:
                    raise  # not the record's: the follower restarts at its time and reads it again
                except (ReelStreamError, KeyError) as e:
                    log.warning("follower of %s skipped %d@%d: %s", topic, record.partition, record.offset, e)
    finally:
        await asyncio.to_thread(reader.close)
