"""The page's player script comes from the repository's web/node_modules, or from the folder
REEL_SHAKA_DIR names (the image, where no repository surrounds the installed package); a
page that cannot play says so at start, with the fix."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from reelstream.config import Settings
from reelstream.runtime import Runtime
from reelstream.web.app import SHAKA_SCRIPT, web_app


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    runtime = Runtime(Settings(data_dir=tmp_path / "reel"))
    yield runtime
    runtime.close()


async def test_the_player_script_is_served_from_reel_shaka_dir(tmp_path: Path, runtime: Runtime,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    shaka = tmp_path / "shaka-dist"
    shaka.mkdir()
    (shaka / SHAKA_SCRIPT).write_text("/* shaka */")
    monkeypatch.setenv("REEL_SHAKA_DIR", str(shaka))
    async with TestClient(TestServer(web_app(runtime))) as client:
        served = await client.get(f"/shaka/{SHAKA_SCRIPT}")
        assert served.status == 200 and await served.text() == "/* shaka */"


async def test_without_a_player_script_the_start_says_the_page_cannot_play(
        tmp_path: Path, runtime: Runtime, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("REEL_SHAKA_DIR", str(tmp_path / "nowhere"))
    with caplog.at_level(logging.WARNING, logger="reelstream.web.app"):
        app = web_app(runtime)
    assert "the web page cannot play" in caplog.text and "REEL_SHAKA_DIR" in caplog.text
    async with TestClient(TestServer(app)) as client:
        assert (await client.get("/")).status == 200  # the catalog page still answers
