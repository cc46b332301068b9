"""The rest of what a license decision reads about an account, cached like entitlements.

- ``LicenseCache``: the licenses view (streaming grants and downloads), folded from
  ``reel.licenses``: the events this gateway emits are folded as it emits them, other
  instances' arrive through the follower. Expired and returned licenses are dropped,
  since the device and download limits count only active ones.
- ``LiveSessionCache``: an account's playback sessions (the concurrent-stream limit) from
  the sessions view, refreshed in the background once ``REEL_LIVE_SESSIONS_REFRESH_S`` old,
  the reads of many accounts grouped into one ``query_many``. Not folded
  from the log: following every heartbeat of ``reel.playback`` in every gateway would
  cost more than the reads it saves. The count is already a window (a session is live for
  70 s after its last beat, and players beat every 30 s), so this widens it by that much;
  a start or stop posted to this process's playback gateway drops the account's entry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from reelstream.events.model import Event
from reelstream.gateways.policy import ActiveLicense, licenses_of
from reelstream.gateways.views import FoldedView
from reelstream.processors.licenses.logic import LICENSES, LicenseProcessor
from reelstream.processors.sessions.logic import LIVE_SESSIONS
from reelstream.stores.ports import Row, StateStore

log = logging.getLogger(__name__)

TOPIC = "reel.licenses"
LIVE_CACHE_S = 5.0
REFRESH_LINGER_S = 0.02  # how long a background refresh may wait for other reads to share its batch


class LicenseCache:
    def __init__(self, state: StateStore, now_ms: Callable[[], int], clock: Callable[[], float] = time.monotonic,
                 ttl_s: float = 300.0, capacity: int = 200_000) -> None:
        self._now_ms = now_ms
        self.view = FoldedView(state, LICENSES, LicenseProcessor(), keep=self._active, clock=clock, ttl_s=ttl_s,
                               capacity=capacity)

    def _active(self, values: dict[str, Any]) -> bool:
        expires = values.get("expires_ms")
        return not values.get("returned") and (expires is None or expires > self._now_ms())

    def peek(self, user_id: str) -> list[ActiveLicense] | None:
        rows = self.view.peek(user_id)
        return None if rows is None else licenses_of(rows.values())

    def get(self, user_id: str) -> list[ActiveLicense]:
        return licenses_of(self.view.get(user_id).values())

    def apply(self, event: Event) -> None:
        self.view.apply(event)


class LiveSessionCache:
    """An account's session rows, read from the view in batches; ``clock`` is monotonic
    seconds (injected). Used from the event loop only (not thread-safe).

    Stale-while-revalidate: rows younger than ``fresh_s`` are used as they are; older ones
    (up to ``max_age_s``) are still used, and ``refresh_if_stale`` re-reads them in the background,
    so a busy account never waits on the read and its count is never more than ``fresh_s``
    plus one read behind the view. An account with nothing usable waits for ``get``.

    Reads are grouped like the publisher's flushes: every account asked for while no read
    is in flight goes into the next ``StateStore.query_many``, one worker-thread hop and
    (on Cassandra) one round trip for the lot. A background refresh waits up to
    ``linger_s`` for company (nobody waits on it); a license that must wait (``get``)
    starts the read at once, taking the queued refreshes along. In production an account
    asks for a license about once per playback session, so nearly every license needs a
    read: alone, one costs 0.58 ms of CPU through the Cassandra driver, in fours 0.22 ms,
    in sixteens 0.13 ms (measured in one thread on this machine)."""

    def __init__(self, state: StateStore, clock: Callable[[], float] = time.monotonic,
                 fresh_s: float = LIVE_CACHE_S, max_age_s: float = 60.0, capacity: int = 200_000,
                 max_batch: int = 256, linger_s: float = REFRESH_LINGER_S) -> None:
        self._state = state
        self._clock = clock
        self._fresh = fresh_s
        self._max_age = max_age_s
        self._capacity = capacity
        self._max_batch = max_batch
        self._linger = linger_s
        self._urgent = False  # someone waits for the next read
        self._wake: asyncio.Future[None] | None = None  # the lingering reader's
        self._cached: dict[str, tuple[float, list[dict[str, Any]]]] = {}
        self._pending: dict[str, asyncio.Future[list[dict[str, Any]]]] = {}  # the next batch
        self._reading: dict[str, asyncio.Future[list[dict[str, Any]]]] = {}  # the batch in flight
        self._reader: asyncio.Task[None] | None = None
        self.loads = 0  # accounts read
        self.batches = 0  # query_many calls

    def peek(self, user_id: str) -> list[dict[str, Any]] | None:
        """The cached rows, stale or not (None when absent or past ``max_age_s``); no I/O."""
        hit = self._cached.get(user_id)
        if hit is None or self._clock() - hit[0] >= self._max_age:
            return None
        return hit[1]

    def refresh_if_stale(self, user_id: str) -> None:
        """Queue a background re-read of rows older than ``fresh_s`` (once: a read already
        queued or in flight serves)."""
        hit = self._cached.get(user_id)
        if hit is not None and self._clock() - hit[0] >= self._fresh:
            self._read(user_id, urgent=False)

    async def get(self, user_id: str) -> list[dict[str, Any]]:
        """Fresh rows, read (batched with other accounts) if the cached ones are stale."""
        hit = self._cached.get(user_id)
        if hit is not None and self._clock() - hit[0] < self._fresh:
            return hit[1]
        return await asyncio.shield(self._read(user_id, urgent=True))

    def invalidate(self, user_id: str) -> None:
        self._cached.pop(user_id, None)

    async def drained(self) -> None:
        """Return once every queued read is done (shutdown, tests)."""
        while self._reader is not None:
            await asyncio.shield(self._reader)

    def _read(self, user_id: str, urgent: bool) -> asyncio.Future[list[dict[str, Any]]]:
        future = self._reading.get(user_id)
        if future is None:
            future = self._pending.get(user_id)
            if future is None:
                future = self._pending[user_id] = asyncio.get_running_loop().create_future()
            if urgent:
                self._urgent = True
                if self._wake is not None and not self._wake.done():
                    self._wake.set_result(None)
            if self._reader is None:
                self._reader = asyncio.create_task(self._read_batches(), name="live-session-reads")
        return future

    async def _read_batches(self) -> None:
        """Until nothing is pending: take up to ``max_batch`` accounts and read them at once."""
        try:
            while self._pending:
                if self._urgent:
                    await asyncio.sleep(0)  # let the requests of this loop iteration join the batch
                else:
                    self._wake = asyncio.get_running_loop().create_future()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake, self._linger)
                    self._wake = None
                self._urgent = False
                users = list(self._pending)[:self._max_batch]
                self._reading = {u: self._pending.pop(u) for u in users}
                started = self._clock()  # the rows are as of the read, not of its answer
                try:
                    answers = await asyncio.to_thread(self._state.query_many, LIVE_SESSIONS, [(u,) for u in users])
                except Exception as e:  # noqa: BLE001 - every waiter gets it; the cached rows stay
                    log.warning("reading the live sessions of %d accounts failed: %s", len(users), e)
                    for future in self._reading.values():
                        if not future.done():
                            future.set_exception(e)
                            future.add_done_callback(_seen)  # a background refresh has no one awaiting it
                else:
                    self._store(started, users, answers, self._reading)
                finally:
                    self._reading = {}
        finally:
            self._reader = None

    def _store(self, now: float, users: list[str], answers: list[list[Row]],
               waiters: dict[str, asyncio.Future[list[dict[str, Any]]]]) -> None:
        self.batches += 1
        self.loads += len(users)
        if len(self._cached) + len(users) > self._capacity:  # drop what has expired anyway
            self._cached = {u: h for u, h in self._cached.items() if now - h[0] < self._max_age}
        for user, rows in zip(users, answers, strict=True):
            values = [r.values for r in rows]
            self._cached[user] = (now, values)
            future = waiters[user]
            if not future.done():
                future.set_result(values)


def _seen(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved: asyncio would otherwise log it again
