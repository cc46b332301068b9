"""Tickets outlive what they were minted for; the license server checks that it still holds.

Through the real app factory on the embedded runtime: a returned download's ticket gets no
keys (so returning downloads cannot lift the download limit), a removed device's tickets
get none, withdrawn offline rights stop persistent licenses, and streaming a download
online leaves the download's 30-day expiry alone. Plus a JSON body with a lone UTF-16
surrogate is a 400 naming the field, not a 500."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from reelstream.config import Settings
from reelstream.gateways.app import create_app
from reelstream.gateways.keys import SERVICES
from reelstream.identity.accounts import DEVICES
from reelstream.processors.licenses.logic import LICENSES
from reelstream.runtime import Runtime
from reelstream.stores.ports import Row
from tests.functional.test_gateways_embedded import US, kid_b64, sign_up
from tests.unit.gateways.support import Clock, drain, grant, key_service, publish_title, settings


@pytest.fixture
async def stack(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[dict[str, Any]]:
    runtime = Runtime(Settings(data_dir=tmp_path / "reel"))
    keys = key_service(runtime)
    package = publish_title(runtime, keys, "film-1", duration_s=600)
    drain(runtime)
    clock = Clock(time.time())
    gateway_settings = settings(**getattr(request, "param", {}))  # indirect parametrization: overrides
    async with TestClient(TestServer(create_app(runtime, gateway_settings, keys, clock=clock))) as client:
        yield {"client": client, "runtime": runtime, "package": package, "clock": clock, "keys": keys}
    runtime.close()


async def subscriber(stack: dict[str, Any], email: str, security: str = "software") -> dict[str, Any]:
    user = await sign_up(stack["client"], email, "phone", security)
    grant(stack["runtime"], user["account_id"], "sub-1")
    drain(stack["runtime"])
    return user


async def download(client: TestClient, user: dict[str, Any], title_id: str = "film-1") -> dict[str, Any]:
    r = await client.post("/downloads/licenses", json={"title_id": title_id}, headers=user["auth"])
    assert r.status == 201, await r.text()
    return dict(await r.json())


def keys_body(package: Any, *classes: str, session_type: str = "persistent-license") -> str:
    return json.dumps({"kids": [kid_b64(package, c) for c in classes], "type": session_type})


async def license_(client: TestClient, ticket: str, body: str) -> tuple[int, dict[str, Any]]:
    r = await client.post(f"/licenses/clearkey?ticket={ticket}", headers=US, data=body)
    return r.status, await r.json()


async def hls_key(client: TestClient, ticket: str, package: Any, key_class: str) -> int:
    kid = next(t.key_id for t in package.tracks if t.key_class == key_class)
    r = await client.get(f"/licenses/clearkey/keys/{kid}?ticket={ticket}", headers=US)
    return r.status


async def test_a_returned_downloads_ticket_gets_no_more_keys(stack: dict[str, Any]) -> None:
    client, runtime, package = stack["client"], stack["runtime"], stack["package"]
    user = await subscriber(stack, "returned@example.com")
    dl = await download(client, user)
    assert (await license_(client, dl["ticket"], keys_body(package, "SD", "AUDIO")))[0] == 200
    drain(runtime)  # the downloads gateway returns what the view holds
    r = await client.delete(f"/downloads/licenses/{dl['license_id']}", headers=user["auth"])
    assert r.status == 204
    # At once (this instance folded the return), and still once the view has it.
    for caught_up in (False, True):
        if caught_up:
            drain(runtime)
        status, body = await license_(client, dl["ticket"], keys_body(package, "SD", "AUDIO"))
        assert (status, body["reason"]) == (403, "DOWNLOAD_RETURNED"), body
        assert dl["license_id"] in body["error"] and "POST /downloads/licenses" in body["error"]
        status, body = await license_(client, dl["ticket"], keys_body(package, "SD", session_type="temporary"))
        assert (status, body["reason"]) == (403, "DOWNLOAD_RETURNED"), body
        assert await hls_key(client, dl["ticket"], package, "SD") == 403


@pytest.mark.parametrize("stack", [{"max_downloads_per_device": 2}], indirect=True)  # fewer round trips
async def test_returning_downloads_does_not_lift_the_devices_download_limit(stack: dict[str, Any]) -> None:
    client, runtime, package = stack["client"], stack["runtime"], stack["package"]
    limit = client.server.app[SERVICES].settings.limits.max_downloads_per_device
    user = await subscriber(stack, "limit@example.com")
    tickets = []
    for _ in range(limit + 2):
        dl = await download(client, user)
        tickets.append(dl["ticket"])
        drain(runtime)
        assert (await client.delete(f"/downloads/licenses/{dl['license_id']}", headers=user["auth"])).status == 204
    drain(runtime)
    statuses = [(await license_(client, t, keys_body(package, "SD", "AUDIO")))[0] for t in tickets]
    assert statuses == [403] * len(tickets)
    for _ in range(limit):  # the returns did free the device's slots for new downloads
        await download(client, user)
    drain(runtime)
    r = await client.post("/downloads/licenses", json={"title_id": "film-1"}, headers=user["auth"])
    assert (r.status, (await r.json())["reason"]) == (403, "DOWNLOAD_LIMIT")


async def test_a_removed_devices_tickets_get_no_keys(stack: dict[str, Any]) -> None:
    client, package = stack["client"], stack["package"]
    user = await subscriber(stack, "removed@example.com")
    r = await client.get("/manifests/titles/film-1/manifest.mpd", headers=user["auth"])
    stream_ticket = r.headers["X-Reel-Ticket"]
    dl = await download(client, user)
    assert (await license_(client, stream_ticket, keys_body(package, "SD", session_type="temporary")))[0] == 200
    r = await client.delete(f"/auth/devices/{user['device_id']}", headers=user["auth"])
    assert r.status == 204
    for ticket, body in ((stream_ticket, keys_body(package, "SD", session_type="temporary")),
                         (dl["ticket"], keys_body(package, "SD", "AUDIO"))):
        r = await client.post(f"/licenses/clearkey?ticket={ticket}", headers=US, data=body)
        assert r.status == 403
        assert user["device_id"] in (await r.json())["error"] and "removed" in (await r.json())["error"]
    assert await hls_key(client, stream_ticket, package, "SD") == 403


async def test_keys_follow_the_devices_registered_security_level_not_the_tickets(stack: dict[str, Any]) -> None:
    client, runtime, package = stack["client"], stack["runtime"], stack["package"]
    user = await subscriber(stack, "level@example.com", security="hardware")
    r = await client.get("/manifests/titles/film-1/manifest.mpd", headers=user["auth"])
    ticket = r.headers["X-Reel-Ticket"]  # minted for a hardware-secure CDM
    body = keys_body(package, "HD", "SD", session_type="temporary")
    status, jwks = await license_(client, ticket, body)
    assert status == 200 and len(jwks["keys"]) == 2
    # The device's record now says software-only (re-registered CDM, or corrected by support).
    row = runtime.state.get(DEVICES, (user["account_id"], user["device_id"]))
    assert row is not None
    runtime.state.put(DEVICES, Row({**row.values, "security_level": "software"}, row.applied))
    client.server.app[SERVICES]._devices.clear()  # past the device cache's ten minutes
    status, jwks = await license_(client, ticket, body)
    assert status == 200 and [k["kid"] for k in jwks["keys"]] == [kid_b64(package, "SD")]  # HD withheld


async def test_withdrawn_offline_rights_stop_a_downloads_persistent_licenses(stack: dict[str, Any]) -> None:
    client, runtime, keys = stack["client"], stack["runtime"], stack["keys"]
    publish_title(runtime, keys, "film-2", duration_s=600, offline=True)
    user = await subscriber(stack, "withdrawn@example.com")
    dl = await download(client, user, "film-2")
    package = publish_title(runtime, keys, "film-2", duration_s=600, offline=False)  # the studio withdraws
    drain(runtime)
    client.server.app[SERVICES].catalog._titles.clear()  # past the catalog's 30 s ttl
    status, body = await license_(client, dl["ticket"], keys_body(package, "SD", "AUDIO"))
    assert (status, body["reason"]) == (403, "DOWNLOAD_NOT_ALLOWED"), body
    r = await client.post("/downloads/licenses", json={"title_id": "film-2"}, headers=user["auth"])
    assert (await r.json())["reason"] == body["reason"]  # the same refusal as a new download
    # Streaming it online is still allowed.
    assert (await license_(client, dl["ticket"], keys_body(package, "SD", session_type="temporary")))[0] == 200


async def test_streaming_a_download_online_leaves_the_downloads_expiry(stack: dict[str, Any]) -> None:
    client, runtime, package, clock = stack["client"], stack["runtime"], stack["package"], stack["clock"]
    user = await subscriber(stack, "online@example.com")
    dl = await download(client, user)
    assert (await license_(client, dl["ticket"], keys_body(package, "SD", "AUDIO")))[0] == 200
    # An online player on the download's manifest_url: its license_url, then the HLS key route,
    # both temporary sessions on the download ticket.
    license_path = "/" + dl["license_url"].split("://", 1)[1].split("/", 1)[1]
    r = await client.post(license_path, headers=US, data=keys_body(package, "SD", session_type="temporary"))
    assert r.status == 200, await r.text()
    assert (await r.json())["type"] == "temporary"
    assert await hls_key(client, dl["ticket"], package, "AUDIO") == 200
    await client.server.app[SERVICES].publisher.settled()
    drain(runtime)
    rows = {r.values["license_id"]: r.values for r in runtime.state.query(LICENSES, (user["account_id"],))}
    assert rows[dl["license_id"]]["kind"] == "download"
    assert rows[dl["license_id"]]["expires_ms"] == dl["expires_at_ms"]  # not the 6-h streaming expiry
    assert [v["kind"] for k, v in rows.items() if k != dl["license_id"]] == ["streaming"]  # its own row
    clock.advance(7 * 3600)
    r = await client.get("/downloads/licenses", headers=user["auth"])
    assert [d["license_id"] for d in (await r.json())["downloads"]] == [dl["license_id"]]
    assert (await license_(client, dl["ticket"], keys_body(package, "SD", "AUDIO")))[0] == 200


LONE = "\\ud800"


async def test_a_lone_surrogate_in_a_json_body_is_a_400_naming_the_field(stack: dict[str, Any]) -> None:
    client = stack["client"]
    user = await sign_up(client, "surrogate@example.com")
    calls = [
        ("/playback/heartbeats", f'{{"sid": "s", "cid": "{LONE}", "position_ms": 0}}', user["auth"], "cid"),
        ("/downloads/licenses", f'{{"title_id": "{LONE}"}}', user["auth"], "title_id"),
        ("/auth/accounts", f'{{"email": "a{LONE}@b.c", "password": "password12", "country": "US"}}', {}, "email"),
        ("/auth/accounts", f'{{"email": "p@b.c", "password": "pass{LONE}word12", "country": "US"}}', {},
         "password"),
        ("/auth/sessions", f'{{"email": "surrogate@example.com", "password": "x{LONE}"}}', {}, "password"),
        ("/auth/profiles", f'{{"name": "{LONE}"}}', user["auth"], "name"),
        ("/auth/devices", (f'{{"name": "tv", "device_type": "tv", "security_level": "software", '
                           f'"extra": ["ok", {{"deep": "{LONE}"}}]}}'), user["auth"], "extra[1].deep"),
    ]
    for path, body, headers, field in calls:
        r = await client.post(path, data=body.encode(), headers={**headers, "Content-Type": "application/json"})
        assert r.status == 400, (path, await r.text())
        error = (await r.json())["error"]
        assert f"field '{field}'" in error and "surrogate" in error, error
    # A character beyond U+FFFF escaped as a proper pair is fine.
    r = await client.post("/auth/profiles", data=b'{"name": "kids \\ud83d\\ude00"}',
                          headers={**user["auth"], "Content-Type": "application/json"})
    assert r.status == 201, await r.text()
    assert (await r.json())["name"] == "kids \U0001F600"


async def test_a_stale_cached_device_is_served_while_one_read_refreshes_it(stack: dict[str, Any]) -> None:
    """Devices cached together expire together: past its minute a device is still served, and
    one background read refreshes it (or, removed meanwhile, drops it) so no request waits."""
    import asyncio

    from reelstream.gateways.services import DEVICE_REFRESH_GRACE_S

    client, runtime, package = stack["client"], stack["runtime"], stack["package"]
    services = client.server.app[SERVICES]
    user = await subscriber(stack, "stale@example.com")
    r = await client.get("/manifests/titles/film-1/manifest.mpd", headers=user["auth"])
    ticket, body = r.headers["X-Reel-Ticket"], keys_body(package, "SD", session_type="temporary")
    assert (await license_(client, ticket, body))[0] == 200
    key = (user["account_id"], user["device_id"])

    def expire(seconds_ago: float) -> None:
        _, device = services._devices[key]
        services._devices[key] = (time.monotonic() - seconds_ago, device)

    reads = 0
    read = services.identity.device

    def counted(*args: Any) -> Any:
        nonlocal reads
        reads += 1
        return read(*args)

    services.identity.device = counted
    expire(1.0)
    assert (await license_(client, ticket, body))[0] == 200  # served stale, refresh started
    for _ in range(100):
        if services._devices[key][0] > time.monotonic():
            break
        await asyncio.sleep(0.01)
    assert reads == 1 and services._devices[key][0] > time.monotonic(), "refreshed by one read"
    expire(DEVICE_REFRESH_GRACE_S + 1)  # past the grace: not served from the cache at all
    assert services.peek_device(*key) is None and reads == 1

    # Removed by another instance (straight in the store): the next refresh drops it.
    row = runtime.state.get(DEVICES, key)
    runtime.state.put(DEVICES, Row({**row.values, "active": False}, row.applied))
    expire(1.0)
    assert (await license_(client, ticket, body))[0] == 200  # the last stale answer
    for _ in range(100):
        if key not in services._devices:
            break
        await asyncio.sleep(0.01)
    assert key not in services._devices
    assert (await license_(client, ticket, body))[0] == 403

