"""Clear Key hands its keys to JavaScript, so by default (REEL_CLEARKEY_SECURITY=software) a
Clear Key license is a software CDM's whatever the device registered: a client that calls
itself "hardware" got the HD and UHD keys in the clear. A browser (Clear Key only) is not
offered the tracks it would get no key for; a TV (which has a vendor DRM) still is."""

from __future__ import annotations

from pathlib import Path

import pytest

from reelstream.errors import ConfigError
from reelstream.identity.tokens import b64url
from tests.functional.test_gateways_embedded import open_session, sign_up
from tests.unit.gateways.support import drain, embedded_gateways, grant, kid, settings


async def test_a_self_declared_hardware_device_gets_only_software_keys_through_clear_key(tmp_path: Path) -> None:
    async with embedded_gateways(tmp_path, clearkey_security="software", default_country="US") as g:
        client, runtime, package = g["client"], g["runtime"], g["package"]
        for device_type, offered_hd in (("browser", False), ("tv", True)):
            user = await sign_up(client, f"claims-{device_type}@example.com", device_type, "hardware")
            grant(runtime, user["account_id"], f"sub-{device_type}")
            drain(runtime)
            ticket, mpd = await open_session(client, user)
            assert ('height="1080"' in mpd) is offered_hd, device_type
            sd, hd, uhd = (b64url(bytes.fromhex(kid(package, c))) for c in ("SD", "HD", "UHD"))
            only_hd = await client.post(f"/licenses/clearkey?ticket={ticket}", json={"kids": [hd, uhd]})
            assert only_hd.status == 403 and (await only_hd.json())["reason"] == "SECURITY_LEVEL", device_type
            mixed = await client.post(f"/licenses/clearkey?ticket={ticket}", json={"kids": [sd, hd]})
            assert mixed.status == 200
            assert [k["kid"] for k in (await mixed.json())["keys"]] == [sd], device_type


async def test_trusting_clear_key_as_hardware_is_an_explicit_setting(tmp_path: Path) -> None:
    async with embedded_gateways(tmp_path, clearkey_security="hardware", default_country="US") as g:
        client, runtime, package = g["client"], g["runtime"], g["package"]
        user = await sign_up(client, "trusted@example.com", "tv", "hardware")
        grant(runtime, user["account_id"], "sub-1")
        drain(runtime)
        ticket, _ = await open_session(client, user)
        hd = b64url(bytes.fromhex(kid(package, "HD")))
        granted = await client.post(f"/licenses/clearkey?ticket={ticket}", json={"kids": [hd]})
        assert granted.status == 200 and [k["kid"] for k in (await granted.json())["keys"]] == [hd]


def test_the_production_default_is_software_and_other_values_are_refused_by_name() -> None:
    from reelstream.gateways.settings import GatewaySettings

    assert GatewaySettings.clearkey_security == "software"
    with pytest.raises(ConfigError, match="REEL_CLEARKEY_SECURITY"):
        settings(clearkey_security="trusted")
