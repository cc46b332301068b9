"""Profiles carry a maturity limit (an age band: 0, 7, 13, 16, 18) that the manifest and
downloads gateways hold titles' ratings to before any signed URL or key is handed out;
lifting a limit needs the account's password. And no session opens for a title the
account is not entitled to."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from tests.unit.gateways.support import drain, embedded_gateways, grant, publish_title

US = {"X-Client-Country": "US"}
PASSWORD = "correct horse"


async def profile_device(client: TestClient, email: str, profile_name: str | None, max_age: int | None
                         ) -> dict[str, Any]:
    """A TV signed in as the account's main profile, or as a new one with ``max_age``."""
    session = await (await client.post("/auth/sessions", json={"email": email, "password": PASSWORD})).json()
    auth = {"Authorization": f"Bearer {session['token']}"}
    profile_id = session["profile_id"]
    if profile_name is not None:
        made = await client.post("/auth/profiles", json={"name": profile_name, "max_age": max_age}, headers=auth)
        assert made.status == 201, await made.text()
        profile_id = (await made.json())["profile_id"]
        session = await (await client.post("/auth/sessions", json={
            "email": email, "password": PASSWORD, "profile_id": profile_id})).json()
        auth = {"Authorization": f"Bearer {session['token']}"}
    device = await (await client.post("/auth/devices", json={"name": "tv", "device_type": "tv",
                                                              "security_level": "hardware"}, headers=auth)).json()
    return {"profile_id": profile_id, "auth": {"Authorization": f"Bearer {device['token']}", **US},
            "account_auth": auth}


async def test_a_kids_profile_opens_no_session_and_downloads_nothing_above_its_band(tmp_path: Path) -> None:
    async with embedded_gateways(tmp_path, default_country="US") as g:
        client, runtime = g["client"], g["runtime"]
        publish_title(runtime, g["keys"], "thriller", rating=("MPAA", "R"))
        drain(runtime)
        account = await (await client.post("/auth/accounts", json={
            "email": "family@example.com", "password": PASSWORD, "country": "US"})).json()
        grant(runtime, account["account_id"], "sub-1")
        drain(runtime)
        kid = await profile_device(client, "family@example.com", "Kids", 7)
        parent = await profile_device(client, "family@example.com", None, None)

        refused = await client.get("/manifests/titles/thriller/manifest.mpd", headers=kid["auth"])
        body = await refused.json()
        assert refused.status == 403 and body["reason"] == "PROFILE_MATURITY"
        assert "rated R (MPAA, 18+)" in body["error"] and "up to 7+" in body["error"]
        assert "X-Reel-Ticket" not in refused.headers
        assert (await client.get("/manifests/titles/film-1/manifest.mpd", headers=kid["auth"])).status == 200  # PG
        download = await client.post("/downloads/licenses", json={"title_id": "thriller"}, headers=kid["auth"])
        assert download.status == 403 and (await download.json())["reason"] == "PROFILE_MATURITY"
        assert (await client.get("/manifests/titles/thriller/manifest.mpd", headers=parent["auth"])).status == 200

        # Lifting the limit needs the account's password, whoever's token asks.
        path = f"/auth/profiles/{kid['profile_id']}"
        wrong = await client.patch(path, json={"password": "guessed wrong", "max_age": 18}, headers=kid["auth"])
        assert wrong.status == 401
        odd = await client.patch(path, json={"password": PASSWORD, "max_age": 8}, headers=kid["auth"])
        assert odd.status == 400 and "max_age must be one of 0, 7, 13, 16, 18" in (await odd.json())["error"]
        lifted = await client.patch(path, json={"password": PASSWORD, "max_age": 18}, headers=parent["auth"])
        assert lifted.status == 200 and (await lifted.json())["max_age"] == 18
        assert (await client.get("/manifests/titles/thriller/manifest.mpd", headers=kid["auth"])).status == 200
        me = await (await client.get("/auth/me", headers=parent["account_auth"])).json()
        assert {p["name"]: p["max_age"] for p in me["profiles"]} == {"main": 18, "Kids": 18}


async def test_no_session_opens_for_a_title_the_account_is_not_entitled_to(tmp_path: Path) -> None:
    async with embedded_gateways(tmp_path, default_country="US") as g:
        client = g["client"]
        await client.post("/auth/accounts", json={"email": "none@example.com", "password": PASSWORD, "country": "US"})
        tv = await profile_device(client, "none@example.com", None, None)
        refused = await client.get("/manifests/titles/film-1/master.m3u8", headers=tv["auth"])
        assert refused.status == 403 and (await refused.json())["reason"] == "NO_ENTITLEMENT"
        assert "X-Reel-Ticket" not in refused.headers  # no ticket, so no signed segment or subtitle URL
