"""An origin that faces viewers (``reel edge up --origin-only``, as `reel up` runs it without nginx)
serves the signed URLs the gateways hand out, verified as the nginx edges verify them,
and nothing unsigned: before, the signed URLs were a 404 and every object a plain GET."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from aiohttp.test_utils import TestClient, TestServer

from reelstream.config import Settings
from reelstream.edge.origin import origin_app
from reelstream.edge.signing import EdgeSecret
from reelstream.gateways.signing import EdgeSigner
from reelstream.runtime import Runtime

SECRET = EdgeSecret("edge-secret-for-tests")
PREFIX = "packages/film-1/pkg-1/"
SEGMENT = b"\x00\x00\x00\x18moof encrypted bytes"


@pytest.fixture
async def origin(tmp_path: Path) -> AsyncIterator[TestClient]:
    runtime = Runtime(Settings(data_dir=tmp_path / "reel"))
    runtime.objects.put(PREFIX + "h264-360p/seg-00001.m4s", SEGMENT, content_type="video/mp4")
    runtime.objects.put("packages/film-2/pkg-2/h264-360p/seg-00001.m4s", SEGMENT, content_type="video/mp4")
    try:
        async with TestClient(TestServer(origin_app(runtime.objects, secret=SECRET))) as client:
            yield client
    finally:
        runtime.close()


def signed(title: str = "film-1", prefix: str = PREFIX, ttl_s: int = 600, now: float | None = None) -> str:
    """The path of a segment URL as the manifest gateway writes it."""
    base = EdgeSigner("http://origin.test", SECRET.value, ttl_s).media_base(prefix, title, now or time.time())
    return urlsplit(base).path + "h264-360p/seg-00001.m4s"


async def test_a_signed_segment_url_is_served(origin: TestClient) -> None:
    r = await origin.get(signed())
    assert r.status == 200 and await r.read() == SEGMENT
    r = await origin.get(signed(), headers={"Range": "bytes=0-3"})
    assert r.status == 206 and await r.read() == SEGMENT[:4]


async def test_unsigned_forged_expired_and_other_title_urls_are_refused(origin: TestClient) -> None:
    assert (await origin.get("/" + PREFIX + "h264-360p/seg-00001.m4s")).status == 404  # no unsigned objects
    path = signed()
    forged = path.replace(path.split("/")[2], "A" * 22)
    assert (await origin.get(forged)).status == 403
    other_title = path.replace("/packages/film-1/pkg-1/", "/packages/film-2/pkg-2/")
    assert (await origin.get(other_title)).status == 403  # one title's signature, another title's objects
    escape = path.replace("h264-360p/", "../../film-2/pkg-2/h264-360p/")
    assert (await origin.get(escape)).status in (403, 404)
    r = await origin.get(signed(ttl_s=60, now=time.time() - 120))
    assert r.status == 410 and "fetch a fresh manifest" in await r.text()
    assert (await origin.get("/healthz")).status == 200
