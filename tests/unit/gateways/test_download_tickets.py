"""A download ticket's keys follow its download: refused once it is returned, expired, or
for another device; refused, like a new download, once offline rights are withdrawn; and
a temporary license on it is a streaming license of its own, never the download's row."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import get_args

import pytest

from reelstream.config import Settings
from reelstream.events.codec import EventCodec
from reelstream.events.model import Event, new_event
from reelstream.gateways import policy as p
from reelstream.gateways.account_state import LicenseCache
from reelstream.gateways.licenses import license_id_of
from reelstream.gateways.services import Ticket
from reelstream.processors.licenses.logic import LICENSES, LicenseProcessor
from reelstream.runtime import Runtime
from reelstream.stores.ports import Row
from tests.support.memory_state import MemoryState
from tests.unit.gateways.test_policy import BASE, LIMITS, NOW, TERMS

T0 = datetime.fromtimestamp(NOW / 1000, tz=UTC)
DOWNLOAD = p.ActiveLicense("dl-1", "d1", "download", NOW + 30 * p.DAY_MS)


@pytest.mark.parametrize(("download", "reason"), [
    (None, "DOWNLOAD_UNKNOWN"),
    (replace(DOWNLOAD, kind="streaming"), "DOWNLOAD_UNKNOWN"),
    (replace(DOWNLOAD, device_id="d2"), "DOWNLOAD_UNKNOWN"),
    (replace(DOWNLOAD, returned=True), "DOWNLOAD_RETURNED"),
    (replace(DOWNLOAD, expires_ms=NOW), "RENTAL_EXPIRED"),
])
def test_a_download_ticket_is_refused_unless_its_download_is_licensed_to_the_device(
        download: p.ActiveLicense | None, reason: str) -> None:
    denial = p.check_download(download, "dl-1", "d1", NOW)
    assert denial is not None and denial.reason == reason
    assert "dl-1" in denial.detail and "/downloads/licenses" in denial.detail  # says what to do


def test_an_active_download_on_its_device_passes() -> None:
    assert p.check_download(DOWNLOAD, "dl-1", "d1", NOW) is None
    assert p.check_download(replace(DOWNLOAD, expires_ms=None), "dl-1", "d1", NOW) is None


def test_withdrawn_offline_rights_refuse_a_downloads_keys_as_they_refuse_a_download() -> None:
    withdrawn = replace(BASE, terms=replace(TERMS, offline_download_allowed=False))
    keys = p.decide_offline_keys(withdrawn, LIMITS, NOW + p.DAY_MS)
    assert keys == p.decide_download(withdrawn, LIMITS)
    assert isinstance(keys, p.Denial) and keys.reason == "DOWNLOAD_NOT_ALLOWED"
    assert isinstance(p.decide_offline_keys(BASE, LIMITS, NOW + p.DAY_MS), p.Grant)


def _ticket(kind: str, license_id: str | None) -> Ticket:
    return Ticket("u1", "p", "d1", "phone", "software", "t", "ps-1", kind, license_id, NOW // 1000 + 60)


def test_a_temporary_license_on_a_download_ticket_has_its_own_license_id() -> None:
    download = _ticket("download", "dl-1")
    assert license_id_of(download, "persistent-license") == "dl-1"
    assert license_id_of(download, "temporary") == "lic-ps-1"  # the download's row is not touched
    assert license_id_of(_ticket("stream", None), "temporary") == "lic-ps-1"


def _licensed(expires: datetime) -> Event:
    return new_event("DownloadLicensed", {
        "license_id": "dl-1", "user_id": "u1", "device_id": "d1", "title_id": "t", "expires_at": expires,
        "playback_window_ms": 48 * p.HOUR_MS, "renewal": False}, producer="test", event_time=T0)


def _granted(license_id: str, session_type: str, expires: datetime) -> Event:
    return new_event("LicenseGranted", {
        "license_id": license_id, "user_id": "u1", "device_id": "d1", "title_id": "t", "key_ids": ["k"],
        "session_type": session_type, "expires_at": expires, "playback_session_id": "ps-1",
        "withheld_keys": []}, producer="test", event_time=T0)


def test_a_temporary_grant_logged_under_a_downloads_id_leaves_the_download_as_it_was() -> None:
    """Grants logged before the fix named the download's license id: replaying one must not
    cut the download's 30 days to the streaming license's 6 hours."""
    state, processor = MemoryState(), LicenseProcessor()
    for event in (_licensed(T0 + timedelta(days=30)), _granted("dl-1", "temporary", T0 + timedelta(hours=6))):
        state.apply(processor.handle(event, state))
    row = state.get(LICENSES, ("u1", "dl-1"))
    assert row is not None and row.values["kind"] == "download"
    assert row.values["expires_ms"] == NOW + 30 * p.DAY_MS


def test_the_license_cache_keeps_returned_downloads_so_their_tickets_are_refused_at_once(tmp_path: Path) -> None:
    def returned(license_id: str, kind: str, expires_ms: int | None) -> Row:
        return Row({"user_id": "u1", "license_id": license_id, "title_id": "t", "device_id": "d1", "kind": kind,
                    "key_ids": [], "issued_ms": NOW, "expires_ms": expires_ms, "returned": True}, {})

    runtime = Runtime(Settings(data_dir=tmp_path / "reel"))
    try:
        runtime.state.ensure_views([LICENSES])
        runtime.state.put(LICENSES, returned("dl-returned", "download", NOW + p.DAY_MS))
        runtime.state.put(LICENSES, returned("dl-expired", "download", NOW))
        runtime.state.put(LICENSES, returned("lic-stream", "streaming", NOW + p.DAY_MS))
        kept = LicenseCache(runtime.state, lambda: NOW).get("u1")
    finally:
        runtime.close()
    assert [(lic.license_id, lic.returned) for lic in kept] == [("dl-returned", True)]
    assert not kept[0].active(NOW)  # kept for its ticket's check, counted for no limit


def test_every_refusal_reason_is_a_symbol_of_the_license_denied_event() -> None:
    codec = EventCodec()
    fields = codec.registry.current("LicenseDenied").raw["fields"]
    symbols = next(f["type"]["symbols"] for f in fields if f["name"] == "reason")
    assert set(get_args(p.DenialReason)) == set(symbols) - {"OTHER"}
    for reason in get_args(p.DenialReason):  # each one's event is valid: the refusal is never a 400
        codec.validate(new_event("LicenseDenied", {"user_id": "u1", "device_id": "d1", "title_id": "t",
                                                   "key_ids": [], "reason": reason, "detail": "why"},
                                 producer="test"))
