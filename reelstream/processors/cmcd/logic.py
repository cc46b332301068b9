"""Edge access logs with CMCD, turned into ``EdgeRequestServed`` events and joined to
playback sessions by session id.

Two pure parts:
- ``edge_events(lines, ...)``: nginx JSON log lines (``reelstream.edge.nginx``'s
  ``log_format cmcd``) to events. CMCD (CTA-5004 §3) in query mode is one URL-encoded
  ``CMCD=`` argument holding ``key=value`` pairs separated by commas: strings quoted,
  booleans as bare keys, numbers plain. Event ids derive from (node, log offset), so a
  line shipped twice keeps its id (for consumers that de-duplicate on it); the shipper
  (``EdgeStack``) saves how far it has shipped once the events are durable, so only a
  crash between the two ships a batch again.
- ``SessionDeliveryProcessor``: one row per session with the delivery as the edges saw
  it (requests, bytes, hits per tier, last buffer and throughput) beside the session's
  user and title from ``PlaybackStarted``: the join analytics asked for.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any
from urllib.parse import unquote

from reelstream.events.model import Event, new_event
from reelstream.processors.base import Outcome, Processor, StateReader
from reelstream.stores.ports import Column, ViewSpec

_EDGE_EVENT_NAMESPACE = uuid.UUID("2d8f5c1e-7a41-4c0b-9a3e-5b7e1f0c6d22")
LONG_LIMIT = 2**63  # Avro long

# Partition key: session_id (every read names one session; edge events and playback events
# of a session land in the same row whatever order they arrive in).
SESSION_DELIVERY = ViewSpec(
    name="session_delivery", partition_key=("session_id",), clustering_key=(),
    columns={"session_id": Column.TEXT, "user_id": Column.TEXT, "title_id": Column.TEXT,
             "requests": Column.BIGINT, "bytes": Column.BIGINT, "by_node": Column.JSON, "hits": Column.BIGINT,
             "last_buffer_ms": Column.BIGINT, "last_throughput_kbps": Column.BIGINT, "last_bitrate_kbps": Column.BIGINT},
    query="how the edges delivered one playback session, beside its user and title")


def parse_cmcd(value: str) -> dict[str, Any]:
    """CMCD key/value pairs (CTA-5004 §3.2): ``br=3200,bl=8000,ot=v,sid="abc",su`` ->
    {"br": 3200, "bl": 8000, "ot": "v", "sid": "abc", "su": True}. Malformed pairs are skipped."""
    out: dict[str, Any] = {}
    for pair in _split_outside_quotes(unquote(value)):
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not key:
            continue
        if not sep:
            out[key] = True
        elif raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
            out[key] = raw[1:-1].replace('\\"', '"')
        else:
            out[key] = _number_or_token(raw)
    return out


def _number_or_token(raw: str) -> int | float | str:
    # The value is the viewer's: "nan", "inf" or "1e999" parse as floats that no field can hold.
    try:
        return int(raw)
    except ValueError:
        pass
    try:
        number = float(raw)
    except ValueError:
        return raw  # a token (ot=v, sf=d, st=v)
    return number if math.isfinite(number) else raw


def _split_outside_quotes(text: str) -> Iterator[str]:
    start, quoted = 0, False
    for i, ch in enumerate(text):
        if ch == '"' and (i == 0 or text[i - 1] != "\\"):
            quoted = not quoted
        elif ch == "," and not quoted:
            yield text[start:i]
            start = i + 1
    if start < len(text):
        yield text[start:]


def _int(value: Any) -> int | None:
    """A CMCD number as an Avro long; None for what is not a number or does not fit one."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return None
    number = int(value)
    return number if -LONG_LIMIT <= number < LONG_LIMIT else None


def edge_event(entry: dict[str, Any], offset: int, producer: str) -> Event | None:
    """One parsed log entry to an ``EdgeRequestServed`` (None for health checks and unsigned requests)."""
    path = entry.get("object") or ""
    if not path.startswith("/packages/"):
        return None
    cmcd_raw = unquote(entry.get("cmcd") or "")
    cmcd = parse_cmcd(cmcd_raw)
    seconds = float(entry.get("request_time") or 0)
    size = int(entry.get("bytes") or 0)
    throughput = int(size * 8 / seconds / 1000) if seconds >= 0.001 and size else None
    session = str(cmcd.get("sid", ""))
    node = str(entry.get("node", ""))
    return new_event("EdgeRequestServed", {
        "session_id": session, "node": node, "tier": str(entry.get("tier", "")),
        "title_id": path.split("/")[2] or None, "object": path, "status": int(entry.get("status", 0)),
        "bytes": size, "request_time_ms": int(seconds * 1000), "cache_status": entry.get("cache") or None,
        "throughput_kbps": throughput, "bitrate_kbps": _int(cmcd.get("br")), "buffer_ms": _int(cmcd.get("bl")),
        "measured_throughput_kbps": _int(cmcd.get("mtp")), "object_duration_ms": _int(cmcd.get("d")),
        "object_type": cmcd.get("ot") if isinstance(cmcd.get("ot"), str) else None,
        "content_id": cmcd.get("cid") if isinstance(cmcd.get("cid"), str) else None, "cmcd": cmcd_raw,
    }, producer=producer, correlation_id=session or f"edge/{node}",
        event_id=str(uuid.uuid5(_EDGE_EVENT_NAMESPACE, f"{node}/{offset}")),
        event_time=datetime.fromisoformat(entry["time"]) if entry.get("time") else None)


def edge_events(lines: Iterable[tuple[int, str]], producer: str,
                skipped: Callable[[int, str, Exception], None] | None = None) -> list[Event]:
    """(byte offset, line) pairs of an access log to events. A line that cannot be read
    (not JSON, or a field no event can carry) is skipped and passed to ``skipped``: the
    viewer writes part of every line, and one bad line must not stop the lines after it."""
    events = []
    for offset, line in lines:
        try:
            entry = json.loads(line)
            event = edge_event(entry, offset, producer) if isinstance(entry, dict) else None
        except (ValueError, TypeError, OverflowError) as e:
            if skipped is not None:
                skipped(offset, line, e)
            continue
        if event is not None:
            events.append(event)
    return events


class SessionDeliveryProcessor(Processor):
    name = "session_delivery"
    topics = ("reel.edge", "reel.playback")
    views = (SESSION_DELIVERY,)

    def primary(self, event: Event) -> tuple[ViewSpec, tuple[Any, ...]] | None:
        if event.type == "EdgeRequestServed" and event["session_id"]:
            return SESSION_DELIVERY, (event["session_id"],)
        if event.type == "PlaybackStarted":
            return SESSION_DELIVERY, (event["session_id"],)
        return None

    def handle(self, event: Event, state: StateReader) -> Outcome:
        row = state.get(SESSION_DELIVERY, (event["session_id"],))
        values: dict[str, Any] = dict(row.values) if row else {
            "session_id": event["session_id"], "user_id": None, "title_id": None, "requests": 0, "bytes": 0,
            "by_node": {}, "hits": 0, "last_buffer_ms": None, "last_throughput_kbps": None,
            "last_bitrate_kbps": None}
        if event.type == "PlaybackStarted":
            values.update(user_id=event["user_id"], title_id=event["title_id"])
            return Outcome().write(SESSION_DELIVERY, values)
        by_node = dict(values["by_node"] or {})
        by_node[event["node"]] = by_node.get(event["node"], 0) + event["bytes"]
        values.update(requests=values["requests"] + 1, bytes=values["bytes"] + event["bytes"], by_node=by_node,
                      hits=values["hits"] + (event["cache_status"] == "HIT"),
                      title_id=values["title_id"] or event["title_id"])
        for column, field in (("last_buffer_ms", "buffer_ms"), ("last_throughput_kbps", "measured_throughput_kbps"),
                              ("last_bitrate_kbps", "bitrate_kbps")):
            if event[field] is not None:
                values[column] = event[field]
        return Outcome().write(SESSION_DELIVERY, values)
