"""Entitlements as the gateways see them: the entitlement processor's view, cached per
account and kept current by the entitlement events themselves (``views.FoldedView``).

A background follower (started in the app's ``cleanup_ctx``) reads ``reel.entitlements``
from two minutes back, so a revocation takes effect as soon as the follower reads it
(well under the 5 s bound), even before the processor has written it to the view.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from reelstream.events.model import Event
from reelstream.gateways.policy import Entitlement
from reelstream.gateways.views import EMPTY_RELOAD_S, OVERLAY_S, FoldedView, Rows
from reelstream.processors.entitlements.logic import ENTITLEMENTS, EntitlementProcessor
from reelstream.stores.ports import StateStore

TOPIC = "reel.entitlements"
__all__ = ["OVERLAY_S", "TOPIC", "EntitlementCache"]


class EntitlementCache:
    """Per-account entitlements; thread-safe. ``clock`` is monotonic seconds (injected)."""

    def __init__(self, state: StateStore, clock: Callable[[], float] = time.monotonic,
                 ttl_s: float = 300.0, capacity: int = 200_000) -> None:
        self.view = FoldedView(state, ENTITLEMENTS, EntitlementProcessor(), clock=clock, ttl_s=ttl_s,
                               capacity=capacity, empty_ttl_s=EMPTY_RELOAD_S)

    @property
    def loads(self) -> int:
        return self.view.loads

    def peek(self, user_id: str) -> list[Entitlement] | None:
        rows = self.view.peek(user_id)
        return None if rows is None else _entitlements(rows)

    def get(self, user_id: str) -> list[Entitlement]:
        return _entitlements(self.view.get(user_id))

    def apply(self, event: Event) -> None:
        self.view.apply(event)


def _entitlements(rows: Rows) -> list[Entitlement]:
    return [_entitlement(v) for v in rows.values()]


def _entitlement(v: dict[str, Any]) -> Entitlement:
    return Entitlement(v["entitlement_id"], v["kind"] or "SUBSCRIPTION", v["title_id"], v["starts_ms"],
                       v["ends_ms"], bool(v["revoked"]))
