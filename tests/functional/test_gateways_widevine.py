"""Proxy mode (issue #5): the license server checks entitlements and applies the policy,
the vendor's license service issues the license. A vendor service cannot run here, so an
in-test HTTP server stands in for it: it checks the request's signature and records what
it was asked, the way Widevine's license proxy API defines the message."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from Crypto.Cipher import AES
from Crypto.Util.Padding import unpad

from reelstream.config import Settings
from reelstream.gateways.app import create_app
from reelstream.runtime import Runtime
from tests.functional.test_gateways_embedded import US, open_session, services_of, sign_up
from tests.unit.gateways.support import (
    Clock,
    drain,
    grant,
    key_service,
    publish_title,
    revoke,
    settings,
)

KEY, IV = bytes(range(32)), bytes(range(16))
CHALLENGE = b"\x08\x01\x12\x10opaque-cdm-challenge\x00\xff"


class Vendor:
    """The stand-in license service: verifies, records, answers (or fails when told to),
    taking ``delay_s`` over each answer and counting the calls in flight at once."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.fail: int | None = None
        self.delay_s = 0.0
        self.in_flight = self.most_in_flight = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay_s)
            return await self._answer(request)
        finally:
            self.in_flight -= 1

    async def _answer(self, request: web.Request) -> web.Response:
        envelope = await request.json()
        body = base64.b64decode(envelope["request"])
        digest = unpad(AES.new(KEY, AES.MODE_CBC, IV).decrypt(base64.b64decode(envelope["signature"])), 16)
        if envelope["signer"] != "reelstream" or digest != hashlib.sha1(body).digest():
            return web.json_response({"status": "SIGNATURE_FAILED"})
        message = json.loads(body)
        self.requests.append(message)
        if self.fail:
            return web.Response(status=self.fail, text="vendor outage")
        return web.json_response({"status": "OK", "license": base64.b64encode(
            b"LICENSE:" + base64.b64decode(message["payload"])).decode()})


@asynccontextmanager
async def widevine_stack(tmp_path: Path, **overrides: Any) -> AsyncIterator[dict[str, Any]]:
    vendor = Vendor()
    vendor_app = web.Application()
    vendor_app.router.add_post("/getlicense", vendor.handle)
    async with TestServer(vendor_app) as vendor_server:
        runtime = Runtime(Settings(data_dir=tmp_path / "reel"))
        keys = key_service(runtime)
        package = publish_title(runtime, keys, "film-1", duration_s=600)
        drain(runtime)
        app = create_app(runtime, settings(widevine_proxy_url=str(vendor_server.make_url("/getlicense")),
                                           widevine_provider="reelstream",
                                           widevine_signing_key=f"{KEY.hex()}:{IV.hex()}", **overrides),
                         keys, clock=Clock(time.time()))
        async with TestClient(TestServer(app)) as client:
            yield {"client": client, "runtime": runtime, "package": package, "vendor": vendor, "keys": keys}
        runtime.close()


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    async with widevine_stack(tmp_path) as built:
        yield built


async def household(client: TestClient, runtime: Runtime, email: str, devices: int) -> list[dict[str, Any]]:
    """One subscribed account with ``devices`` hardware TVs, each with its own open session's ticket."""
    first = await sign_up(client, email, "tv", "hardware")
    grant(runtime, first["account_id"], f"sub-{email}")
    drain(runtime)
    token = (await (await client.post("/auth/sessions", json={"email": email, "password": "correct horse"})).json())[
        "token"]
    members = [first]
    for n in range(1, devices):
        r = await client.post("/auth/devices", json={"name": f"tv{n}", "device_type": "tv",
                                                     "security_level": "hardware"},
                              headers={"Authorization": f"Bearer {token}"})
        device = await r.json()
        members.append({**first, "device_id": device["device_id"],
                        "auth": {"Authorization": f"Bearer {device['token']}", **US}})
    for member in members:
        member["ticket"] = (await open_session(client, member))[0]
    return members


def widevine(client: TestClient, ticket: str) -> Any:
    return client.post(f"/licenses/widevine?ticket={ticket}", data=CHALLENGE, headers=US)


def classes_of(package: Any) -> dict[str, str]:
    return {t.key_id: t.key_class for t in package.tracks}


async def test_the_vendor_issues_the_license_for_the_keys_the_policy_allowed(stack: dict[str, Any]) -> None:
    client, runtime, package, vendor = stack["client"], stack["runtime"], stack["package"], stack["vendor"]
    by_kid = classes_of(package)
    accounts: dict[str, str] = {}
    for device_type, security, allowed, classes in (
            ("tv", "hardware", "SD_UHD1", {"AUDIO", "SD", "HD", "UHD"}),
            ("browser", "software", "SD_ONLY", {"AUDIO", "SD"})):
        user = await sign_up(client, f"wv-{security}@example.com", device_type, security)
        accounts[security] = user["account_id"]
        grant(runtime, user["account_id"], f"sub-{security}")
        drain(runtime)
        ticket, _ = await open_session(client, user)
        r = await client.post(f"/licenses/widevine?ticket={ticket}", data=CHALLENGE, headers=US)
        assert r.status == 200, await r.text()
        assert await r.read() == b"LICENSE:" + CHALLENGE  # the vendor's license, relayed as it came
        asked = vendor.requests[-1]
        assert base64.b64decode(asked["payload"]) == CHALLENGE and asked["provider"] == "reelstream"
        assert asked["allowed_track_types"] == allowed
        specs = {base64.b64decode(k["key_id"]).hex(): k for k in asked["content_key_specs"]}
        assert {by_kid[kid] for kid in specs} == classes
        for kid, spec in specs.items():  # the key the vendor puts in the license is the title's
            assert base64.b64decode(spec["key"]) == stack["keys"].key_for_kid("film-1", kid).key
            assert spec["security_level"] == (5 if by_kid[kid] in ("HD", "UHD") else 1)
        policy = asked["policy_overrides"]
        assert policy["can_play"] and not policy["can_persist"] and 0 < policy["license_duration_seconds"] <= 6 * 3600

    await services_of(client).publisher.settled()
    reader = runtime.log.consumer(["reel.licenses"], None)
    events = [runtime.codec.decode(rec.value) for rec in reader.poll(100, 1.0)]
    reader.close()
    software = next(e for e in events if e["user_id"] == accounts["software"])  # partitions: no global order
    assert software.type == "LicenseGranted" and {by_kid[k] for k in software["key_ids"]} == {"AUDIO", "SD"}
    assert {by_kid[w["key_id"]] for w in software["withheld_keys"]} == {"HD", "UHD"}


async def test_a_denial_never_reaches_the_vendor(stack: dict[str, Any]) -> None:
    client, runtime, vendor = stack["client"], stack["runtime"], stack["vendor"]
    user = await sign_up(client, "wv-unentitled@example.com", "tv", "hardware")
    grant(runtime, user["account_id"], "sub-cancelled")
    drain(runtime)
    ticket, _ = await open_session(client, user)
    revoke(runtime, user["account_id"], "sub-cancelled")  # cancelled while the session was open
    drain(runtime)
    r = await client.post(f"/licenses/widevine?ticket={ticket}", data=CHALLENGE, headers=US)
    assert r.status == 403 and (await r.json())["reason"] == "NO_ENTITLEMENT"
    r = await client.post(f"/licenses/widevine?ticket={ticket}", data=b"", headers=US)
    assert r.status == 400 and "challenge" in (await r.json())["error"]
    assert vendor.requests == []


async def test_a_vendor_failure_is_a_502_naming_it(stack: dict[str, Any]) -> None:
    client, runtime, vendor = stack["client"], stack["runtime"], stack["vendor"]
    user = await sign_up(client, "wv-outage@example.com", "tv", "hardware")
    grant(runtime, user["account_id"], "sub-outage")
    drain(runtime)
    ticket, _ = await open_session(client, user)
    vendor.fail = 503
    r = await client.post(f"/licenses/widevine?ticket={ticket}", data=CHALLENGE, headers=US)
    assert r.status == 502
    assert "Widevine license service answered HTTP 503" in (await r.json())["error"]


@pytest.mark.parametrize(("overrides", "named"), [
    ({"widevine_proxy_url": "ftp://vendor"}, "REEL_WIDEVINE_PROXY_URL"),
    ({"widevine_proxy_url": "https://vendor", "widevine_provider": "p", "widevine_signing_key": "zz"},
     "REEL_WIDEVINE_SIGNING_KEY"),
    ({"widevine_proxy_url": "https://vendor", "widevine_signing_key": f"{KEY.hex()}:{IV.hex()}"},
     "REEL_WIDEVINE_PROVIDER"),
])
def test_a_bad_vendor_setting_fails_at_start_named(overrides: dict[str, str], named: str) -> None:
    from reelstream.errors import ConfigError

    with pytest.raises(ConfigError, match=named):
        settings(**overrides)


def test_proxy_mode_builds_no_license_locally_and_says_where_licenses_come_from() -> None:
    from reelstream.gateways.drm import LicenseRequest, LicenseTerms
    from reelstream.gateways.widevine import WidevineProxyAdapter

    adapter = WidevineProxyAdapter("https://vendor.example/getlicense", "reelstream", KEY, IV)
    with pytest.raises(TypeError, match="call issue\\(\\) with the CDM's challenge"):
        adapter.license(LicenseRequest((), "temporary"), [], LicenseTerms(0, False))


async def test_one_households_vendor_calls_overlap(stack: dict[str, Any]) -> None:
    # Decisions run one at a time per account; the vendor's round trips need not: three TVs
    # starting at once each waited for the others' calls (their waits added up).
    client, runtime, vendor = stack["client"], stack["runtime"], stack["vendor"]
    members = await household(client, runtime, "wv-family@example.com", 3)
    vendor.delay_s = 1.0  # far longer than three decisions take, even on a loaded machine
    answers = await asyncio.gather(*(widevine(client, m["ticket"]) for m in members))
    assert [a.status for a in answers] == [200, 200, 200]
    assert vendor.most_in_flight == 3


async def test_the_stream_limit_holds_with_the_vendor_called_outside_the_lock(tmp_path: Path) -> None:
    async with widevine_stack(tmp_path, max_streams=1) as built:
        client, runtime, vendor = built["client"], built["runtime"], built["vendor"]
        members = await household(client, runtime, "wv-one@example.com", 2)
        vendor.delay_s = 1.0  # far longer than three decisions take, even on a loaded machine
        answers = await asyncio.gather(*(widevine(client, m["ticket"]) for m in members))
        assert sorted(a.status for a in answers) == [200, 403]
        refused = next(a for a in answers if a.status == 403)
        assert (await refused.json())["reason"] == "CONCURRENT_STREAMS"
        assert len(vendor.requests) == 1  # the refused one never reached the vendor


async def test_a_grant_the_vendor_failed_is_withdrawn_and_never_an_event(tmp_path: Path) -> None:
    async with widevine_stack(tmp_path, max_streams=1) as built:
        client, runtime, vendor = built["client"], built["runtime"], built["vendor"]
        first, second = await household(client, runtime, "wv-outage2@example.com", 2)
        vendor.fail = 503
        assert (await widevine(client, first["ticket"])).status == 502
        vendor.fail = None
        # The failed grant no longer holds the plan's one stream: the other TV plays at once,
        # not after the 70 s a licensed session that never beats stays counted.
        second_answer = await widevine(client, second["ticket"])
        assert second_answer.status == 200, await second_answer.text()
        await services_of(client).publisher.settled()
        reader = runtime.log.consumer(["reel.licenses"], None)
        granted = [e for e in (runtime.codec.decode(r.value) for r in reader.poll(100, 1.0))
                   if e.type == "LicenseGranted"]
        reader.close()
        assert [e["device_id"] for e in granted] == [second["device_id"]]
