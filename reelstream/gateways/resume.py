"""Resume and "continue watching" rules: pure functions of positions, durations and time.

Modelled on Jellyfin's defaults (MinResumePct 5, MaxResumePct 90, MinResumeDurationSeconds
300), tightened where they annoy viewers:

- a position in the first 5% of the title, capped at the first 3 minutes, restarts
  (someone who watched 4 minutes of a 2-hour film expects to resume, not restart);
- titles shorter than 5 minutes always restart;
- past 90%, or past the start of the end credits when the package knows it, counts as
  watched: resume offers the start again and the next episode enters "continue watching";
- the newest position wins by event time (the processors guarantee it per row), so a
  stale device never overwrites a newer position from another device.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

RESTART_FRACTION = 0.05
RESTART_CAP_MS = 3 * 60_000
MIN_RESUMABLE_MS = 5 * 60_000
WATCHED_FRACTION = 0.90

Status = Literal["restart", "resume", "watched"]


@dataclass(frozen=True)
class ResumePoint:
    status: Status
    position_ms: int  # where the player should start


def resume_point(position_ms: int, duration_ms: int, credits_start_ms: int | None = None) -> ResumePoint:
    if duration_ms <= 0:
        return ResumePoint("restart", 0)
    watched_at = WATCHED_FRACTION * duration_ms
    if credits_start_ms is not None and 0 < credits_start_ms < duration_ms:
        watched_at = min(watched_at, credits_start_ms)
    if position_ms >= watched_at:
        return ResumePoint("watched", 0)
    if duration_ms < MIN_RESUMABLE_MS or position_ms < min(RESTART_FRACTION * duration_ms, RESTART_CAP_MS):
        return ResumePoint("restart", 0)
    return ResumePoint("resume", position_ms)


def newest(rows: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The row with the newest event time (ties: the larger position, deterministically)."""
    return max(rows, key=lambda r: (r["event_time_ms"], r["position_ms"]), default=None)


@dataclass(frozen=True)
class ContinueItem:
    title_id: str
    position_ms: int
    duration_ms: int
    status: Literal["resume", "next_episode"]
    updated_ms: int
    device_type: str | None


def continue_watching(rows: Iterable[Mapping[str, Any]], duration_ms: Callable[[str], int | None],
                      next_episode: Callable[[str], str | None], limit: int = 20,
                      credits_start_ms: Callable[[str], int | None] = lambda title_id: None) -> list[ContinueItem]:
    """A profile's "continue watching" row, newest first: titles in progress, and the next
    episode of titles just watched (unless that episode has progress of its own)."""
    rows = sorted(rows, key=lambda r: r["event_time_ms"], reverse=True)
    seen = {r["title_id"] for r in rows}
    items: list[ContinueItem] = []
    offered: set[str] = set()
    for row in rows:
        duration = duration_ms(row["title_id"])
        if duration is None:
            continue  # title no longer published
        point = resume_point(row["position_ms"], duration, credits_start_ms(row["title_id"]))
        if point.status == "resume":
            items.append(ContinueItem(row["title_id"], point.position_ms, duration, "resume",
                                      row["event_time_ms"], row.get("device_type")))
            offered.add(row["title_id"])
        elif point.status == "watched":
            following = next_episode(row["title_id"])
            if following and following not in seen and following not in offered:
                following_duration = duration_ms(following)
                if following_duration is not None:
                    items.append(ContinueItem(following, 0, following_duration, "next_episode",
                                              row["event_time_ms"], None))
                    offered.add(following)
    return items[:limit]
