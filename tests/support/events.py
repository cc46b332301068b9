"""Realistic event factories shared by functional and integration tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from reelstream.events.model import Event, new_event

T0 = datetime(2026, 11, 26, 20, 0, tzinfo=UTC)


def heartbeat(user: str, title: str, device_type: str, position_ms: int, seconds: float) -> Event:
    return new_event("PlaybackHeartbeat", {
        "session_id": f"{user}-{device_type}", "user_id": user, "profile_id": "main", "device_id": f"{user}-{device_type}",
        "device_type": device_type, "title_id": title, "position_ms": position_ms, "state": "PLAYING",
        "reason": "INTERVAL", "rendition_id": "h264-720p", "bitrate_kbps": 3000, "buffer_ms": 20_000,
        "rebuffer_ms": 0, "startup_ms": None, "throughput_kbps": 12_000, "cdn_node": "pop-1",
    }, producer="test", correlation_id=f"{user}-{device_type}", event_time=T0 + timedelta(seconds=seconds))


def grant(user: str, entitlement: str) -> Event:
    return new_event("EntitlementGranted", {
        "entitlement_id": entitlement, "user_id": user, "kind": "SUBSCRIPTION", "title_id": None, "plan": "standard",
        "starts_at": T0, "ends_at": None}, producer="test", event_time=T0)


def registered(title: str) -> Event:
    return new_event("TitleRegistered", {
        "title_id": title, "title": f"Title {title}", "original_language": "en", "audio_languages": ["en"],
        "rating": {"system": "MPAA", "value": "PG"}, "genres": ["drama"],
        "license_terms": {"territories": ["US"], "window_start": T0, "window_end": None,
                          "offline_download_allowed": True, "max_height": 1080}}, producer="test", event_time=T0)
