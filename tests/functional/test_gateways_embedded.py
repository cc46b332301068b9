"""The gateways end to end on the embedded runtime (SQLite log and state), through the
real app factory: sign-up to license, manifests per device, heartbeats to resume, bad
input refused with nothing written."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from reelstream.identity.tokens import b64url
from reelstream.runtime import Runtime
from tests.unit.gateways.support import drain, embedded_gateways, grant, publish_title

US = {"X-Client-Country": "US"}


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    async with embedded_gateways(tmp_path) as deployed:
        yield deployed


async def sign_up(client: TestClient, email: str, device_type: str = "browser", security: str = "software"
                  ) -> dict[str, Any]:
    r = await client.post("/auth/accounts", json={"email": email, "password": "correct horse", "country": "US"})
    assert r.status == 201, await r.text()
    account = await r.json()
    r = await client.post("/auth/sessions", json={"email": email, "password": "correct horse"})
    token = (await r.json())["token"]
    r = await client.post("/auth/devices", json={"name": "d", "device_type": device_type,
                                                 "security_level": security},
                          headers={"Authorization": f"Bearer {token}"})
    assert r.status == 201, await r.text()
    device = await r.json()
    return {"account_id": account["account_id"], "device_id": device["device_id"],
            "auth": {"Authorization": f"Bearer {device['token']}", **US}}


def services_of(client: TestClient) -> Any:
    from reelstream.gateways.keys import SERVICES

    return client.server.app[SERVICES]


def kid_b64(package: Any, key_class: str) -> str:
    kid = next(t.key_id for t in package.tracks if t.key_class == key_class)
    return b64url(bytes.fromhex(kid))


def log_size(runtime: Runtime) -> int:
    return sum(sum(runtime.log.end_offsets(t).values()) for t in ("reel.licenses", "reel.playback"))


async def open_session(client: TestClient, user: dict[str, Any], name: str = "manifest.mpd") -> tuple[str, str]:
    r = await client.get(f"/manifests/titles/film-1/{name}", headers=user["auth"])
    assert r.status == 200, await r.text()
    return r.headers["X-Reel-Ticket"], await r.text()


async def test_software_browser_gets_sd_keys_only_and_every_decision_is_an_event(stack: dict[str, Any]) -> None:
    client, runtime, package = stack["client"], stack["runtime"], stack["package"]
    user = await sign_up(client, "a@example.com")
    grant(runtime, user["account_id"], "sub-1")
    drain(runtime)
    ticket, mpd = await open_session(client, user)
    assert 'height="360"' in mpd and 'height="1080"' not in mpd and 'height="2160"' not in mpd
    assert "http://edge.test/s/" in mpd and f"ticket={ticket}" in mpd

    # Asking for every key the manifest could name: the HD and UHD keys are withheld, the rest granted.
    asked = [kid_b64(package, c) for c in ("SD", "HD", "UHD", "AUDIO")]
    r = await client.post(f"/licenses/clearkey?ticket={ticket}", headers=US,
                          data=json.dumps({"kids": asked, "type": "temporary"}))
    assert r.status == 200, await r.text()
    jwks = await r.json()
    assert jwks["type"] == "temporary"
    assert [k["kid"] for k in jwks["keys"]] == [kid_b64(package, "SD"), kid_b64(package, "AUDIO")]
    assert all(k["kty"] == "oct" and len(k["k"]) == 22 and "=" not in k["k"] for k in jwks["keys"])

    # Nothing the device may have: refused.
    r = await client.post(f"/licenses/clearkey?ticket={ticket}", headers=US,
                          data=json.dumps({"kids": [kid_b64(package, "HD")]}))
    assert r.status == 403 and (await r.json())["reason"] == "SECURITY_LEVEL"

    await services_of(client).publisher.settled()  # the decisions' events are emitted, not awaited
    reader = runtime.log.consumer(["reel.licenses"], None)
    events = [runtime.codec.decode(rec.value) for rec in reader.poll(100, 1.0)]
    reader.close()
    assert [e.type for e in events] == ["LicenseGranted", "LicenseDenied"]
    hex_of = {c: next(t.key_id for t in package.tracks if t.key_class == c) for c in ("SD", "HD", "UHD", "AUDIO")}
    assert events[0]["key_ids"] == [hex_of["SD"], hex_of["AUDIO"]]
    assert [(w["key_id"], w["reason"]) for w in events[0]["withheld_keys"]] == [
        (hex_of["HD"], "SECURITY_LEVEL"), (hex_of["UHD"], "SECURITY_LEVEL")]
    assert events[1]["reason"] == "SECURITY_LEVEL" and events[0]["user_id"] == user["account_id"]


async def test_hardware_tv_gets_uhd_and_hls_playlists_follow_the_ticket(stack: dict[str, Any]) -> None:
    client = stack["client"]
    user = await sign_up(client, "tv@example.com", "tv", "hardware")
    grant(stack["runtime"], user["account_id"], "sub-tv")
    drain(stack["runtime"])
    ticket, master = await open_session(client, user, "master.m3u8")
    assert "RESOLUTION=3840x2160" in master
    playlist_url = next(line for line in master.splitlines() if line.endswith("h264-2160p.m3u8"))
    assert f"/manifests/t/{ticket}/" in playlist_url
    r = await client.get("/" + playlist_url.split("://", 1)[1].split("/", 1)[1], headers=US)
    assert r.status == 200, await r.text()
    assert "#EXT-X-ENDLIST" in await r.text()


async def test_heartbeats_then_resume_and_continue_watching(stack: dict[str, Any]) -> None:
    client, runtime, clock = stack["client"], stack["runtime"], stack["clock"]
    user = await sign_up(client, "b@example.com")
    beat = {"sid": "s1", "cid": "film-1", "event": "start", "position_ms": 0, "startup_ms": 900}
    assert (await client.post("/playback/heartbeats", json=beat, headers=user["auth"])).status == 204
    for position in (30_000, 60_000, 240_000):
        clock.advance(30)
        r = await client.post("/playback/heartbeats", json={**beat, "event": "heartbeat", "position_ms": position,
                                                            "br": 800, "bl": 12_000, "rendition_id": "h264-360p"},
                              headers=user["auth"])
        assert r.status == 204, await r.text()
    drain(runtime)
    r = await client.get("/playback/resume/film-1", headers=user["auth"])
    body = await r.json()
    assert body["status"] == "resume" and body["position_ms"] == 240_000
    r = await client.get("/playback/continue-watching", headers=user["auth"])
    assert [i["title_id"] for i in (await r.json())["items"]] == ["film-1"]


async def test_a_retried_report_is_counted_once(stack: dict[str, Any]) -> None:
    """A player whose 204 was lost posts the report again with the same ``seq``: the log
    holds both copies under one event id, and the session's QoE counts the stall once."""
    from reelstream.processors.sessions.logic import LIVE_SESSIONS

    client, runtime, clock = stack["client"], stack["runtime"], stack["clock"]
    user = await sign_up(client, "retry@example.com")
    reports = [{"sid": "s-retry", "cid": "film-1", "event": "start", "position_ms": 0, "startup_ms": 700, "seq": 0},
               {"sid": "s-retry", "cid": "film-1", "event": "heartbeat", "position_ms": 30_000, "rebuffer_ms": 1_200,
                "seq": 1},
               {"sid": "s-retry", "cid": "film-1", "event": "stop", "position_ms": 60_000, "rebuffer_ms": 300,
                "seq": 2}]
    for report in reports:
        for _ in range(2):
            r = await client.post("/playback/heartbeats", json=report, headers=user["auth"])
            assert r.status == 204, await r.text()
        clock.advance(30)
    reader = runtime.log.consumer(["reel.playback"], group_id=None)
    copies = [runtime.codec.decode(rec.value) for rec in reader.poll(max_records=1000, timeout=2)]
    reader.close()
    ids = [e.event_id for e in copies if e["session_id"] == "s-retry"]
    assert len(ids) == 8 and len(set(ids)) == 4  # start, beat, beat + stop: each written twice, one id each
    drain(runtime)
    row = runtime.state.get(LIVE_SESSIONS, (user["account_id"], "s-retry"))
    assert row is not None and row.values["ended"]
    qoe = row.values["qoe"]
    assert (qoe["rebuffer_ms"], qoe["events"], qoe["playing_ms"]) == (1_500, 4, 60_000)


async def test_reports_without_seq_are_each_new_and_a_bad_seq_is_refused(stack: dict[str, Any]) -> None:
    client, runtime = stack["client"], stack["runtime"]
    user = await sign_up(client, "noseq@example.com")
    report = {"sid": "s-noseq", "cid": "film-1", "position_ms": 1_000, "rebuffer_ms": 100}
    for _ in range(2):
        assert (await client.post("/playback/heartbeats", json=report, headers=user["auth"])).status == 204
    before = log_size(runtime)
    for bad in (-1, 2 ** 31, "3", 1.5):
        r = await client.post("/playback/heartbeats", json={**report, "seq": bad}, headers=user["auth"])
        assert r.status == 400 and "seq" in (await r.json())["error"], bad
    r = await client.post("/playback/heartbeats", json={**report, "event": "start", "state": "playing"},
                          headers=user["auth"])
    assert r.status == 400 and "'state' must be one of" in (await r.json())["error"]
    for bad, says in (({"event": "start", "startup_ms": -5}, "'startup_ms' must be between"),
                      ({"cdn_node": "x" * 10_000}, "'cdn_node' must be 1 to 256"),
                      ({"rendition_id": "r" * 300}, "'rendition_id' must be 1 to 256")):
        r = await client.post("/playback/heartbeats", json={**report, **bad}, headers=user["auth"])
        assert r.status == 400 and says in (await r.json())["error"], bad
    assert log_size(runtime) == before
    reader = runtime.log.consumer(["reel.playback"], group_id=None)
    ids = {runtime.codec.decode(rec.value).event_id for rec in reader.poll(max_records=1000, timeout=2)}
    reader.close()
    assert len(ids) == 2


@pytest.mark.parametrize("case", ["malformed", "unknown_kid", "forged", "expired", "oversized", "no_token"])
async def test_bad_license_requests_are_4xx_with_a_message_and_write_nothing(stack: dict[str, Any],
                                                                             case: str) -> None:
    client, runtime, package, clock = stack["client"], stack["runtime"], stack["package"], stack["clock"]
    user = await sign_up(client, f"{case}@example.com")
    grant(runtime, user["account_id"], f"sub-{case}")
    drain(runtime)
    ticket, _ = await open_session(client, user)
    before = log_size(runtime)
    body: Any = json.dumps({"kids": [kid_b64(package, "SD")]})
    url = f"/licenses/clearkey?ticket={ticket}"
    if case == "malformed":
        body = b"{not json"
    elif case == "unknown_kid":
        body = json.dumps({"kids": [b64url(b"\x01" * 16)]})
    elif case == "forged":
        head, claims, _sig = ticket.split(".")
        url = f"/licenses/clearkey?ticket={head}.{claims}.{b64url(b'x' * 32)}"
    elif case == "expired":
        clock.advance(7 * 3600)
    elif case == "oversized":
        body = json.dumps({"kids": ["A" * 100_000]})
    elif case == "no_token":
        url = "/licenses/clearkey"
    r = await client.post(url, data=body, headers=US)
    expected = {"malformed": 400, "unknown_kid": 400, "forged": 401, "expired": 401, "oversized": 413,
                "no_token": 401}[case]
    assert r.status == expected, await r.text()
    message = (await r.json())["error"]
    assert len(message) > 10
    await services_of(client).publisher.settled()
    assert log_size(runtime) == before


async def test_a_position_beyond_the_duration_is_refused_and_nothing_written(stack: dict[str, Any]) -> None:
    client, runtime = stack["client"], stack["runtime"]
    user = await sign_up(client, "c@example.com")
    before = log_size(runtime)
    r = await client.post("/playback/heartbeats", headers=user["auth"],
                          json={"sid": "s", "cid": "film-1", "position_ms": 600_000 + 2_001})
    assert r.status == 400 and "outside title film-1" in (await r.json())["error"]
    r = await client.post("/playback/heartbeats", headers=user["auth"], data=b"[1,")
    assert r.status == 400
    assert log_size(runtime) == before


async def test_a_position_just_past_the_end_is_the_end(stack: dict[str, Any]) -> None:
    """Players report the packaged media's end, which can pass the master's duration by a frame or two."""
    client, runtime = stack["client"], stack["runtime"]
    user = await sign_up(client, "end@example.com")
    before = log_size(runtime)
    r = await client.post("/playback/heartbeats", headers=user["auth"],
                          json={"sid": "s-end", "cid": "film-1", "position_ms": 600_053})
    assert r.status in (200, 202, 204), await r.text()
    assert log_size(runtime) == before + 1
    reader = runtime.log.consumer(["reel.playback"], group_id=None)
    beats = [runtime.codec.decode(rec.value) for rec in reader.poll(max_records=1000, timeout=2)]
    reader.close()
    assert [b["position_ms"] for b in beats if b["session_id"] == "s-end"] == [600_000]


async def test_openapi_documents_every_gateway(stack: dict[str, Any]) -> None:
    for name in ("auth", "licenses", "manifests", "playback", "downloads"):
        r = await stack["client"].get(f"/{name}/openapi.json")
        doc = await r.json()
        assert doc["openapi"].startswith("3.") and doc["paths"], name
        if name == "playback":  # a player's retry key is part of the contract
            body = doc["paths"]["/heartbeats"]["post"]["requestBody"]["content"]["application/json"]
            assert body["schema"]["properties"]["seq"] == {"type": "integer", "minimum": 0, "maximum": 2 ** 31 - 1}


async def test_a_finished_episode_puts_the_next_one_in_continue_watching(stack: dict[str, Any]) -> None:
    """Issue #5: past 90 %, or in the end credits, an episode counts as watched and the next
    episode (across seasons, from the catalog's series data) enters "continue watching"."""
    client, runtime, clock, keys = stack["client"], stack["runtime"], stack["clock"], stack["keys"]
    show = {"series_id": "the-show", "series_title": "The Show"}
    for title_id, season, episode in (("show-s1e2", 1, 2), ("show-s1e1", 1, 1), ("show-s2e1", 2, 1)):
        publish_title(runtime, keys, title_id, duration_s=600, end_credits_start_ms=480_000,
                      series={**show, "season": season, "episode": episode})
    drain(runtime)
    user = await sign_up(client, "series@example.com")

    async def watch(title_id: str, position_ms: int) -> None:
        for event, position in (("start", 0), ("stop", position_ms)):
            clock.advance(30)
            r = await client.post("/playback/heartbeats", headers=user["auth"], json={
                "sid": f"s-{title_id}", "cid": title_id, "event": event, "position_ms": position})
            assert r.status == 204, await r.text()
        drain(runtime)

    async def listed() -> list[tuple[str, str]]:
        r = await client.get("/playback/continue-watching", headers=user["auth"])
        return [(i["title_id"], i["status"]) for i in (await r.json())["items"]]

    await watch("show-s1e1", 300_000)  # half way: resume it
    assert await listed() == [("show-s1e1", "resume")]
    await watch("show-s1e1", 570_000)  # 95 %: watched, the next episode is offered
    assert await listed() == [("show-s1e2", "next_episode")]
    r = await client.get("/playback/resume/show-s1e1", headers=user["auth"])
    assert (await r.json())["status"] == "watched"
    await watch("show-s1e2", 490_000)  # 82 %, but in the end credits (from 480 s): watched
    assert await listed() == [("show-s2e1", "next_episode")]
    await watch("show-s2e1", 600_000)  # the finale: nothing after it
    assert await listed() == []


@pytest.mark.parametrize("path", ["/playback/heartbeats", "/auth/sessions", "/licenses/clearkey"])
async def test_a_body_nested_too_deeply_is_a_400_not_a_500(stack: dict[str, Any], path: str) -> None:
    # A 3-KB body of nested arrays hit the JSON decoder's recursion limit: a 500 on every JSON endpoint.
    client = stack["client"]
    user = await sign_up(client, f"deep{len(path)}@example.com")
    grant(stack["runtime"], user["account_id"], f"sub-deep{len(path)}")
    drain(stack["runtime"])
    query = ""
    if path == "/licenses/clearkey":
        ticket, _ = await open_session(client, user)
        query = f"?ticket={ticket}"
    body = '{"kids": ["S7O9frd7NniLQT2Xf96PCw"], "sid": "s", "x": ' + "[" * 1500 + "]" * 1500 + "}"
    r = await client.post(path + query, data=body, headers={**user["auth"], "Content-Type": "application/json"})
    assert r.status == 400 and "nested too deeply" in (await r.json())["error"]


async def test_a_device_whose_clock_is_slow_still_gets_the_newest_position(stack: dict[str, Any]) -> None:
    # A TV whose clock is an hour slow stamped its live beats an hour ago: they lost resume to
    # the tablet's older ones. With sent_ts the gateway keeps each beat's age by the device's
    # own clock instead; a beat queued offline keeps its age too.
    client, runtime, clock = stack["client"], stack["runtime"], stack["clock"]
    tablet = await sign_up(client, "skew@example.com", device_type="tablet")
    r = await client.post("/auth/sessions", json={"email": "skew@example.com", "password": "correct horse"})
    token = (await r.json())["token"]
    r = await client.post("/auth/devices", json={"name": "tv", "device_type": "tv", "security_level": "software"},
                          headers={"Authorization": f"Bearer {token}"})
    assert r.status == 201, await r.text()
    tv = {"Authorization": f"Bearer {(await r.json())['token']}", **US}
    now_ms, hour = int(clock() * 1000), 3600 * 1000
    beat = {"cid": "film-1", "event": "heartbeat"}
    # The tablet (right clock) played until 5 minutes ago; the TV (an hour slow) plays now.
    assert (await client.post("/playback/heartbeats", headers=tablet["auth"], json={
        **beat, "sid": "tablet", "position_ms": 200_000, "ts": now_ms - 300_000, "sent_ts": now_ms})).status == 204
    r = await client.post("/playback/heartbeats", headers=tv, json={
        **beat, "sid": "tv", "position_ms": 500_000, "ts": now_ms - hour, "sent_ts": now_ms - hour})
    assert r.status == 204, await r.text()
    # Then a beat the TV queued offline 2 days ago (by its clock) syncs: older than both.
    assert (await client.post("/playback/heartbeats", headers=tv, json={
        **beat, "sid": "tv-offline", "position_ms": 60_000, "ts": now_ms - hour - 48 * hour,
        "sent_ts": now_ms - hour})).status == 204
    drain(runtime)
    body = await (await client.get("/playback/resume/film-1", headers=tablet["auth"])).json()
    assert body["position_ms"] == 500_000 and body["device_type"] == "tv", body
    assert body["updated_ms"] == now_ms, body


async def test_beats_synced_a_day_late_do_not_overwrite_a_newer_position(stack: dict[str, Any]) -> None:
    # Offline play on a downloaded title syncs its beats when the device is back online, up
    # to the download's 30 days later: they were stamped "now" after 24 h and won resume.
    client, runtime, clock = stack["client"], stack["runtime"], stack["clock"]
    tv = await sign_up(client, "late@example.com", device_type="tv", security="hardware")
    r = await client.post("/auth/sessions", json={"email": "late@example.com", "password": "correct horse"})
    token = (await r.json())["token"]
    r = await client.post("/auth/devices", json={"name": "tablet", "device_type": "tablet",
                                                 "security_level": "software"},
                          headers={"Authorization": f"Bearer {token}"})
    tablet = {"Authorization": f"Bearer {(await r.json())['token']}", **US}
    now_ms = int(clock() * 1000)
    beat = {"cid": "film-1", "event": "heartbeat"}
    assert (await client.post("/playback/heartbeats", headers=tv["auth"],
                              json={**beat, "sid": "on-tv", "position_ms": 400_000, "ts": now_ms})).status == 204
    r = await client.post("/playback/heartbeats", headers=tablet,
                          json={**beat, "sid": "on-plane", "position_ms": 150_000, "ts": now_ms - 25 * 3600 * 1000})
    assert r.status == 204
    drain(runtime)
    body = await (await client.get("/playback/resume/film-1", headers=tv["auth"])).json()
    assert body["position_ms"] == 400_000, body
