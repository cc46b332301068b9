"""The player's calls to the gateways, as ``reelstream/web/app.js`` makes them: sign in,
register this device (a device-bound token), read the resume point, open a playback
session with the manifest, post heartbeats."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from reelstream.player.client.errors import RequestFailed
from reelstream.player.client.fetch import Http
from reelstream.player.client.timeline import Beat


@dataclass(frozen=True)
class Device:
    """A signed-in device: its id and device-bound token."""

    account_id: str
    device_id: str
    token: str


async def sign_up(http: Http, base: str, email: str, password: str, country: str) -> str:
    """Create an account; returns its id."""
    reply = await http.request("sign-up", "POST", f"{base}/auth/accounts", ok=(201,),
                               json={"email": email, "password": password, "country": country})
    return str(reply.json()["account_id"])


async def sign_in(http: Http, base: str, email: str, password: str, device_id: str | None = None,
                  device_type: str = "browser", security_level: str = "software") -> Device:
    """A device-bound session: with ``device_id`` sign in as that device, else register a new one."""
    body: dict[str, Any] = {"email": email, "password": password}
    if device_id:
        body["device_id"] = device_id
    session = (await http.request("sign-in", "POST", f"{base}/auth/sessions", json=body, ok=(201,))).json()
    if device_id:
        return Device(session["account_id"], device_id, session["token"])
    device = (await http.request("device registration", "POST", f"{base}/auth/devices", token=session["token"],
                                 json={"name": f"reel-player {device_type}", "device_type": device_type,
                                       "security_level": security_level}, ok=(201,))).json()
    return Device(session["account_id"], device["device_id"], device["token"])


async def resume_position(http: Http, base: str, token: str, title_id: str) -> float:
    """Where to start, in seconds, as the web page decides it: the resume point, else the
    last saved position (titles under 5 minutes always "restart" but keep it), never a
    watched title's end."""
    doc = (await http.request("resume", "GET", f"{base}/playback/resume/{quote(title_id)}", token=token)).json()
    if doc["status"] == "resume":
        return float(doc["position_ms"]) / 1000
    if doc["status"] == "watched":
        return 0.0
    return float(doc.get("last_position_ms") or 0) / 1000


BEAT_ATTEMPTS = 3
BEAT_BACKOFF_S = 0.5  # then 1 s: a gateway restart or a lost answer, not an outage to wait out


async def post_beat(http: Http, base: str, token: str, beat: Beat, session_id: str, title_id: str,
                    extra: dict[str, Any], seq: int) -> dict[str, Any]:
    """POST the session's ``seq``-th heartbeat (CMCD names: sid, cid, br, bl, mtp); returns
    the body sent. A 5xx or no answer is retried with the same body: the gateway derives
    the events' ids from ``seq``, so a retry of a post that did land counts once."""
    body: dict[str, Any] = {"sid": session_id, "cid": title_id, "event": beat.event, "seq": seq,
                            "position_ms": round(beat.position_s * 1000), "state": beat.state,
                            "rebuffer_ms": round(beat.rebuffer_s * 1000), "ts": int(time.time() * 1000),
                            **{k: v for k, v in extra.items() if v is not None}}
    if beat.end_reason:
        body["end_reason"] = beat.end_reason
    for attempt in range(1, BEAT_ATTEMPTS + 1):
        try:
            # The clock at each try: the gateway takes ts as (sent_ts - ts) before its own now.
            await http.request("heartbeat", "POST", f"{base}/playback/heartbeats", token=token,
                               json={**body, "sent_ts": int(time.time() * 1000)}, ok=(204,))
            return body
        except RequestFailed as failed:
            if not failed.transient or attempt == BEAT_ATTEMPTS:
                raise
            await asyncio.sleep(BEAT_BACKOFF_S * attempt)
    raise AssertionError("unreachable")
