"""`reel replay popularity --verify` on a correct system: the popularity score is a float fold
whose last bits depend on the order starts are folded in (a live run takes the partitions as
they arrive, a replay one after another), so the verify diff compares DOUBLE columns to a
relative tolerance; every other column, and the positions applied, stay exact."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from reelstream.config import Settings
from reelstream.events.model import Event, new_event
from reelstream.processors.popularity.logic import TITLE_POPULARITY, PopularityProcessor
from reelstream.processors.replay import DOUBLE_REL_TOL, diff_states, rebuild
from reelstream.processors.runner import ProcessorRunner
from reelstream.runtime import Runtime
from reelstream.stores.ports import Row
from reelstream.stores.sqlite_state import SqliteStateStore
from tests.support.events import T0


def started(user: str, minutes: float) -> Event:
    return new_event("PlaybackStarted", {
        "session_id": f"s-{user}-{minutes}", "user_id": user, "profile_id": "main",
        "device_id": f"d-{user}", "device_type": "tv", "title_id": "t1", "position_ms": 0,
        "startup_ms": 800}, producer="test", event_time=T0 + timedelta(minutes=minutes))


def test_verify_accepts_a_replay_that_folded_the_partitions_in_another_order(tmp_path: Path) -> None:
    rt = Runtime(Settings(data_dir=tmp_path / "reel"))
    proc = PopularityProcessor()
    rt.state.ensure_views(proc.views)
    live = ProcessorRunner(proc, rt.log, rt.state, rt.codec, "test")
    reader = rt.log.consumer(["reel.playback"], group_id=None)
    # Ten viewers, spread over the partitions by user, each start applied live as it arrives;
    # the replay reads partition by partition, so it folds the same starts in another order.
    for i in range(10):
        rt.publish(started(f"user-{i}", minutes=17 * i))
        live.process(reader.poll(max_records=500, timeout=1))
    reader.close()
    assert live.stats.applied == 10

    fresh = SqliteStateStore(tmp_path / "replay.db")
    assert rebuild(proc, rt.log, fresh, rt.codec).records == 10
    assert diff_states(proc, rt.state, fresh) == []
    rebuilt = fresh.get(TITLE_POPULARITY, ("all", "t1"))
    assert rebuilt is not None and rebuilt.values["starts"] == 10


def _stores(tmp_path: Path, live: dict[str, Any], rebuilt: dict[str, Any],
            live_applied: dict[str, int] | None = None) -> tuple[SqliteStateStore, SqliteStateStore]:
    stores = SqliteStateStore(tmp_path / "live.db"), SqliteStateStore(tmp_path / "rebuilt.db")
    for store, values, applied in ((stores[0], live, live_applied), (stores[1], rebuilt, None)):
        store.ensure_views([TITLE_POPULARITY])
        store.put(TITLE_POPULARITY, Row(values, applied or {"reel.playback/0": 4}))
    return stores


SCORE = 4.25
ROW: dict[str, Any] = {"scope": "all", "title_id": "t1", "starts": 5, "score": SCORE, "scored_at_ms": 1_000}


def test_verify_still_reports_a_score_beyond_the_tolerance(tmp_path: Path) -> None:
    near = SCORE * (1 + DOUBLE_REL_TOL / 10)
    far = SCORE * (1 + DOUBLE_REL_TOL * 10)
    assert diff_states(PopularityProcessor(), *_stores(tmp_path / "near", ROW, {**ROW, "score": near})) == []
    problems = diff_states(PopularityProcessor(), *_stores(tmp_path / "far", ROW, {**ROW, "score": far}))
    assert len(problems) == 1 and problems[0].startswith("title_popularity('all', 't1'): live")


def test_verify_compares_every_other_column_and_the_positions_exactly(tmp_path: Path) -> None:
    proc = PopularityProcessor()
    assert len(diff_states(proc, *_stores(tmp_path / "starts", ROW, {**ROW, "starts": 6}))) == 1
    assert len(diff_states(proc, *_stores(tmp_path / "at", ROW, {**ROW, "scored_at_ms": 1_001}))) == 1
    moved = _stores(tmp_path / "applied", ROW, dict(ROW), live_applied={"reel.playback/0": 5})
    assert len(diff_states(proc, *moved)) == 1
