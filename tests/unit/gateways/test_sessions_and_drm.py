"""The live-sessions processor (concurrency, QoE summary) and the Clear Key adapter."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from reelstream.events.codec import EventCodec
from reelstream.events.model import new_event
from reelstream.events.topics import topic_for
from reelstream.gateways.drm import ClearKeyAdapter, InvalidLicenseRequest, LicenseTerms
from reelstream.identity.tokens import b64url
from reelstream.keys.model import ContentKey
from reelstream.processors.base import millis
from reelstream.processors.sessions.logic import LIVE_SESSIONS, LiveSessionProcessor, live_sessions
from tests.support.events import T0
from tests.support.memory_state import MemoryState


def beat(event_type: str, seconds: float, device: str = "d1", session: str = "s1", **data: object):  # type: ignore[no-untyped-def]
    base = {"session_id": session, "user_id": "u", "profile_id": "p", "device_id": device, "device_type": "tv",
            "title_id": "t", "position_ms": int(seconds * 1000)}
    if event_type == "PlaybackHeartbeat":
        base.update({"state": "PLAYING", "reason": "INTERVAL", "rendition_id": "r1", "bitrate_kbps": 3000,
                     "buffer_ms": 1, "rebuffer_ms": 0, "startup_ms": None, "throughput_kbps": 1, "cdn_node": "e1"})
    base.update(data)
    return new_event(event_type, base, producer="t", event_time=T0 + timedelta(seconds=seconds))


def test_sessions_fold_qoe_and_summarize_on_stop() -> None:
    state, processor = MemoryState(), LiveSessionProcessor()
    events = [beat("PlaybackStarted", 0, startup_ms=800), beat("PlaybackHeartbeat", 30, rebuffer_ms=1500),
              beat("PlaybackHeartbeat", 60, rendition_id="r2", bitrate_kbps=6000),
              beat("PlaybackHeartbeat", 45),  # stale: does not move the session back
              beat("PlaybackStopped", 90, reason="STOPPED")]
    out = []
    for e in events:
        outcome = processor.handle(e, state)
        state.apply(outcome)
        out += outcome.events
    row = state.get(LIVE_SESSIONS, ("u", "s1")).values  # type: ignore[union-attr]
    assert row["ended"] and row["position_ms"] == 90_000
    opened, closed, summary = out
    assert (opened.type, opened["opened_at"], opened["device_id"]) == ("PlaybackSessionOpened", T0, "d1")
    assert (closed.type, closed["closed_at"], closed["reason"]) == (
        "PlaybackSessionClosed", T0 + timedelta(seconds=90), "STOPPED")
    assert summary.type == "PlaybackSessionSummarized"
    for event in out:
        EventCodec().encode(event, topic_for(event.type).name)  # each matches its schema and has a topic
    assert summary["startup_ms"] == 800 and summary["playing_ms"] == 90_000 and summary["rebuffer_ms"] == 1500
    assert summary["bitrate_switches"] == 1 and summary["heartbeats"] == 5
    assert summary["average_bitrate_kbps"] == round((3000 * 30_000 + 6000 * 30_000) / 60_000)
    assert processor.handle(beat("PlaybackHeartbeat", 120), state).writes == []  # ended stays ended


def test_a_session_is_announced_opened_once_and_again_only_after_it_lapsed() -> None:
    """reel.sessions carries one event per session becoming live, not one per beat: a beat
    after more than the live timeout (the player was gone) opens it again."""
    state, processor = MemoryState(), LiveSessionProcessor()
    announced = []
    for e in [beat("PlaybackHeartbeat", 0), beat("PlaybackHeartbeat", 30), beat("PlaybackHeartbeat", 60),
              beat("PlaybackHeartbeat", 131), beat("PlaybackHeartbeat", 160)]:
        outcome = processor.handle(e, state)
        state.apply(outcome)
        announced += [(x.type, x["opened_at"]) for x in outcome.events]
    # the first beat opens it (a lost PlaybackStarted does not matter); 131 s is 71 s after 60 s
    assert announced == [("PlaybackSessionOpened", T0), ("PlaybackSessionOpened", T0 + timedelta(seconds=131))]


def test_live_sessions_count_devices_with_recent_beats() -> None:
    now = millis(T0) + 100_000  # type: ignore[operator]
    rows = [{"device_id": d, "ended": ended, "last_event_ms": now - age}
            for d, ended, age in (("a", False, 10_000), ("a", False, 50_000), ("b", False, 69_000),
                                  ("c", False, 71_000), ("d", True, 1_000), ("me", False, 0))]
    assert [r["device_id"] for r in live_sessions(rows, now, except_device="me")] == ["b", "a"]


def test_clear_key_request_and_response() -> None:
    adapter = ClearKeyAdapter()
    kid = bytes(range(16))
    request = adapter.parse(json.dumps({"kids": [b64url(kid), b64url(kid)], "type": "persistent-license"}).encode())
    assert request.kids == (kid.hex(),) and request.session_type == "persistent-license"
    body = json.loads(adapter.license(request, [ContentKey(kid.hex(), b"\xff" * 16)], LicenseTerms(0, True)))
    assert body == {"keys": [{"kty": "oct", "kid": b64url(kid), "k": b64url(b"\xff" * 16)}],
                    "type": "persistent-license"}
    for bad in (b"nope", b"[]", b'{"kids": []}', b'{"kids": ["AAA="]}', b'{"kids": ["AAAA"]}',
                json.dumps({"kids": [b64url(kid)], "type": "forever"}).encode(), b'{"kids": [7]}'):
        with pytest.raises(InvalidLicenseRequest):
            adapter.parse(bad)


def test_a_repeated_event_id_is_folded_once_and_old_rows_still_fold() -> None:
    from dataclasses import replace

    state, processor = MemoryState(), LiveSessionProcessor()
    start, stall = beat("PlaybackStarted", 0), beat("PlaybackHeartbeat", 30, rebuffer_ms=900)
    for e in (start, stall, stall, replace(stall, header=replace(stall.header, event_time=T0))):
        state.apply(processor.handle(e, state))
    qoe = state.get(LIVE_SESSIONS, ("u", "s1")).values["qoe"]  # type: ignore[union-attr]
    assert (qoe["rebuffer_ms"], qoe["events"], qoe["recent_ids"]) == (900, 2, [start.event_id, stall.event_id])
    del qoe["recent_ids"]  # a row written before retries were de-duplicated
    state.apply(processor.handle(beat("PlaybackHeartbeat", 60, rebuffer_ms=100), state))
    qoe = state.get(LIVE_SESSIONS, ("u", "s1")).values["qoe"]  # type: ignore[union-attr]
    assert (qoe["rebuffer_ms"], qoe["events"], len(qoe["recent_ids"])) == (1_000, 3, 1)
