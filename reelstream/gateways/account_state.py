"""The rest of what a license decision reads about an account, cached like entitlements.

- ``LicenseCache``: the licenses view (streaming grants and downloads), folded from
  ``reel.licenses``: the events this gateway emits are folded as it emits them, other
  instances' arrive through the follower. Expired and returned licenses are dropped,
  since the device and download limits count only active ones.
- ``LiveSessionCache``: an account's playback sessions (the concurrent-stream limit) from
  the sessions view, refreshed in the background once ``REEL_LIVE_SESSIONS_REFRESH_S`` old. Not folded
  from the log: following every heartbeat of ``reel.playback`` in every gateway would
  cost more than the reads it saves. The count is already a window (a session is live for
  70 s after its last beat, and players beat every 30 s), so this widens it by that much;
  a start or stop posted to this process's playback gateway drops the account's entry.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from reelstream.events.model import Event
from reelstream.gateways.policy import ActiveLicense, licenses_of
from reelstream.gateways.views import FoldedView
from reelstream.processors.licenses.logic import LICENSES, LicenseProcessor
from reelstream.processors.sessions.logic import LIVE_SESSIONS
from reelstream.stores.ports import StateStore

TOPIC = "reel.licenses"
LIVE_CACHE_S = 5.0


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
    """An account's session rows; thread-safe; ``clock`` is monotonic seconds (injected).

    Stale-while-revalidate: rows younger than ``fresh_s`` are used as they are; older ones
    (up to ``max_age_s``) are still used, and ``needs_refresh`` tells the caller to reload
    them in the background, so a busy account never waits on the read and its count is
    never more than ``fresh_s`` plus one read behind the view."""

    def __init__(self, state: StateStore, clock: Callable[[], float] = time.monotonic,
                 fresh_s: float = LIVE_CACHE_S, max_age_s: float = 60.0, capacity: int = 200_000) -> None:
        self._state = state
        self._clock = clock
        self._fresh = fresh_s
        self._max_age = max_age_s
        self._capacity = capacity
        self._cached: dict[str, tuple[float, list[dict[str, Any]]]] = {}
        self._refreshing: set[str] = set()
        self._lock = threading.Lock()
        self.loads = 0

    def peek(self, user_id: str) -> list[dict[str, Any]] | None:
        hit = self._cached.get(user_id)
        if hit is None or self._clock() - hit[0] >= self._max_age:
            return None
        return hit[1]

    def needs_refresh(self, user_id: str) -> bool:
        """True once per stale entry (the caller then runs ``load`` off the loop)."""
        hit = self._cached.get(user_id)
        with self._lock:
            if hit is None or self._clock() - hit[0] < self._fresh or user_id in self._refreshing:
                return False
            self._refreshing.add(user_id)
            return True

    def get(self, user_id: str) -> list[dict[str, Any]]:
        hit = self._cached.get(user_id)
        if hit is not None and self._clock() - hit[0] < self._fresh:
            return hit[1]
        return self.load(user_id)

    def load(self, user_id: str) -> list[dict[str, Any]]:
        now = self._clock()
        try:
            rows = [r.values for r in self._state.query(LIVE_SESSIONS, (user_id,))]
        finally:
            with self._lock:
                self._refreshing.discard(user_id)
        with self._lock:
            self.loads += 1
            if len(self._cached) >= self._capacity:  # drop what has expired anyway
                self._cached = {u: h for u, h in self._cached.items() if now - h[0] < self._max_age}
            self._cached[user_id] = (now, rows)
        return rows

    def invalidate(self, user_id: str) -> None:
        with self._lock:
            self._cached.pop(user_id, None)
