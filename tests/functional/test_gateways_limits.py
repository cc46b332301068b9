"""The account limits hold for requests that come faster than the log: through the real app
factory on the embedded runtime, with no processor running (``drain`` is never called
between the requests), as a device team's burst against a `reel up` saw them.

- Devices licensed one after another each count as a stream at once, not once the
  sessions processor has announced their sessions on reel.sessions.
- Parallel requests of one account decide one at a time (streams and downloads).
- The downloads gateway reads its own writes: a download is listed and counted at once,
  gone once returned, returned once (one event, its id the download's), never renewed
  after a return.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from reelstream.gateways.keys import SERVICES
from tests.functional.test_gateways_embedded import US, kid_b64
from tests.unit.gateways.support import drain, embedded_gateways, grant

DAY_S = 86_400


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    # Session tokens outlive a download's 30 days: a test renews an expired one.
    async with embedded_gateways(tmp_path, session_ttl_s=40 * DAY_S) as deployed:
        yield deployed


async def subscriber(stack: dict[str, Any], email: str, devices: int) -> tuple[str, list[dict[str, str]]]:
    """A subscribed account with ``devices`` software phones; their request headers."""
    client = stack["client"]
    r = await client.post("/auth/accounts", json={"email": email, "password": "correct horse", "country": "US"})
    assert r.status == 201, await r.text()
    account_id = (await r.json())["account_id"]
    r = await client.post("/auth/sessions", json={"email": email, "password": "correct horse"})
    token = (await r.json())["token"]
    headers = []
    for n in range(devices):
        r = await client.post("/auth/devices", headers={"Authorization": f"Bearer {token}"},
                              json={"name": f"phone {n}", "device_type": "phone", "security_level": "software"})
        assert r.status == 201, await r.text()
        headers.append({"Authorization": f"Bearer {(await r.json())['token']}", **US})
    grant(stack["runtime"], account_id, "sub-1")
    drain(stack["runtime"])
    return account_id, headers


async def open_session(client: TestClient, device: dict[str, str]) -> tuple[str, str]:
    """The manifest: a playback ticket and its session id."""
    r = await client.get("/manifests/titles/film-1/manifest.mpd", headers=device)
    assert r.status == 200, await r.text()
    return r.headers["X-Reel-Ticket"], r.headers["X-Reel-Session"]


async def license_(stack: dict[str, Any], ticket: str) -> tuple[int, str | None]:
    body = json.dumps({"kids": [kid_b64(stack["package"], c) for c in ("SD", "AUDIO")], "type": "temporary"})
    r = await stack["client"].post(f"/licenses/clearkey?ticket={ticket}", headers=US, data=body)
    return r.status, (await r.json()).get("reason")


async def start(client: TestClient, device: dict[str, str], session_id: str) -> None:
    r = await client.post("/playback/heartbeats", headers=device, json={
        "sid": session_id, "cid": "film-1", "event": "start", "position_ms": 0})
    assert r.status == 204, await r.text()


async def test_devices_licensed_back_to_back_count_as_streams_at_once(stack: dict[str, Any]) -> None:
    """Manifest, license, heartbeat start, on five devices with no pause: the sessions
    processor has announced none of them yet, and still only the plan's three play."""
    client = stack["client"]
    _, devices = await subscriber(stack, "burst@example.com", 5)
    outcomes = []
    for device in devices:
        ticket, session_id = await open_session(client, device)
        outcomes.append(await license_(stack, ticket))
        await start(client, device, session_id)
    assert outcomes == [(200, None)] * 3 + [(403, "CONCURRENT_STREAMS")] * 2


async def test_a_renewal_or_a_devices_second_session_is_one_stream(stack: dict[str, Any]) -> None:
    client = stack["client"]
    _, devices = await subscriber(stack, "renewals@example.com", 4)
    first, _ = await open_session(client, devices[0])
    assert await license_(stack, first) == (200, None)
    assert await license_(stack, first) == (200, None)  # renewed: still one session
    second, _ = await open_session(client, devices[0])  # the same device's next session replaces it
    assert await license_(stack, second) == (200, None)
    for device in devices[1:3]:  # two more devices: three streams
        assert await license_(stack, (await open_session(client, device))[0]) == (200, None)
    assert await license_(stack, (await open_session(client, devices[3]))[0]) == (403, "CONCURRENT_STREAMS")
    assert await license_(stack, first) == (200, None)  # a device already streaming renews


async def test_parallel_licenses_of_one_account_respect_the_stream_limit(stack: dict[str, Any]) -> None:
    client = stack["client"]
    _, devices = await subscriber(stack, "parallel@example.com", 5)
    tickets = [(await open_session(client, device))[0] for device in devices]
    outcomes = await asyncio.gather(*(license_(stack, t) for t in tickets))
    assert sorted(outcomes, key=lambda o: o[0]) == [(200, None)] * 3 + [(403, "CONCURRENT_STREAMS")] * 2


async def test_a_granted_stream_stops_counting_70_s_after_its_grant_without_a_heartbeat(
        stack: dict[str, Any]) -> None:
    """A player that got its license and never started: its stream counts until the live
    timeout, as if it had beaten at the grant, then frees its slot."""
    client, clock = stack["client"], stack["clock"]
    _, devices = await subscriber(stack, "silent@example.com", 4)
    for device in devices[:3]:
        assert await license_(stack, (await open_session(client, device))[0]) == (200, None)
    ticket, _ = await open_session(client, devices[3])
    assert await license_(stack, ticket) == (403, "CONCURRENT_STREAMS")
    clock.advance(71)
    assert await license_(stack, ticket) == (200, None)


async def download(client: TestClient, device: dict[str, str]) -> tuple[int, dict[str, Any]]:
    r = await client.post("/downloads/licenses", json={"title_id": "film-1"}, headers=device)
    return r.status, dict(await r.json())


async def test_parallel_downloads_of_one_device_stop_at_its_limit(stack: dict[str, Any]) -> None:
    client = stack["client"]
    limit = client.server.app[SERVICES].settings.limits.max_downloads_per_device
    _, (device,) = await subscriber(stack, "parallel-dl@example.com", 1)
    outcomes = await asyncio.gather(*(download(client, device) for _ in range(2 * limit)))
    statuses = sorted(status for status, _ in outcomes)
    assert statuses == [201] * limit + [403] * limit
    assert {body["reason"] for status, body in outcomes if status == 403} == {"DOWNLOAD_LIMIT"}


async def test_sequential_downloads_of_one_device_stop_at_its_limit(stack: dict[str, Any]) -> None:
    client = stack["client"]
    limit = client.server.app[SERVICES].settings.limits.max_downloads_per_device
    _, (device,) = await subscriber(stack, "sequential-dl@example.com", 1)
    statuses = [(await download(client, device))[0] for _ in range(limit + 3)]
    assert statuses == [201] * limit + [403] * 3


async def listed(client: TestClient, device: dict[str, str]) -> list[str]:
    r = await client.get("/downloads/licenses", headers=device)
    assert r.status == 200, await r.text()
    return [d["license_id"] for d in (await r.json())["downloads"]]


async def test_downloads_read_their_writes_and_a_return_is_written_once(stack: dict[str, Any]) -> None:
    from reelstream.gateways.downloads import returned_event_id

    client, runtime = stack["client"], stack["runtime"]
    account_id, (device,) = await subscriber(stack, "ryw@example.com", 1)
    status, dl = await download(client, device)
    assert status == 201
    assert await listed(client, device) == [dl["license_id"]]  # at once, before the view has it
    path = f"/downloads/licenses/{dl['license_id']}"
    assert (await client.delete(path, headers=device)).status == 204
    assert await listed(client, device) == []  # gone at once
    r = await client.delete(path, headers=device)  # returned already: no such active download
    assert r.status == 404 and dl["license_id"] in (await r.json())["error"]
    r = await client.post(f"{path}/renew", headers=device)
    assert r.status == 404, await r.text()
    reader = runtime.log.consumer(["reel.licenses"], None)
    events = [runtime.codec.decode(rec.value) for rec in reader.poll(1000, 1.0)]
    reader.close()
    returns = [e for e in events if e.type == "DownloadReturned"]
    assert [e.event_id for e in returns] == [returned_event_id(account_id, dl["license_id"])]
    assert [e.type for e in events].count("DownloadLicensed") == 1  # the refused renewal wrote nothing
    drain(runtime)  # and the same once the view has caught up
    assert await listed(client, device) == []
    assert (await client.delete(path, headers=device)).status == 404


async def test_an_active_or_expired_download_is_renewed(stack: dict[str, Any]) -> None:
    client, runtime, clock = stack["client"], stack["runtime"], stack["clock"]
    _, (device,) = await subscriber(stack, "renew-dl@example.com", 1)
    _, dl = await download(client, device)
    r = await client.post(f"/downloads/licenses/{dl['license_id']}/renew", headers=device)
    assert r.status == 201 and (await r.json())["renewal"] is True
    drain(runtime)
    clock.advance(31 * DAY_S)
    client.server.app[SERVICES].licenses.view._cached.clear()  # past the cache's ttl: reloaded without it
    r = await client.post(f"/downloads/licenses/{dl['license_id']}/renew", headers=device)
    assert r.status == 201, await r.text()
    assert await listed(client, device) == [dl["license_id"]]
