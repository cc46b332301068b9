"""The poster route answers a title id that cannot be one (a percent-encoded path, say)
with a 404 that says so, not with the object store's 503 and a logged traceback."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from reelstream.config import Settings
from reelstream.gateways.middlewares import errors
from reelstream.runtime import Runtime
from reelstream.web.app import web_app


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[TestClient]:
    runtime = Runtime(Settings(data_dir=tmp_path / "reel"))
    runtime.objects.put("posters/film-1.jpg", b"\xff\xd8jpeg", content_type="image/jpeg")
    app = web.Application(middlewares=[errors])  # as `reel gateway --web` mounts it
    app.add_subapp("/web", web_app(runtime))
    try:
        async with TestClient(TestServer(app)) as c:
            yield c
    finally:
        runtime.close()


@pytest.mark.parametrize("path", ["..%2Fpackages%2Ffilm-1%2Fpkg%2Fpackage.json%3F", "..%2F..%2Fetc%2Fpasswd%3F",
                                  "Film%20One"])
async def test_a_title_id_that_cannot_be_one_is_a_404_naming_the_problem(
        client: TestClient, path: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR):
        r = await client.get(f"/web/posters/{path}.jpg")
    assert r.status == 404
    assert (await r.json())["error"].startswith("no poster: the title id ")
    assert not caplog.records  # nothing for the operator to chase


async def test_a_posters_bytes_and_the_placeholder_still_come_back(client: TestClient) -> None:
    r = await client.get("/web/posters/film-1.jpg")
    assert r.status == 200 and await r.read() == b"\xff\xd8jpeg"
    r = await client.get("/web/posters/film-2.jpg")
    assert r.status == 200 and r.content_type == "image/svg+xml"
