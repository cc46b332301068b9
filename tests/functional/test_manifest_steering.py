"""The manifest gateway with content steering (issue #6): both edge tiers named as pathways
with URLs signed for each, the steering server named per session with the viewer's ISP,
for DASH and HLS; without steering settings, one edge as before."""

from __future__ import annotations

import time
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from reelstream.config import Settings
from reelstream.edge.signing import EdgeSecret, verify
from reelstream.errors import ConfigError
from reelstream.gateways.app import create_app
from reelstream.runtime import Runtime
from tests.functional.test_gateways_embedded import sign_up
from tests.unit.gateways.support import (
    EDGE_SECRET,
    drain,
    grant,
    key_service,
    publish_title,
    settings,
)

PATHWAYS = "appliance-isp-a=http://appliance.test:8401,pop-1=http://pop.test:8400"
STEERING = "http://steer.test:8398"
MPD = "{urn:mpeg:dash:schema:mpd:2011}"


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[TestClient]:
    runtime = Runtime(Settings(data_dir=tmp_path / "reel"))
    keys = key_service(runtime)
    publish_title(runtime, keys, "film-1", duration_s=60)
    app = create_app(runtime, settings(edge_pathways=PATHWAYS, steering_url=STEERING, default_isp="isp-a"), keys)
    async with TestClient(TestServer(app)) as c:
        user = await sign_up(c, "steer@example.com")
        grant(runtime, user["account_id"], "sub-1")
        drain(runtime)
        c.user = user  # type: ignore[attr-defined]
        yield c
    runtime.close()


def signed_object(url: str) -> str:
    """The object a signed edge URL grants (checked as nginx checks it)."""
    return verify(EdgeSecret(EDGE_SECRET), urllib.parse.urlsplit(url).path, time.time())


async def test_dash_names_both_tiers_and_the_sessions_steering_server(client: TestClient) -> None:
    r = await client.get("/manifests/titles/film-1/manifest.mpd", headers={**client.user["auth"],  # type: ignore[attr-defined]
                                                                         "X-Client-ISP": "isp-b"})
    assert r.status == 200, await r.text()
    root = ET.fromstring(await r.text())
    steering = root.find(f"{MPD}ContentSteering")
    assert steering is not None and steering.get("defaultServiceLocation") == "appliance-isp-a"
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(steering.text or "").query)
    assert (steering.text or "").startswith(f"{STEERING}/steering?")
    assert query == {"session": [r.headers["X-Reel-Session"]], "title": ["film-1"], "isp": ["isp-b"]}
    bases = {b.get("serviceLocation"): b.text or "" for b in root.findall(f"{MPD}BaseURL")}
    assert list(bases) == ["appliance-isp-a", "pop-1"]
    assert bases["appliance-isp-a"].startswith("http://appliance.test:8401/s/")
    assert bases["pop-1"].startswith("http://pop.test:8400/s/")
    # One signature, valid on every pathway: each edge verifies it on its own.
    assert signed_object(bases["appliance-isp-a"]) == signed_object(bases["pop-1"])
    assert signed_object(bases["pop-1"]).startswith("/packages/film-1/")
    template = root.find(f".//{MPD}SegmentTemplate")
    assert template is not None and not template.get("media", "").startswith("http"), \
        "segment URLs are relative to the pathway's BaseURL"


async def test_hls_repeats_the_variants_per_pathway_with_playlists_on_that_edge(client: TestClient) -> None:
    r = await client.get("/manifests/titles/film-1/master.m3u8", headers=client.user["auth"])  # type: ignore[attr-defined]
    assert r.status == 200, await r.text()
    lines = (await r.text()).splitlines()
    tag = next(line for line in lines if line.startswith("#EXT-X-CONTENT-STEERING:"))
    assert 'PATHWAY-ID="appliance-isp-a"' in tag and "isp=isp-a" in tag, "the default ISP when no header"
    variants = [line for line in lines if line.startswith("#EXT-X-STREAM-INF:")]
    assert {v.split('PATHWAY-ID="')[1].rstrip('"') for v in variants} == {"appliance-isp-a", "pop-1"}
    playlist = next(lines[i + 1] for i, line in enumerate(lines)
                    if line.startswith("#EXT-X-STREAM-INF:") and 'PATHWAY-ID="pop-1"' in line)
    assert "/p/pop-1/" in playlist
    media = await client.get(urllib.parse.urlsplit(playlist).path, headers={"X-Client-Country": "US"})
    assert media.status == 200, await media.text()
    segments = [line for line in (await media.text()).splitlines() if line.endswith(".m4s")]
    assert segments and all(s.startswith("http://pop.test:8400/s/") for s in segments)
    assert signed_object(segments[0]).startswith("/packages/film-1/")
    missing = await client.get(urllib.parse.urlsplit(playlist.replace("/p/pop-1/", "/p/pop-9/")).path,
                               headers={"X-Client-Country": "US"})
    assert missing.status == 404


def test_steering_settings_are_checked_at_start() -> None:
    with pytest.raises(ConfigError, match="REEL_EDGE_PATHWAYS and REEL_STEERING_URL go together"):
        settings(edge_pathways=PATHWAYS)
    with pytest.raises(ConfigError, match="REEL_EDGE_PATHWAYS: 'pop 1=http://x' is not name="):
        settings(edge_pathways="pop 1=http://x", steering_url=STEERING)
    with pytest.raises(ConfigError, match="repeat"):
        settings(edge_pathways="a=http://x,a=http://y", steering_url=STEERING)
    with pytest.raises(ConfigError, match="REEL_STEERING_URL"):
        settings(edge_pathways=PATHWAYS, steering_url="steer.test")
