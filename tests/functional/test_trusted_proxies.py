"""The country and ISP headers are believed only from the load balancers REEL_TRUSTED_PROXIES
names: a viewer abroad who sends "X-Client-Country: US" itself does not get past the
territory check."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from reelstream.errors import ConfigError
from tests.functional.test_gateways_embedded import sign_up
from tests.unit.gateways.support import drain, embedded_gateways, grant, settings


async def opened(tmp_path: Path, proxies: str, country_header: str) -> tuple[int, str | None]:
    async with embedded_gateways(tmp_path, trusted_proxies=proxies, default_country="FR") as g:
        client, runtime = g["client"], g["runtime"]  # film-1 plays in the US only
        user = await sign_up(client, "abroad@example.com", "tv", "hardware")
        grant(runtime, user["account_id"], "sub-1")
        drain(runtime)
        headers = {**user["auth"], "X-Client-Country": country_header}
        r = await client.get("/manifests/titles/film-1/manifest.mpd", headers=headers)
        return r.status, (await r.json())["reason"] if r.status == 403 else None


async def test_a_client_that_is_not_a_trusted_proxy_cannot_choose_its_country(tmp_path: Path) -> None:
    # The test client connects from 127.0.0.1: not a load balancer of 10.0.0.0/8.
    assert await opened(tmp_path / "a", "10.0.0.0/8", "US") == (403, "TERRITORY")  # its default: FR
    assert await opened(tmp_path / "b", "127.0.0.1,10.0.0.0/8", "US") == (200, None)  # a trusted proxy's word
    assert await opened(tmp_path / "c", "127.0.0.0/8", "FR") == (403, "TERRITORY")


async def test_without_trusted_proxies_the_gateway_says_at_start_that_any_client_is_believed(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="reelstream.gateways.services"):
        assert await opened(tmp_path, "", "US") == (200, None)
    assert "REEL_TRUSTED_PROXIES is not set" in caplog.text


def test_a_bad_address_fails_at_start_named() -> None:
    with pytest.raises(ConfigError, match="REEL_TRUSTED_PROXIES"):
        settings(trusted_proxies="10.0.0.0/8,lb.example.com")
