"""Proxy mode (issue #5): the license server checks entitlements and applies the policy,
the vendor's license service issues the license. A vendor service cannot run here, so an
in-test HTTP server stands in for it: it checks the request's signature and records what
it was asked, the way Widevine's license proxy API defines the message."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import AsyncIterator
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
from tests.unit.gateways.support import Clock, drain, grant, key_service, publish_title, settings

KEY, IV = bytes(range(32)), bytes(range(16))
CHALLENGE = b"\x08\x01\x12\x10opaque-cdm-challenge\x00\xff"


class Vendor:
    """The stand-in license service: verifies, records, answers (or fails when told to)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.fail: int | None = None

    async def handle(self, request: web.Request) -> web.Response:
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


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
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
                                           widevine_signing_key=f"{KEY.hex()}:{IV.hex()}"),
                         keys, clock=Clock(time.time()))
        async with TestClient(TestServer(app)) as client:
            yield {"client": client, "runtime": runtime, "package": package, "vendor": vendor, "keys": keys}
        runtime.close()


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
    client, vendor = stack["client"], stack["vendor"]
    user = await sign_up(client, "wv-unentitled@example.com", "tv", "hardware")  # no subscription
    ticket, _ = await open_session(client, user)
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
