"""Resume rules: restart early, resume in the middle, watched near the end or in the credits."""

from __future__ import annotations

from reelstream.gateways.resume import continue_watching, resume_point

MIN = 60_000


def test_resume_points() -> None:
    film = 120 * MIN
    assert resume_point(2 * MIN, film).status == "restart"  # first few minutes
    assert resume_point(4 * MIN, film).position_ms == 4 * MIN  # 3.3%: past the 3-minute cap
    assert resume_point(60 * MIN, film).status == "resume"
    assert resume_point(108 * MIN, film).status == "watched"  # 90%
    assert resume_point(100 * MIN, film, credits_start_ms=100 * MIN).status == "watched"
    episode = 22 * MIN
    assert resume_point(60_000, episode).status == "restart"  # < 5% of 22 min
    assert resume_point(70_000, episode).status == "resume"
    assert resume_point(3 * MIN, 4 * MIN).status == "restart"  # too short to resume
    assert resume_point(0, 0).status == "restart"


def test_continue_watching_offers_next_episodes_and_orders_newest_first() -> None:
    rows = [
        {"title_id": "s1e1", "position_ms": 21 * MIN, "event_time_ms": 300, "device_type": "tv"},
        {"title_id": "film", "position_ms": 50 * MIN, "event_time_ms": 200, "device_type": "phone"},
        {"title_id": "s2e1", "position_ms": 30_000, "event_time_ms": 100, "device_type": "tv"},  # just started
    ]
    durations = {"s1e1": 22 * MIN, "s1e2": 22 * MIN, "film": 120 * MIN, "s2e1": 22 * MIN}
    items = continue_watching(rows, durations.get, {"s1e1": "s1e2"}.get)
    assert [(i.title_id, i.status) for i in items] == [("s1e2", "next_episode"), ("film", "resume")]
