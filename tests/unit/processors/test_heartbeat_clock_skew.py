"""Heartbeats written straight to reel.playback by a producer whose clock runs fast: an event
time later than the record's log time counts as the log time, as the gateway clamps a
future ``ts`` to its own clock, so one such beat cannot pin the resume position."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from reelstream.events.codec import EventCodec
from reelstream.processors.base import MAX_EVENT_TIME_LEAD_MS, Processor
from reelstream.processors.playback.logic import (
    PROFILE_PROGRESS,
    WATCH_POSITIONS,
    WatchPositionProcessor,
)
from reelstream.processors.runner import ProcessorRunner
from reelstream.processors.sessions.logic import LIVE_SESSIONS, LiveSessionProcessor
from reelstream.stores.ports import Record, StateStore
from reelstream.stores.sqlite_state import SqliteStateStore
from tests.support.events import T0, heartbeat

LOGGED = int(T0.timestamp() * 1000)  # when the first record reached the log


def record(offset: int, position_ms: int, event_at_s: float, logged_at_s: float, codec: EventCodec) -> Record:
    event = heartbeat("u1", "t1", "tv", position_ms, event_at_s)
    return Record("reel.playback", 0, offset, b"u1", codec.encode(event), LOGGED + int(logged_at_s * 1000))


def positions(state: StateStore) -> tuple[int, int]:
    tv = state.get(WATCH_POSITIONS, ("u1", "t1", "tv"))
    profile = state.get(PROFILE_PROGRESS, ("u1", "main", "t1"))
    assert tv is not None and profile is not None
    return tv.values["position_ms"], profile.values["position_ms"]


def run(tmp_path: Path, *records: Record, processor: Processor | None = None) -> StateStore:
    processor = processor or WatchPositionProcessor()
    state = SqliteStateStore(tmp_path / f"state-{len(list(tmp_path.iterdir()))}.db")
    state.ensure_views(processor.views)
    runner = ProcessorRunner(processor, None, state, EventCodec(), "test", emit=False)  # type: ignore[arg-type]
    for r in records:
        runner.process([r])
    return state


def test_a_beat_stamped_in_the_future_does_not_outrank_later_beats(tmp_path: Path) -> None:
    codec = EventCodec()
    fast = record(0, 600_000, event_at_s=timedelta(days=1).total_seconds(), logged_at_s=0, codec=codec)
    later = [record(i, 600_000 + 30_000 * i, event_at_s=30 * i, logged_at_s=30 * i, codec=codec) for i in (1, 2)]
    assert positions(run(tmp_path, fast, *later)) == (660_000, 660_000)


def test_late_beats_keep_their_own_time(tmp_path: Path) -> None:
    # A beat queued offline arrives after a newer one: its own (earlier) time still orders it.
    codec = EventCodec()
    newer = record(0, 900_000, event_at_s=600, logged_at_s=600, codec=codec)
    queued = record(1, 300_000, event_at_s=60, logged_at_s=3600, codec=codec)
    assert positions(run(tmp_path, newer, queued)) == (900_000, 900_000)
    stored = run(tmp_path, newer, queued).get(WATCH_POSITIONS, ("u1", "t1", "tv"))
    assert stored is not None and stored.values["event_time_ms"] == LOGGED + 600_000


def test_a_beat_stamped_in_the_future_does_not_freeze_its_session(tmp_path: Path) -> None:
    # The session's newest event decides its position, state and liveness: one from a fast
    # clock kept it "live" (counted against the account's streams) until that time had come.
    codec = EventCodec()
    fast = record(0, 600_000, event_at_s=timedelta(hours=6).total_seconds(), logged_at_s=0, codec=codec)
    later = record(1, 630_000, event_at_s=30, logged_at_s=30, codec=codec)
    state = run(tmp_path, fast, later, processor=LiveSessionProcessor())
    session = state.get(LIVE_SESSIONS, ("u1", "u1-tv"))
    assert session is not None
    assert session.values["position_ms"] == 630_000 and session.values["last_event_ms"] == LOGGED + 30_000


def test_an_event_time_a_few_minutes_ahead_is_believed(tmp_path: Path) -> None:
    # Hosts' clocks differ by seconds (and a test's injected clock by minutes): only a clock
    # further ahead than MAX_EVENT_TIME_LEAD_MS is taken for broken.
    ahead = record(0, 120_000, event_at_s=MAX_EVENT_TIME_LEAD_MS / 1000 - 60, logged_at_s=0, codec=EventCodec())
    stored = run(tmp_path, ahead).get(WATCH_POSITIONS, ("u1", "t1", "tv"))
    assert stored is not None and stored.values["event_time_ms"] == LOGGED + MAX_EVENT_TIME_LEAD_MS - 60_000
