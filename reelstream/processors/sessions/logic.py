"""Live playback sessions per account (the concurrent-stream limit) and QoE per session.

One row per (user, session), folded from ``reel.playback``. A session is *live* while it
has not stopped and its newest event is younger than ``LIVE_TIMEOUT_MS``: players beat
every 30 s (also while paused), so two missed beats plus slack means the player is gone
(crashed, lost its network) and its stream no longer counts.

Sessions becoming live and ending are announced on ``reel.sessions``, one event each per
session rather than one per heartbeat, for license servers to fold into their
concurrent-stream counts: ``PlaybackSessionOpened`` when a session's first event arrives
(or its first after it had lapsed), ``PlaybackSessionClosed`` when it stops. A session that
lapses (its player vanished) is not announced: a reader knows it stops counting
``LIVE_TIMEOUT_MS`` after its last event, and that it may still be beating until then.

When a session stops, the processor also emits ``PlaybackSessionSummarized`` to ``reel.qoe``:
startup time, playing time, rebuffer ratio, time-weighted average bitrate and rendition
switches. Events older than the row's newest (a stale device, a late post) do not
move the session backwards; their rebuffer time is still counted. A retried post (the
gateway gives it its first copy's event ids) is counted once: the row keeps the ids of
its last ``RECENT_IDS`` events, and retries come seconds apart, well inside that window.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from reelstream.events.model import Event, new_event
from reelstream.processors.base import Outcome, Processor, StateReader, millis
from reelstream.stores.ports import Column, Row, ViewSpec

HEARTBEAT_INTERVAL_MS = 30_000
LIVE_TIMEOUT_MS = 2 * HEARTBEAT_INTERVAL_MS + 10_000
RECENT_IDS = 32

# Partition key: user_id (the license server counts one account's live sessions);
# clustering key: session_id.
LIVE_SESSIONS = ViewSpec(
    name="live_sessions", partition_key=("user_id",), clustering_key=("session_id",),
    columns={"user_id": Column.TEXT, "session_id": Column.TEXT, "profile_id": Column.TEXT,
             "device_id": Column.TEXT, "device_type": Column.TEXT, "title_id": Column.TEXT,
             "started_ms": Column.BIGINT, "last_event_ms": Column.BIGINT, "position_ms": Column.BIGINT,
             "state": Column.TEXT, "ended": Column.BOOLEAN, "qoe": Column.JSON},
    query="an account's playback sessions, live and ended (concurrent-stream limit, QoE)",
)

_STATE_BY_TYPE = {"PlaybackStarted": "PLAYING", "PlaybackPaused": "PAUSED", "PlaybackStopped": "STOPPED"}
_COUNTING = {"PLAYING", "BUFFERING", "SEEKING"}  # states in which wall time is viewing time


def is_live(row: dict[str, Any], now_ms: int) -> bool:
    return not row["ended"] and now_ms - row["last_event_ms"] <= LIVE_TIMEOUT_MS


def live_sessions(rows: Iterable[dict[str, Any]], now_ms: int, *, except_device: str | None = None
                  ) -> list[dict[str, Any]]:
    """The live sessions among ``rows`` (one account's), one per device (a device streams
    once at a time: its newest session stands for it), leaving out ``except_device``."""
    newest: dict[str, dict[str, Any]] = {}
    for row in rows:
        if is_live(row, now_ms) and row["device_id"] != except_device:
            kept = newest.get(row["device_id"])
            if kept is None or row["last_event_ms"] > kept["last_event_ms"]:
                newest[row["device_id"]] = row
    return sorted(newest.values(), key=lambda r: r["last_event_ms"])


def _empty_qoe() -> dict[str, Any]:
    return {"startup_ms": None, "playing_ms": 0, "rebuffer_ms": 0, "bitrate_ms": 0, "bitrate_time_ms": 0,
            "rendition": None, "bitrate_kbps": None, "switches": 0, "events": 0, "cdn_nodes": [],
            "recent_ids": []}


def fold_qoe(qoe: dict[str, Any], previous_state: str | None, elapsed_ms: int, event: Event,
             fresh: bool = True) -> dict[str, Any]:
    """``qoe`` after ``event``, which came ``elapsed_ms`` after the previous one. A stale event
    (older than the newest seen) adds its stall time but changes no rendition or bitrate."""
    q = dict(qoe)
    q["events"] += 1
    data = event.data
    if data.get("startup_ms") is not None and q["startup_ms"] is None:
        q["startup_ms"] = data["startup_ms"]
    q["rebuffer_ms"] += int(data.get("rebuffer_ms") or 0)
    if previous_state in _COUNTING and elapsed_ms > 0:
        q["playing_ms"] += elapsed_ms
        if q["bitrate_kbps"] is not None:  # the bitrate that was playing over the interval
            q["bitrate_ms"] += q["bitrate_kbps"] * elapsed_ms
            q["bitrate_time_ms"] += elapsed_ms
    if not fresh:
        return q
    if data.get("rendition_id"):
        if q["rendition"] is not None and data["rendition_id"] != q["rendition"]:
            q["switches"] += 1
        q["rendition"] = data["rendition_id"]
    if data.get("bitrate_kbps") is not None:
        q["bitrate_kbps"] = data["bitrate_kbps"]
    if data.get("cdn_node") and data["cdn_node"] not in q["cdn_nodes"]:
        q["cdn_nodes"] = [*q["cdn_nodes"], data["cdn_node"]][-8:]
    return q


def summary(row: dict[str, Any], end_reason: str) -> dict[str, Any]:
    """The ``PlaybackSessionSummarized`` payload of an ended session row."""
    q = row["qoe"]
    playing = int(q["playing_ms"])
    return {
        "session_id": row["session_id"], "user_id": row["user_id"], "profile_id": row["profile_id"],
        "device_id": row["device_id"], "device_type": row["device_type"], "title_id": row["title_id"],
        "started_at": _at(row["started_ms"]), "ended_at": _at(row["last_event_ms"]), "end_reason": end_reason,
        "startup_ms": q["startup_ms"], "playing_ms": playing, "rebuffer_ms": int(q["rebuffer_ms"]),
        "rebuffer_ratio": (q["rebuffer_ms"] / playing) if playing else 0.0,
        "average_bitrate_kbps": (round(q["bitrate_ms"] / q["bitrate_time_ms"]) if q["bitrate_time_ms"] else None),
        "bitrate_switches": int(q["switches"]), "heartbeats": int(q["events"]), "cdn_nodes": list(q["cdn_nodes"]),
    }


def _at(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


class LiveSessionProcessor(Processor):
    name = "sessions"
    topics = ("reel.playback",)
    views = (LIVE_SESSIONS,)
    coalesce_writes = True  # a session's beats in one batch are one write (it writes only its primary rows)
    # A future event time (a producer writing straight to reel.playback with a fast clock)
    # would freeze the session and keep it live, counted against the account, until then.
    event_time_bound_by_log = True

    def primary(self, event: Event) -> tuple[ViewSpec, tuple[Any, ...]] | None:
        return LIVE_SESSIONS, (event["user_id"], event["session_id"])

    def handle(self, event: Event, state: StateReader) -> Outcome:
        current: Row | None = state.get(LIVE_SESSIONS, (event["user_id"], event["session_id"]))
        at = millis(event.header.event_time) or 0
        if current is None:
            row: dict[str, Any] = {
                "user_id": event["user_id"], "session_id": event["session_id"], "profile_id": event["profile_id"],
                "device_id": event["device_id"], "device_type": event["device_type"], "title_id": event["title_id"],
                "started_ms": at, "last_event_ms": at, "position_ms": event["position_ms"], "state": None,
                "ended": False, "qoe": _empty_qoe()}
        else:
            row = dict(current.values)
        if row["ended"]:
            return Outcome()  # late beats after the stop change nothing
        recent = row["qoe"].get("recent_ids", [])  # rows written before retries were de-duplicated lack it
        if event.event_id in recent:
            return Outcome()  # a retried post: its first copy was counted
        outcome = Outcome()
        if current is None or at - row["last_event_ms"] > LIVE_TIMEOUT_MS:  # new, or back after it had lapsed
            outcome.events.append(new_event("PlaybackSessionOpened", {
                k: row[k] for k in ("session_id", "user_id", "profile_id", "device_id", "device_type", "title_id")}
                | {"opened_at": _at(at)}, producer="processor.sessions", caused_by=event,
                event_time=event.header.event_time))
        fresh = at >= row["last_event_ms"]
        elapsed = at - row["last_event_ms"] if fresh else 0
        row["qoe"] = fold_qoe(row["qoe"], row["state"], elapsed, event, fresh) | {
            "recent_ids": [*recent, event.event_id][-RECENT_IDS:]}
        if fresh:
            row.update(last_event_ms=at, position_ms=event["position_ms"],
                       state=event.data.get("state") or _STATE_BY_TYPE[event.type])
        row["started_ms"] = min(row["started_ms"], at)
        if event.type == "PlaybackStopped":
            row["ended"] = True
            outcome.events.append(new_event("PlaybackSessionClosed", {
                "session_id": row["session_id"], "user_id": row["user_id"], "device_id": row["device_id"],
                "closed_at": _at(at), "reason": event["reason"]}, producer="processor.sessions", caused_by=event,
                event_time=event.header.event_time))
            outcome.events.append(new_event("PlaybackSessionSummarized", summary(row, event["reason"]),
                                            producer="processor.sessions", caused_by=event,
                                            event_time=event.header.event_time))
        return outcome.write(LIVE_SESSIONS, row)
