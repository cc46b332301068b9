"""Watch positions for resume, from playback events.

One row per (user, title, device type): the newest position that device type
reported. Resume reads the user's partition and takes the newest across device types,
so a stale device can never overwrite a newer position from another one: ordering is
by event time, not arrival (an event time far ahead of the record's log time is taken as
the log time).
"""

from __future__ import annotations

from typing import Any

from reelstream.events.model import Event
from reelstream.processors.base import Outcome, Processor, StateReader, millis, newer
from reelstream.stores.ports import Column, ViewSpec

# Partition key: user_id; clustering key: (title_id, device_type), as the mission specifies.
WATCH_POSITIONS = ViewSpec(
    name="watch_positions", partition_key=("user_id",), clustering_key=("title_id", "device_type"),
    columns={"user_id": Column.TEXT, "title_id": Column.TEXT, "device_type": Column.TEXT,
             "position_ms": Column.BIGINT, "event_time_ms": Column.BIGINT, "state": Column.TEXT,
             "session_id": Column.TEXT, "profile_id": Column.TEXT, "device_id": Column.TEXT},
    query="a user's latest positions per title and device type (resume, continue watching)",
)

# Partition key: (user_id, profile_id); clustering key: title_id. The newest position of a
# profile per title across all its devices: resume and "continue watching" per profile.
# (WATCH_POSITIONS keys by device type, so two profiles on one TV would share a row.)
PROFILE_PROGRESS = ViewSpec(
    name="profile_progress", partition_key=("user_id", "profile_id"), clustering_key=("title_id",),
    columns={"user_id": Column.TEXT, "profile_id": Column.TEXT, "title_id": Column.TEXT,
             "position_ms": Column.BIGINT, "event_time_ms": Column.BIGINT, "state": Column.TEXT,
             "device_type": Column.TEXT, "device_id": Column.TEXT, "session_id": Column.TEXT},
    query="a profile's newest position per title across devices (resume, continue watching)",
)

_STATE_BY_TYPE = {"PlaybackStarted": "PLAYING", "PlaybackPaused": "PAUSED", "PlaybackStopped": "STOPPED"}


class WatchPositionProcessor(Processor):
    name = "watch_positions"
    topics = ("reel.playback",)
    views = (WATCH_POSITIONS, PROFILE_PROGRESS)
    # A player's beats in one batch are one write per row: besides its primary rows this
    # processor writes only PROFILE_PROGRESS, which is no event's primary (runner._BatchRows).
    coalesce_writes = True
    # The gateway stamps a future "ts" with its own clock; a producer writing straight to
    # reel.playback is held to the same rule by the log's timestamp, or one beat from a
    # fast clock would pin the resume position until the wall clock passed it.
    event_time_bound_by_log = True

    def primary(self, event: Event) -> tuple[ViewSpec, tuple[Any, ...]] | None:
        return WATCH_POSITIONS, (event["user_id"], event["title_id"], event["device_type"])

    def handle(self, event: Event, state: StateReader) -> Outcome:
        key = (event["user_id"], event["title_id"], event["device_type"])
        outcome = Outcome()
        at = millis(event.header.event_time)
        state_name = event.data.get("state") or _STATE_BY_TYPE[event.type]
        # Each view keeps the newest event by event time, not arrival, independently: an
        # event stale for its device type may still be the profile's newest, and vice versa.
        profile_key = (event["user_id"], event["profile_id"], event["title_id"])
        if newer(event, state.get(PROFILE_PROGRESS, profile_key)):
            outcome.write(PROFILE_PROGRESS, {
                "user_id": key[0], "profile_id": event["profile_id"], "title_id": key[1],
                "position_ms": event["position_ms"], "event_time_ms": at, "state": state_name,
                "device_type": key[2], "device_id": event["device_id"], "session_id": event["session_id"]})
        if newer(event, state.get(WATCH_POSITIONS, key)):
            outcome.write(WATCH_POSITIONS, {
                "user_id": key[0], "title_id": key[1], "device_type": key[2],
                "position_ms": event["position_ms"], "event_time_ms": at,
                "state": state_name, "session_id": event["session_id"], "profile_id": event["profile_id"],
                "device_id": event["device_id"]})
        return outcome
