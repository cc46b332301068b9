"""License policy: every denial reason, in order, and expiries capped by entitlement and window."""

from __future__ import annotations

from dataclasses import replace

import pytest

from reelstream.gateways import policy as p

NOW = 1_000_000_000_000
TERMS = p.TitleTerms(frozenset({"US"}), NOW - 1000, None, True, 2160)
SUB = p.Entitlement("e1", "SUBSCRIPTION", None, NOW - 1000, None)
BASE = p.Request(now_ms=NOW, title_id="t", device_id="d1", security_level="software", country="US", terms=TERMS,
                 entitlements=[SUB], key_classes={"k": "SD"})
LIMITS = p.Limits(max_streams=3, max_licensed_devices=2, max_downloads_per_account=2, max_downloads_per_device=1)


def lic(device: str, kind: str = "streaming", expires: int = NOW + 1000, returned: bool = False) -> p.ActiveLicense:
    return p.ActiveLicense(f"l-{device}-{kind}-{expires}", device, kind, expires, returned)


@pytest.mark.parametrize(("change", "reason"), [
    ({"country": "FR"}, "TERRITORY"),
    ({"terms": replace(TERMS, window_start_ms=NOW + 1)}, "OUTSIDE_WINDOW"),
    ({"terms": replace(TERMS, window_end_ms=NOW)}, "OUTSIDE_WINDOW"),
    ({"entitlements": []}, "NO_ENTITLEMENT"),
    ({"entitlements": [replace(SUB, revoked=True)]}, "NO_ENTITLEMENT"),
    ({"entitlements": [p.Entitlement("r", "RENTAL", "t", NOW - 10, NOW)]}, "RENTAL_EXPIRED"),
    ({"entitlements": [p.Entitlement("r", "RENTAL", "other", NOW - 10, NOW + 10)]}, "NO_ENTITLEMENT"),
    ({"key_classes": {"k": "HD"}}, "SECURITY_LEVEL"),
    ({"key_classes": {"k": "UHD", "h": "HD"}}, "SECURITY_LEVEL"),
    ({"licenses": [lic("d2"), lic("d3")]}, "DEVICE_LIMIT"),
    ({"other_live_devices": 3}, "CONCURRENT_STREAMS"),
])
def test_each_denial_reason(change: dict[str, object], reason: str) -> None:
    decision = p.decide_streaming(replace(BASE, **change), LIMITS)  # type: ignore[arg-type]
    assert isinstance(decision, p.Denial) and decision.reason == reason and decision.detail


def test_grants_and_their_expiry() -> None:
    assert p.decide_streaming(BASE, LIMITS) == p.Grant(NOW + LIMITS.streaming_license_ms, "e1", ("k",))
    hw = replace(BASE, security_level="hardware", key_classes={"k": "UHD"})
    assert isinstance(p.decide_streaming(hw, LIMITS), p.Grant)
    rental = replace(BASE, entitlements=[p.Entitlement("r", "RENTAL", "t", NOW - 10, NOW + 60_000)])
    assert p.decide_streaming(rental, LIMITS) == p.Grant(NOW + 60_000, "r", ("k",))  # capped by the rental
    # Expired, returned and same-device licenses do not count towards the device limit.
    others = [lic("d2", expires=NOW), lic("d3", returned=True), lic("d1")]
    assert isinstance(p.decide_streaming(replace(BASE, licenses=others), LIMITS), p.Grant)
    assert isinstance(p.decide_streaming(replace(BASE, other_live_devices=2), LIMITS), p.Grant)


def test_downloads() -> None:
    assert p.decide_download(replace(BASE, terms=replace(TERMS, offline_download_allowed=False)),
                             LIMITS).reason == "DOWNLOAD_NOT_ALLOWED"  # type: ignore[union-attr]
    assert p.decide_download(replace(BASE, licenses=[lic("d1", "download")]),
                             LIMITS).reason == "DOWNLOAD_LIMIT"  # type: ignore[union-attr]
    granted = p.decide_download(replace(BASE, other_live_devices=9), LIMITS)  # streams do not limit downloads
    assert granted == p.Grant(NOW + 30 * p.DAY_MS, "e1")


def test_offline_expiry_is_30_days_or_48_hours_after_first_play() -> None:
    lic_ = p.OfflineLicense("l", expires_ms=NOW + 30 * p.DAY_MS, playback_window_ms=48 * p.HOUR_MS)
    assert p.offline_playable(lic_, NOW + 29 * p.DAY_MS) is None
    assert p.offline_playable(lic_, NOW + 30 * p.DAY_MS) is not None
    played = replace(lic_, first_played_ms=NOW + p.DAY_MS)
    assert p.offline_playable(played, NOW + p.DAY_MS + 47 * p.HOUR_MS) is None
    assert p.offline_playable(played, NOW + p.DAY_MS + 48 * p.HOUR_MS) is not None


def test_keys_a_device_may_not_have_are_withheld_and_the_others_granted() -> None:
    """Issue #5: a software-only CDM asking for SD, HD, UHD and audio keys gets SD and audio,
    in request order; HD and UHD are withheld with the reason. Denied only if none is allowed."""
    asked = {"hd": "HD", "sd": "SD", "uhd": "UHD", "audio": "AUDIO"}
    software = replace(BASE, key_classes=asked)
    decision = p.decide_streaming(software, LIMITS)
    assert isinstance(decision, p.Grant)
    assert decision.key_ids == ("sd", "audio")
    assert decision.withheld == (("hd", "SECURITY_LEVEL"), ("uhd", "SECURITY_LEVEL"))
    hardware = p.decide_streaming(replace(software, security_level="hardware"), LIMITS)
    assert isinstance(hardware, p.Grant) and hardware.key_ids == ("hd", "sd", "uhd", "audio") and not hardware.withheld
    offline = p.decide_offline_keys(software, LIMITS, NOW + p.DAY_MS)
    assert isinstance(offline, p.Grant) and offline.key_ids == ("sd", "audio") and len(offline.withheld) == 2
    # Other checks still come first: an unentitled account is refused, not partially granted.
    refused = p.decide_streaming(replace(software, entitlements=[]), LIMITS)
    assert isinstance(refused, p.Denial) and refused.reason == "NO_ENTITLEMENT"
