"""The rest of what a license decision reads about an account, cached like entitlements.

- ``LicenseCache``: the licenses view (streaming grants and downloads), folded from
  ``reel.licenses``: the events this gateway emits are folded as it emits them, other
  instances' arrive through the follower. Expired licenses and returned streaming ones
  are dropped, since the device and download limits count only active ones; returned
  downloads stay until they would have expired, so that their tickets are refused.
- ``LiveSessionCache``: an account's live playback sessions (the concurrent-stream limit),
  read once from the sessions view (the reads of many accounts grouped into one
  ``query_many``), then kept current by folding ``reel.sessions``: the sessions processor
  announces each session becoming live and ending there, one event each per session, so
  a gateway follows the log at the rate sessions start, not at the heartbeat rate. What
  the fold cannot see is a session lapsing (its player vanished: no event, it stops
  counting 70 s after its last beat), so a session the cache holds is *certainly* live
  while its last known event is recent and only *possibly* live after; a license needs a
  fresh read only when those two counts fall on either side of the limit
  (``count_is_settled``), which in practice means an account at its limit. A streaming
  license this gateway grants counts as a live session at once (``granted``), for
  ``LIVE_TIMEOUT_MS`` or until the fold has the session: the sessions processor announces
  it only after the player's first heartbeat has been through the log.
- ``AccountLocks``: one asyncio lock per account, held from a decision's reads to folding
  its event, so one account's parallel requests on this instance decide one after another.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from reelstream.events.model import Event
from reelstream.gateways.policy import ActiveLicense, licenses_of
from reelstream.gateways.views import FoldedView
from reelstream.processors.licenses.logic import LICENSES, LicenseProcessor
from reelstream.processors.sessions.logic import LIVE_SESSIONS, LIVE_TIMEOUT_MS, live_sessions
from reelstream.stores.ports import Row, StateStore

log = logging.getLogger(__name__)

TOPIC = "reel.licenses"
SESSIONS_TOPIC = "reel.sessions"
LIVE_CACHE_S = 5.0
SESSION_OVERLAY_S = 120.0  # folded events kept per account, re-applied to each read (the view may lag them)
SESSION_OVERLAY_MAX = 16
REFRESH_LINGER_S = 0.02  # how long a background refresh may wait for other reads to share its batch


class AccountLocks:
    """One ``asyncio.Lock`` per account, dropped once nobody holds or waits for it.

    A license or download decision reads the caches, may wait (reads, the vendor's
    license service, the log's ack), then folds its own event: without the lock, requests
    of one account arriving together all decide on the state before any of them, and all
    pass the stream, device and download limits. Within one process only: several
    gateway instances stay eventually consistent with each other (through the log), so an
    account's requests spread over N instances can exceed a limit by up to N - 1 for the
    moment it takes their events to cross."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}  # account -> (lock, holders and waiters)

    @contextlib.asynccontextmanager
    async def hold(self, user_id: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(user_id, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[user_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[user_id]
            if users == 1:
                del self._locks[user_id]  # an account's lock lives only while in use: no growth
            else:
                self._locks[user_id] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)


class LicenseCache:
    def __init__(self, state: StateStore, now_ms: Callable[[], int], clock: Callable[[], float] = time.monotonic,
                 ttl_s: float = 300.0, capacity: int = 200_000) -> None:
        self._now_ms = now_ms
        self.locks = AccountLocks()  # decide + fold, per account (licenses and downloads alike)
        self.view = FoldedView(state, LICENSES, LicenseProcessor(), keep=self._active, clock=clock, ttl_s=ttl_s,
                               capacity=capacity, supersedes=renews)

    def _active(self, values: dict[str, Any]) -> bool:
        expires = values.get("expires_ms")
        if expires is not None and expires <= self._now_ms():
            return False
        # A returned download is kept until it would have expired (it counts for no limit:
        # ``ActiveLicense.active``) so that its ticket, valid as long, is refused as returned
        # at once, from the cache, rather than after the view has caught up with the return.
        return not values.get("returned") or (values.get("kind") == "download" and expires is not None)

    def peek(self, user_id: str) -> list[ActiveLicense] | None:
        rows = self.view.peek(user_id)
        return None if rows is None else licenses_of(rows.values())

    def get(self, user_id: str) -> list[ActiveLicense]:
        return licenses_of(self.view.get(user_id).values())

    def rows(self, user_id: str) -> list[dict[str, Any]]:
        """The account's rows (do not mutate) with this gateway's own events folded in, so
        the downloads gateway reads its writes; loads on a miss: in a worker thread."""
        return list(self.view.get(user_id).values())

    def apply(self, event: Event) -> None:
        self.view.apply(event)

    def withdraw(self, event: Event) -> None:
        """Undo ``apply`` of a grant whose license was never issued (``FoldedView.withdraw``)."""
        self.view.withdraw(event)


def renews(old: Event, new: Event) -> bool:
    """``new`` grants the same license as ``old`` again (a renewal, or another key request of
    the same playback session): the licenses processor writes the row from the grant alone,
    so folding ``new`` by itself gives the same row as folding both."""
    return (old.type == new.type == "LicenseGranted" and old["license_id"] == new["license_id"]
            and old.data.get("session_type") == new.data.get("session_type"))


class LiveSessionCache:
    """An account's live session rows, read from the view in batches and kept current by
    folding ``reel.sessions`` (``apply``, from a ``views.follow`` of that topic); ``clock``
    is monotonic seconds, ``now_ms`` wall milliseconds (both injected). Used from the event
    loop only (not thread-safe).

    A read keeps the sessions live at that moment (ended and lapsed ones can only come
    back through a ``PlaybackSessionOpened``, which the fold adds). Folded events are also
    kept for ``SESSION_OVERLAY_S`` and applied again to every read of their account, so a
    read answered by a view that has not yet written what the log already said cannot
    bring back the old rows. Rows are used for ``max_age_s``; ``get`` reads rows older than
    ``fresh_s``, and ``refresh_if_stale`` queues that read in the background.

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
                 max_batch: int = 256, linger_s: float = REFRESH_LINGER_S,
                 now_ms: Callable[[], int] = lambda: int(time.time() * 1000)) -> None:
        self._state = state
        self._clock = clock
        self._now_ms = now_ms
        self._recent: dict[str, list[tuple[float, Event]]] = {}  # folded events per account (overlay)
        # Streaming licenses granted here, per account: session id -> (device id, wall ms granted)
        self._granted: dict[str, dict[str, tuple[str, int]]] = {}
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

    def settled(self, user_id: str, rows: list[dict[str, Any]], now_ms: int, except_device: str,
                limit: int) -> bool:
        """Whether ``rows`` decide the concurrent-stream check as a fresh read would: they
        are fresh (younger than ``fresh_s``), or the count is settled either way."""
        hit = self._cached.get(user_id)
        fresh = hit is not None and self._clock() - hit[0] < self._fresh
        return fresh or count_is_settled(rows, now_ms, except_device, limit)

    def wants(self, user_id: str) -> bool:
        """Whether the follower should decode this account's events: it is held or being read."""
        return user_id in self._cached or user_id in self._pending or user_id in self._reading

    def apply(self, event: Event) -> None:
        """Fold a ``reel.sessions`` event into the account's rows (if held) and its overlay."""
        user = event["user_id"]
        now = self._clock()
        recent = [(t, e) for t, e in self._recent.get(user, ()) if now - t < SESSION_OVERLAY_S]
        self._recent[user] = [*recent, (now, event)][-SESSION_OVERLAY_MAX:]
        if len(self._recent) > 10_000:
            self._recent = {u: es for u, es in self._recent.items() if now - es[-1][0] < SESSION_OVERLAY_S}
        hit = self._cached.get(user)
        if hit is not None:
            self._cached[user] = (hit[0], fold_session(hit[1], event))  # copy on write

    def granted(self, user_id: str, session_id: str, device_id: str) -> None:
        """Count a playback session this gateway just licensed as live, at once.

        The sessions processor announces a session only after its player's first heartbeat
        has gone through the log and the processor, a second or more after the license:
        devices licensed one after another within that gap each saw the others' sessions
        missing, and a plan's 3 streams let 5 play. So a grant is a session live from the
        moment of the grant, until its last known event (the fold's, once it has it) is
        ``LIVE_TIMEOUT_MS`` old, as if the player had beaten then: a player that never
        starts stops counting after that. Kept apart from the rows and re-applied to every
        read, as a view that has not caught up would otherwise drop it. A renewal of the
        same session updates its one row (one session, one stream); a device's streams
        count once whatever its sessions (``live_sessions``)."""
        now = self._now_ms()
        grants = {sid: g for sid, g in self._granted.get(user_id, {}).items() if now - g[1] <= LIVE_TIMEOUT_MS}
        grants[session_id] = (device_id, now)
        self._granted[user_id] = grants
        if len(self._granted) > 10_000:
            self._granted = {u: gs for u, gs in self._granted.items()
                             if any(now - g[1] <= LIVE_TIMEOUT_MS for g in gs.values())}
        hit = self._cached.get(user_id)
        if hit is not None:
            self._cached[user_id] = (hit[0], with_grants(hit[1], {session_id: (device_id, now)}))  # copy on write

    def withdraw(self, user_id: str, session_id: str) -> None:
        """Undo ``granted``: the license was never issued (its vendor failed). The account's
        rows are read again at their next use, so a session the view has live stays live."""
        self._granted.get(user_id, {}).pop(session_id, None)
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
        wall = self._now_ms()
        for user, rows in zip(users, answers, strict=True):
            values = [r.values for r in rows
                      if not r.values["ended"] and wall - r.values["last_event_ms"] <= LIVE_TIMEOUT_MS]
            for _, event in self._recent.get(user, ()):
                values = fold_session(values, event)
            values = with_grants(values, self._granted.get(user, {}))
            # an opening the read shows lapsed since (its player vanished) is dropped too
            values = [r for r in values if r["ended"] or wall - r["last_event_ms"] <= LIVE_TIMEOUT_MS]
            self._cached[user] = (now, values)
            future = waiters[user]
            if not future.done():
                future.set_result(values)


def fold_session(rows: list[dict[str, Any]], event: Event) -> list[dict[str, Any]]:
    """``rows`` (not changed) with a ``reel.sessions`` event folded in. An end wins over any
    opening (a stopped session never plays again), so events folded twice or out of order
    leave the same rows."""
    sid = event["session_id"]
    row = next((r for r in rows if r["session_id"] == sid), None)
    others = [r for r in rows if r["session_id"] != sid]
    if event.type == "PlaybackSessionClosed":
        base = row or {"session_id": sid, "device_id": event["device_id"], "last_event_ms": 0}
        return [*others, {**base, "ended": True}]
    opened = int(event["opened_at"].timestamp() * 1000)
    if row is None:
        return [*others, {"session_id": sid, "device_id": event["device_id"], "last_event_ms": opened,
                          "ended": False}]
    return [*others, {**row, "last_event_ms": max(row["last_event_ms"], opened)}]


def with_grants(rows: list[dict[str, Any]], grants: dict[str, tuple[str, int]]) -> list[dict[str, Any]]:
    """``rows`` (not changed) with the sessions of streaming licenses granted (session id ->
    (device id, wall ms)) live as of their grant: a session not in ``rows`` is added, a
    live one's last event is the later of the two; an ended one stays ended."""
    if not grants:
        return rows
    by_id = {r["session_id"]: r for r in rows}
    for sid, (device_id, granted_ms) in grants.items():
        row = by_id.get(sid)
        if row is None:
            by_id[sid] = {"session_id": sid, "device_id": device_id, "last_event_ms": granted_ms, "ended": False}
        elif not row["ended"] and row["last_event_ms"] < granted_ms:
            by_id[sid] = {**row, "last_event_ms": granted_ms}
    return list(by_id.values())


def count_is_settled(rows: list[dict[str, Any]], now_ms: int, except_device: str, limit: int) -> bool:
    """Whether the concurrent-stream check has the same outcome whatever the sessions the
    fold cannot see into did: those not ended whose last known event is older than the
    live timeout may have lapsed or may still be beating. Settled when even counting them
    all the other devices are under ``limit``, or when the certainly live ones reach it."""
    certain = len(live_sessions(rows, now_ms, except_device=except_device))
    possible = len({r["device_id"] for r in rows if not r["ended"] and r["device_id"] != except_device})
    return possible < limit or certain >= limit


def _seen(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved: asyncio would otherwise log it again
