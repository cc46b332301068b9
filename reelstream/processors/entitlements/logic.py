"""Entitlements per account: subscriptions, purchases and rentals."""

from __future__ import annotations

from typing import Any

from reelstream.events.model import Event
from reelstream.processors.base import Outcome, Processor, StateReader, millis
from reelstream.stores.ports import Column, ViewSpec

# Partition key: user_id. The license server reads all of one account's entitlements at once.
ENTITLEMENTS = ViewSpec(
    name="entitlements", partition_key=("user_id",), clustering_key=("entitlement_id",),
    columns={"user_id": Column.TEXT, "entitlement_id": Column.TEXT, "kind": Column.TEXT, "title_id": Column.TEXT, "plan": Column.TEXT, "starts_ms": Column.BIGINT,
             "ends_ms": Column.BIGINT, "revoked": Column.BOOLEAN, "revoked_reason": Column.TEXT},
    query="every entitlement of an account, by user id",
)


class EntitlementProcessor(Processor):
    name = "entitlements"
    topics = ("reel.entitlements",)
    views = (ENTITLEMENTS,)

    def primary(self, event: Event) -> tuple[ViewSpec, tuple[Any, ...]] | None:
        return ENTITLEMENTS, (event["user_id"], event["entitlement_id"])

    def handle(self, event: Event, state: StateReader) -> Outcome:
        key = (event["user_id"], event["entitlement_id"])
        current = state.get(ENTITLEMENTS, key)
        if event.type == "EntitlementGranted":
            row = {"user_id": key[0], "entitlement_id": key[1], "kind": event["kind"], "title_id": event["title_id"],
                   "plan": event["plan"], "starts_ms": millis(event["starts_at"]), "ends_ms": millis(event["ends_at"]),
                   # A revocation that arrived first (replayed out of order) still wins.
                   "revoked": bool(current and current.values.get("revoked")),
                   "revoked_reason": current.values.get("revoked_reason") if current else None}
        else:
            base = dict(current.values) if current else {
                "user_id": key[0], "entitlement_id": key[1], "kind": None, "title_id": None, "plan": None,
                "starts_ms": None, "ends_ms": None}
            row = {**base, "revoked": True, "revoked_reason": event["reason"]}
        return Outcome().write(ENTITLEMENTS, row)
