"""Entitlements as the gateways see them: the processor's view, cached per account, kept
current by the entitlement events themselves.

A background consumer (started in the app's ``cleanup_ctx``) reads ``reel.entitlements``
from a minute back and folds each event, with the entitlement processor's own pure
``handle``, into the cached rows of its account, and into a short overlay applied to
every fresh load. So a revocation takes effect as soon as this consumer reads it (well
under the 5 s bound), even before the processor has written it to the view, and a cache
miss in that gap cannot resurrect the revoked entitlement. Folding is idempotent: the
same event applied to a view that already holds it changes nothing.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from reelstream.errors import ReelStreamError
from reelstream.events.codec import EventCodec
from reelstream.events.model import Event
from reelstream.gateways.policy import Entitlement
from reelstream.processors.entitlements.logic import ENTITLEMENTS, EntitlementProcessor
from reelstream.stores.ports import EventLog, Row, StateStore, ViewSpec

log = logging.getLogger(__name__)
TOPIC = "reel.entitlements"
OVERLAY_S = 120.0  # longer than any processor lag we tolerate before the view catches up


class _Rows:
    """A StateReader over one account's rows, for the processor's pure ``handle``."""

    def __init__(self, rows: dict[str, dict[str, Any]]) -> None:
        self.rows = rows

    def get(self, spec: ViewSpec, key: Sequence[Any]) -> Row | None:
        values = self.rows.get(key[1])
        return Row(values) if values is not None else None

    def query(self, spec: ViewSpec, partition: Sequence[Any]) -> list[Row]:
        return [Row(v) for v in self.rows.values()]


_PROCESSOR = EntitlementProcessor()


def fold(rows: dict[str, dict[str, Any]], event: Event) -> None:
    for _, values in _PROCESSOR.handle(event, _Rows(rows)).writes:
        rows[values["entitlement_id"]] = values


class EntitlementCache:
    """Per-account entitlement rows; thread-safe. ``clock`` is monotonic seconds (injected)."""

    def __init__(self, state: StateStore, clock: Callable[[], float] = time.monotonic,
                 ttl_s: float = 300.0, capacity: int = 200_000) -> None:
        self._state = state
        self._clock = clock
        self._ttl = ttl_s
        self._capacity = capacity
        self._cached: OrderedDict[str, tuple[float, dict[str, dict[str, Any]]]] = OrderedDict()
        self._overlay: dict[str, list[tuple[float, Event]]] = {}
        self._lock = threading.Lock()
        self.loads = 0

    def get(self, user_id: str) -> list[Entitlement]:
        now = self._clock()
        with self._lock:
            hit = self._cached.get(user_id)
            if hit is not None and now - hit[0] < self._ttl:
                self._cached.move_to_end(user_id)
                return _entitlements(hit[1])
        rows = {r.values["entitlement_id"]: dict(r.values) for r in self._state.query(ENTITLEMENTS, (user_id,))}
        self.loads += 1
        with self._lock:
            for _, event in self._overlay.get(user_id, ()):
                fold(rows, event)
            self._cached[user_id] = (now, rows)
            while len(self._cached) > self._capacity:
                self._cached.popitem(last=False)
            return _entitlements(rows)

    def apply(self, event: Event) -> None:
        """Fold an entitlement event read from the log into the cache and the overlay."""
        user = event["user_id"]
        now = self._clock()
        with self._lock:
            recent = [(t, e) for t, e in self._overlay.get(user, []) if now - t < OVERLAY_S]
            self._overlay[user] = [*recent, (now, event)]
            hit = self._cached.get(user)
            if hit is not None:
                fold(hit[1], event)
            if len(self._overlay) > 10_000:
                self._overlay = {u: es for u, es in self._overlay.items() if now - es[-1][0] < OVERLAY_S}


def _entitlements(rows: dict[str, dict[str, Any]]) -> list[Entitlement]:
    return [Entitlement(v["entitlement_id"], v["kind"] or "SUBSCRIPTION", v["title_id"], v["starts_ms"],
                        v["ends_ms"], bool(v["revoked"])) for v in rows.values()]


async def follow_entitlements(cache: EntitlementCache, log_: EventLog, codec: EventCodec,
                              stop: asyncio.Event, from_ms: int) -> None:
    """Fold every entitlement event from ``from_ms`` on into ``cache`` until ``stop``."""
    reader = await asyncio.to_thread(log_.consumer, [TOPIC], None)
    try:
        await asyncio.to_thread(reader.seek_to_timestamp, from_ms)
        while not stop.is_set():
            records = await asyncio.to_thread(reader.poll, 500, 0.25)
            for record in records:
                try:
                    cache.apply(codec.decode(record.value))
                except (ReelStreamError, KeyError) as e:
                    log.warning("entitlement follower skipped %s/%d@%d: %s", record.topic, record.partition,
                                record.offset, e)
    finally:
        await asyncio.to_thread(reader.close)
