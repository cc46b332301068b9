"""A removed device's own token no longer manages the account: a stolen TV, removed by its
owner, could register itself again with a fresh token and remove the owner's devices."""

from __future__ import annotations

from typing import Any

from tests.functional.test_gateways_embedded import US, sign_up, stack
from tests.unit.gateways.support import drain, grant

__all__ = ["stack"]  # the fixture


async def test_a_removed_devices_token_cannot_register_remove_or_read(stack: dict[str, Any]) -> None:
    client = stack["client"]
    owner = await sign_up(client, "owner@example.com", device_type="tv", security="hardware")
    r = await client.post("/auth/sessions", json={"email": "owner@example.com", "password": "correct horse"})
    account_token = {"Authorization": f"Bearer {(await r.json())['token']}", **US}
    r = await client.post("/auth/devices", headers=account_token,
                          json={"name": "phone", "device_type": "phone", "security_level": "software"})
    phone = (await r.json())["device_id"]
    stolen = owner["auth"]  # the TV's device-bound token
    me = await (await client.get("/auth/me", headers=account_token)).json()
    profile = me["profiles"][0]["profile_id"]
    assert (await client.get("/auth/me", headers=stolen)).status == 200
    assert (await client.delete(f"/auth/devices/{owner['device_id']}", headers=account_token)).status == 204

    attempts = [("POST", "/auth/devices", {"name": "tv again", "device_type": "tv", "security_level": "hardware"}),
                ("DELETE", f"/auth/devices/{phone}", None), ("GET", "/auth/devices", None), ("GET", "/auth/me", None),
                ("POST", "/auth/profiles", {"name": "thief"}),
                # switching profile would mint the removed TV a fresh token; lowering a band needs no password
                ("POST", f"/auth/profiles/{profile}/sessions", {}), ("PATCH", f"/auth/profiles/{profile}", {"max_age": 0})]
    for method, path, body in attempts:
        r = await client.request(method, path, json=body, headers=stolen)
        assert r.status == 403 and "removed" in (await r.json())["error"], (method, path, r.status)
    r = await client.get("/auth/devices", headers=account_token)
    active = {d["device_id"]: d["active"] for d in (await r.json())["devices"]}
    assert active == {phone: True, owner["device_id"]: False}, "the phone is still there"


async def test_a_removed_devices_token_cannot_read_the_profiles_history_or_the_downloads(
        stack: dict[str, Any]) -> None:
    """The stolen TV's token kept reading where the owner's profile stopped every title (and
    the account's downloads) for the rest of its 12 hours: it reached only the device check
    that writes (heartbeats) and the account calls."""
    client = stack["client"]
    owner = await sign_up(client, "viewer@example.com", device_type="tv", security="hardware")
    r = await client.post("/auth/sessions", json={"email": "viewer@example.com", "password": "correct horse"})
    account_token = {"Authorization": f"Bearer {(await r.json())['token']}", **US}
    stolen = owner["auth"]
    reads = ("/playback/resume/film-1", "/playback/continue-watching", "/downloads/licenses")
    for path in reads:
        assert (await client.get(path, headers=stolen)).status == 200, path
    assert (await client.delete(f"/auth/devices/{owner['device_id']}", headers=account_token)).status == 204

    for path in reads:
        r = await client.get(path, headers=stolen)
        assert r.status == 403 and "removed" in (await r.json())["error"], (path, r.status)
        assert (await client.get(path, headers=account_token)).status == 200, path  # the account's own token reads


async def test_a_removed_devices_playback_ticket_gets_no_more_manifests(stack: dict[str, Any]) -> None:
    """Its manifests carried freshly signed edge URLs, good for hours past the request, for
    as long as the ticket lived (a download's: 30 days)."""
    client = stack["client"]
    owner = await sign_up(client, "tickets@example.com", device_type="tv", security="hardware")
    grant(stack["runtime"], owner["account_id"], "sub-tickets")
    drain(stack["runtime"])
    r = await client.post("/auth/sessions", json={"email": "tickets@example.com", "password": "correct horse"})
    account_token = {"Authorization": f"Bearer {(await r.json())['token']}", **US}
    r = await client.get("/manifests/titles/film-1/master.m3u8", headers=owner["auth"])
    assert r.status == 200, await r.text()
    ticket = r.headers["X-Reel-Ticket"]
    paths = [f"/manifests/t/{ticket}/{name}" for name in ("manifest.mpd", "master.m3u8", "audio-en.m3u8")]
    for path in paths:
        assert (await client.get(path, headers=US)).status == 200, path
    assert (await client.delete(f"/auth/devices/{owner['device_id']}", headers=account_token)).status == 204

    for path in paths:
        r = await client.get(path, headers=US)
        assert r.status == 403 and "removed" in (await r.json())["error"], (path, r.status)
