"""Licenses issued per account: streaming grants and offline downloads."""

from __future__ import annotations

from typing import Any

from reelstream.events.model import Event
from reelstream.processors.base import Outcome, Processor, StateReader, millis
from reelstream.stores.ports import Column, ViewSpec

# Partition key: user_id. Device and download limits count one account's licenses.
LICENSES = ViewSpec(
    name="licenses", partition_key=("user_id",), clustering_key=("license_id",),
    columns={"user_id": Column.TEXT, "license_id": Column.TEXT, "title_id": Column.TEXT, "device_id": Column.TEXT, "kind": Column.TEXT, "key_ids": Column.JSON,
             "issued_ms": Column.BIGINT, "expires_ms": Column.BIGINT, "returned": Column.BOOLEAN},
    query="an account's licenses and downloads, by user id",
)


class LicenseProcessor(Processor):
    name = "licenses"
    topics = ("reel.licenses",)
    views = (LICENSES,)

    def primary(self, event: Event) -> tuple[ViewSpec, tuple[Any, ...]] | None:
        if event.type == "LicenseDenied":
            return None  # denials are audit facts on the log; no state to keep
        return LICENSES, (event["user_id"], event["license_id"])

    def handle(self, event: Event, state: StateReader) -> Outcome:
        key = (event["user_id"], event["license_id"])
        current = state.get(LICENSES, key)
        if event.type == "DownloadReturned":
            base = dict(current.values) if current else {
                "user_id": key[0], "license_id": key[1], "title_id": event["title_id"], "device_id": event["device_id"],
                "kind": "download", "key_ids": [], "issued_ms": None, "expires_ms": None}
            return Outcome().write(LICENSES, {**base, "returned": True})
        # A persistent license is the key grant of a download (same license id): the row stays
        # a download, or the account's download list would lose it once its keys are fetched.
        persistent = event.data.get("session_type") == "persistent-license"
        downloaded = current is not None and current.values.get("kind") == "download"
        if event.type == "LicenseGranted" and downloaded and not persistent:
            # A temporary license on a download ticket: the license server records those under
            # their own id now, but grants logged before named the download's, and folding one
            # would cut the download's 30-day expiry to the streaming 6 hours.
            return Outcome()
        kind = "streaming" if event.type == "LicenseGranted" and not (persistent or downloaded) else "download"
        return Outcome().write(LICENSES, {
            "user_id": key[0], "license_id": key[1], "title_id": event["title_id"], "device_id": event["device_id"],
            "kind": kind, "key_ids": list(event.data.get("key_ids", [])),
            "issued_ms": millis(event.header.event_time), "expires_ms": millis(event["expires_at"]),
            "returned": bool(current and current.values.get("returned"))})
