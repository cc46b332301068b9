"""The playback gateway: heartbeats in, resume and "continue watching" out.

    POST /playback/heartbeats             a player report (CMCD names where they exist)
    GET  /playback/resume/{title_id}      where this profile should start the title
    GET  /playback/continue-watching      this profile's row, newest first

Players post every 30 s and on start, pause, seek, stop and exit. The gateway answers
204 once the events are durable in the log (group commit across concurrent posts), so
a player that crashes loses at most the beats it had not posted: the last 30 s.

Heartbeat body (JSON): ``sid`` session id (CMCD), ``cid`` title id (CMCD), ``event``
(start|heartbeat|seek|pause|stop|exit), ``position_ms``, ``state``, ``rendition_id``,
``br`` encoded kbps (CMCD), ``bl`` buffer ms (CMCD), ``mtp`` throughput kbps (CMCD),
``rebuffer_ms`` since the last beat, ``startup_ms`` (on start), ``cdn_node``,
``ts`` the player's event time (ms; clamped to the server's clock, never in the future),
``sent_ts`` the player's clock when it sends the post (ms; with it, ``ts`` counts as that
long before the server's now, so a device clock that is off does not misplace its beats),
``seq`` the report's number in its session (0, 1, 2, ...).

A post carrying ``seq`` may be retried: its events get ids derived from the account, the
session and ``seq``, so a retry of a post that did land (its 204 was lost) writes events
with the ids of the first, which the processors that count (QoE, popularity) and
analytics consumers de-duplicate on ``event_id``. Without ``seq`` every post is new.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any, get_args

from aiohttp import web

from reelstream.events.model import Event, new_event
from reelstream.gateways.errors import BadRequest, PositionOutOfRange
from reelstream.gateways.keys import services
from reelstream.gateways.openapi import ID, INT, STR, Route, add_routes, array, nullable, obj
from reelstream.gateways.resume import Status, continue_watching, resume_point
from reelstream.gateways.services import Services, field_of, json_body
from reelstream.processors.playback.logic import PROFILE_PROGRESS

# The packaged media can end a little after the master's probed duration (AAC priming,
# the last audio segment), and players report the media's own end: up to one segment
# past the end is the end, anything further is an error.
END_SLACK_MS = 2_000

EVENTS = ("start", "heartbeat", "seek", "pause", "stop", "exit")
STATES = ("PLAYING", "PAUSED", "BUFFERING", "SEEKING", "STOPPED")
END_REASONS = ("STOPPED", "EXIT", "ENDED", "ERROR")
# Beats queued offline (a downloaded title played on a plane) keep their own time for as
# long as a download's license can last, so a late sync never overwrites a newer position
# from another device; a time older than that is a broken clock, stamped on arrival.
MAX_CLIENT_LAG_MS = 31 * 24 * 3600 * 1000
MAX_SEQ = 2 ** 31 - 1
_REPORT_IDS = uuid.UUID("5d0c7f2e-3a51-4b7e-9d1c-6c2b8f1e0a47")  # namespace of retry-stable event ids


def heartbeat_events(s: Services, account_id: str, profile_id: str, device_id: str, doc: dict[str, Any]
                     ) -> list[Event]:
    """Validate a report and turn it into the events it means (nothing is written here)."""
    kind = field_of(doc, "event", str, required=False, default="heartbeat")
    if kind not in EVENTS:
        raise BadRequest(f"'event' must be one of {', '.join(EVENTS)}")
    session_id, title_id = field_of(doc, "sid", str), field_of(doc, "cid", str)
    if not 1 <= len(session_id) <= 128:
        raise BadRequest("'sid' must be 1 to 128 characters")
    position = field_of(doc, "position_ms", int)
    title = s.catalog.title(title_id)
    if position < 0 or position > title.duration_ms + END_SLACK_MS:
        raise PositionOutOfRange(f"position_ms {position} is outside title {title_id} (0..{title.duration_ms} ms)")
    position = min(position, title.duration_ms)
    device = s.device(account_id, device_id)
    now = s.now_ms()
    ts = field_of(doc, "ts", int, required=False, default=now)
    sent = field_of(doc, "sent_ts", int, required=False)
    if sent is not None:
        # The device's clock may be off by hours (a TV set by hand): what it says is the
        # beat's age by that clock. Taken as an absolute time, a slow clock's live beats lost
        # resume to another device's older ones.
        ts = now - max(0, sent - ts)
    ts = now if ts > now or ts < now - MAX_CLIENT_LAG_MS else ts
    when = datetime.fromtimestamp(ts / 1000, tz=UTC)
    seq = field_of(doc, "seq", int, required=False)
    if seq is not None and not 0 <= seq <= MAX_SEQ:
        raise BadRequest(f"'seq' must be between 0 and {MAX_SEQ}")
    base = {"session_id": session_id, "user_id": account_id, "profile_id": profile_id, "device_id": device_id,
            "device_type": device.device_type, "title_id": title_id, "position_ms": position}

    def event(event_type: str, **data: Any) -> Event:
        # A report is at most two events, one of each type: the type tells them apart.
        event_id = None if seq is None else str(uuid.uuid5(
            _REPORT_IDS, f"{account_id}/{session_id}/{seq}/{event_type}"))
        return new_event(event_type, {**base, **data}, producer=s.producer, correlation_id=session_id,
                         event_id=event_id, event_time=when)

    state = field_of(doc, "state", str, required=False, default={
        "pause": "PAUSED", "stop": "STOPPED", "exit": "STOPPED", "seek": "SEEKING"}.get(kind, "PLAYING"))
    if state not in STATES:  # a start carries none in its event, but a bad one is still a bad report
        raise BadRequest(f"'state' must be one of {', '.join(STATES)}")
    if kind == "start":
        return [event("PlaybackStarted", startup_ms=_bounded(doc, "startup_ms", 10 ** 9))]
    beat = event("PlaybackHeartbeat", state=state, reason={"heartbeat": "INTERVAL"}.get(kind, kind.upper()),
                 rendition_id=_short_text(doc, "rendition_id"),
                 bitrate_kbps=_bounded(doc, "br", 10_000_000), buffer_ms=_bounded(doc, "bl", 10 ** 9),
                 rebuffer_ms=_bounded(doc, "rebuffer_ms", 10 ** 9) or 0,
                 startup_ms=_bounded(doc, "startup_ms", 10 ** 9), throughput_kbps=_bounded(doc, "mtp", 10 ** 9),
                 cdn_node=_short_text(doc, "cdn_node"))
    if kind == "pause":
        return [beat, event("PlaybackPaused")]
    if kind in ("stop", "exit"):
        reason = field_of(doc, "end_reason", str, required=False, default="EXIT" if kind == "exit" else "STOPPED")
        if reason not in END_REASONS:
            raise BadRequest(f"'end_reason' must be one of {', '.join(END_REASONS)}")
        return [beat, event("PlaybackStopped", reason=reason)]
    return [beat]


def _short_text(doc: dict[str, Any], name: str, limit: int = 256) -> str | None:
    value: str | None = field_of(doc, name, str, required=False)
    if value is not None and not 1 <= len(value) <= limit:
        raise BadRequest(f"'{name}' must be 1 to {limit} characters")
    return value


def _bounded(doc: dict[str, Any], name: str, limit: int) -> int | None:
    value: int | None = field_of(doc, name, int, required=False)
    if value is not None and not 0 <= value <= limit:
        raise BadRequest(f"'{name}' must be between 0 and {limit}")
    return value


async def post_heartbeat(request: web.Request) -> web.Response:
    s = services(request)
    caller = s.caller(request)
    device_id = caller.require_device()
    doc = await json_body(request)
    events = await asyncio.to_thread(heartbeat_events, s, caller.account_id, caller.profile_id, device_id, doc)
    await s.publisher.publish(events)
    if any(e.type in ("PlaybackStarted", "PlaybackStopped") for e in events):
        s.live_sessions.invalidate(caller.account_id)  # the stream count changes: read it afresh
    return web.Response(status=204)


def resume_for(s: Services, account_id: str, profile_id: str, title_id: str) -> dict[str, Any]:
    title = s.catalog.title(title_id)
    row = s.runtime.state.get(PROFILE_PROGRESS, (account_id, profile_id, title_id))
    if row is None:
        return {"title_id": title_id, "status": "restart", "position_ms": 0, "duration_ms": title.duration_ms,
                "last_position_ms": None, "device_type": None, "updated_ms": None}
    point = resume_point(row.values["position_ms"], title.duration_ms, title.end_credits_start_ms)
    return {"title_id": title_id, "status": point.status, "position_ms": point.position_ms,
            "duration_ms": title.duration_ms, "last_position_ms": row.values["position_ms"],
            "device_type": row.values["device_type"], "updated_ms": row.values["event_time_ms"]}


async def get_resume(request: web.Request) -> web.Response:
    s = services(request)
    caller = await s.account_caller(request)
    body = await asyncio.to_thread(resume_for, s, caller.account_id, caller.profile_id,
                                   request.match_info["title_id"])
    return web.json_response(body)


def continue_list(s: Services, account_id: str, profile_id: str) -> list[dict[str, Any]]:
    rows = [r.values for r in s.runtime.state.query(PROFILE_PROGRESS, (account_id, profile_id))]

    def duration(title_id: str) -> int | None:
        title = s.catalog.find(title_id)
        return title.duration_ms if title else None

    def credits(title_id: str) -> int | None:
        title = s.catalog.find(title_id)
        return title.end_credits_start_ms if title else None

    assert s.next_episode is not None  # set by Services
    return [asdict(item) for item in continue_watching(rows, duration, s.next_episode, credits_start_ms=credits)]


async def get_continue_watching(request: web.Request) -> web.Response:
    s = services(request)
    caller = await s.account_caller(request)
    items = await asyncio.to_thread(continue_list, s, caller.account_id, caller.profile_id)
    return web.json_response({"profile_id": caller.profile_id, "items": items})


ROUTES = (
    Route("POST", "/heartbeats", post_heartbeat, "Post a player heartbeat (durable before 204)",
          body=obj(["sid", "cid", "position_ms"], sid={**STR, "maxLength": 128}, cid=STR, position_ms=INT,
                   event={"type": "string", "enum": list(EVENTS)}, state={"type": "string", "enum": list(STATES)},
                   rendition_id=STR, br=INT, bl=INT, mtp=INT, rebuffer_ms=INT, startup_ms=INT, cdn_node=STR,
                   ts=INT, sent_ts=INT, seq={"type": "integer", "minimum": 0, "maximum": MAX_SEQ},
                   end_reason={"type": "string", "enum": list(END_REASONS)}),
          responses={204: "durable in the log (a retry with the same seq is written under the same event ids)",
                     400: "a field is missing or invalid (named)", 403: "device not registered",
                     404: "title not published"}),
    Route("GET", "/resume/{title_id}", get_resume, "Where this profile should start the title",
          responses={200: "resume point", 403: "the token's device was removed", 404: "title not published"},
          returns=obj(["title_id", "status", "position_ms", "duration_ms", "last_position_ms", "device_type",
                       "updated_ms"],
                      title_id=ID, status={"type": "string", "enum": list(get_args(Status))}, position_ms=INT,
                      duration_ms=INT, last_position_ms=nullable(INT), device_type=nullable(ID),
                      updated_ms=nullable(INT))),
    Route("GET", "/continue-watching", get_continue_watching, "This profile's continue-watching row",
          responses={200: "items", 403: "the token's device was removed"},
          returns=obj(["profile_id", "items"], profile_id=ID, items=array(obj(
              ["title_id", "position_ms", "duration_ms", "status", "updated_ms", "device_type"],
              title_id=ID, position_ms=INT, duration_ms=INT,
              status={"type": "string", "enum": ["resume", "next_episode"]}, updated_ms=INT,
              device_type=nullable(ID))))),
)


def playback_app() -> web.Application:
    app = web.Application()
    add_routes(app, ROUTES, "ReelStream playback gateway", __doc__ or "")
    return app
