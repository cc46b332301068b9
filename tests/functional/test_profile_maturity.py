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


async def test_lowering_a_limit_needs_no_password_and_raising_one_asks_for_it(tmp_path: Path) -> None:
    async with embedded_gateways(tmp_path, default_country="US") as g:
        client = g["client"]
        await client.post("/auth/accounts", json={"email": "low@example.com", "password": PASSWORD, "country": "US"})
        tv = await profile_device(client, "low@example.com", "Teen", 16)
        path = f"/auth/profiles/{tv['profile_id']}"
        lowered = await client.patch(path, json={"max_age": 13}, headers=tv["auth"])
        assert lowered.status == 200 and (await lowered.json())["max_age"] == 13
        asked = await client.patch(path, json={"max_age": 16}, headers=tv["auth"])
        error = (await asked.json())["error"]
        assert asked.status == 401 and "raising Teen's limit from 13+ to 16+ needs the account's password" in error
        wrong = await client.patch(path, json={"max_age": 16, "password": "nope"}, headers=tv["auth"])
        assert wrong.status == 401 and "password is wrong" in (await wrong.json())["error"]
        # A password sent is checked even where none is needed: a lowering with a guess must not
        # pass for a right password and clear the count of wrong ones.
        guessed = await client.patch(path, json={"max_age": 7, "password": "nope"}, headers=tv["auth"])
        assert guessed.status == 401 and "password is wrong" in (await guessed.json())["error"]
        missing = await client.patch("/auth/profiles/p-none", json={"max_age": 0}, headers=tv["auth"])
        assert missing.status == 404 and "no profile 'p-none'" in (await missing.json())["error"]


async def test_a_device_switches_profile_down_freely_and_up_only_with_the_password(tmp_path: Path) -> None:
    """"Who's watching?": the main profile's token switches to Kids without a password; the
    Kids token gets back to main (18+) only with it, guesses throttled like sign-ins."""
    async with embedded_gateways(tmp_path, default_country="US") as g:
        client, runtime = g["client"], g["runtime"]
        publish_title(runtime, g["keys"], "thriller", rating=("MPAA", "R"))
        account = await (await client.post("/auth/accounts", json={
            "email": "switch@example.com", "password": PASSWORD, "country": "US"})).json()
        grant(runtime, account["account_id"], "sub-1")
        drain(runtime)
        main = await profile_device(client, "switch@example.com", None, None)
        kids = await (await client.post("/auth/profiles", json={"name": "Kids", "max_age": 7},
                                        headers=main["auth"])).json()

        down = await client.post(f"/auth/profiles/{kids['profile_id']}/sessions", json={}, headers=main["auth"])
        switched = await down.json()
        assert down.status == 201, switched
        assert switched["profile_id"] == kids["profile_id"] and switched["profile"]["max_age"] == 7
        assert switched["device_id"] is not None, "the device stays the same: its token stays device-bound"
        kid_auth = {"Authorization": f"Bearer {switched['token']}", **US}
        refused = await client.get("/manifests/titles/thriller/manifest.mpd", headers=kid_auth)
        assert refused.status == 403 and (await refused.json())["reason"] == "PROFILE_MATURITY"

        up = f"/auth/profiles/{main['profile_id']}/sessions"
        asked = await client.post(up, json={}, headers=kid_auth)
        assert asked.status == 401
        assert "switching to main (18+) from a profile limited to 7+ needs the account's password" in \
            (await asked.json())["error"]
        for attempt in range(9):  # with the lowering below: ten wrong passwords
            assert (await client.post(up, json={"password": "guess"}, headers=kid_auth)).status == 401
            if attempt == 4:  # a lowering with a guess in between resets nothing
                lowering = await client.patch(f"/auth/profiles/{kids['profile_id']}",
                                              json={"max_age": 0, "password": "guess"}, headers=kid_auth)
                assert lowering.status == 401
        held = await client.post(up, json={"password": PASSWORD}, headers=kid_auth)
        assert held.status == 429 and int(held.headers["Retry-After"]) > 0, "the right password waits too"
        assert "10 wrong passwords for this account's profile changes" in (await held.json())["error"]
        unknown = await client.post("/auth/profiles/p-none/sessions", json={}, headers=kid_auth)
        assert unknown.status == 404


async def test_the_right_password_switches_a_kids_device_back_up(tmp_path: Path) -> None:
    async with embedded_gateways(tmp_path, default_country="US") as g:
        client, runtime = g["client"], g["runtime"]
        publish_title(runtime, g["keys"], "thriller", rating=("MPAA", "R"))
        account = await (await client.post("/auth/accounts", json={
            "email": "up@example.com", "password": PASSWORD, "country": "US"})).json()
        grant(runtime, account["account_id"], "sub-1")
        drain(runtime)
        kid = await profile_device(client, "up@example.com", "Kids", 7)
        me = await (await client.get("/auth/me", headers=kid["auth"])).json()
        main_id = next(p["profile_id"] for p in me["profiles"] if p["name"] == "main")
        up = await client.post(f"/auth/profiles/{main_id}/sessions", json={"password": PASSWORD}, headers=kid["auth"])
        assert up.status == 201, await up.text()
        auth = {"Authorization": f"Bearer {(await up.json())['token']}", **US}
        assert (await client.get("/manifests/titles/thriller/manifest.mpd", headers=auth)).status == 200
