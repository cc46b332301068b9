"""A real browser plays ReelStream's output: headless Debian Chromium (through Playwright,
system browser) runs Shaka Player 5.2 on EME Clear Key, for DASH and HLS, ``cenc`` and
``cbcs``. Each run switches audio language and shows a subtitle track, and reads decoded
frames and currentTime from the page.

Everything is ReelStream's: the packager's CMAF segments, the manifests generated per
request for the Chromium device profile, and keys from the key service. The license
routes in ``tests.support.browser.stand_in_app`` stand in for the license server (a later
issue).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import (
    BROWSER_AUDIO,
    browser_missing,
    build_browser_media,
    chromium,
    package_for_test,
    serve,
    stand_in_app,
)

pytestmark = pytest.mark.skipif(browser_missing() is not None, reason=browser_missing() or "")

WAIT_MS = 60_000  # an upper bound for a stuck player, not a timing assertion


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from reelstream.config import Settings
    from reelstream.keys.kek import AesGcmKek
    from reelstream.keys.service import KeyService
    from reelstream.runtime import Runtime

    root = tmp_path_factory.mktemp("browser")
    cache = build_browser_media(root / "media")
    runtime = Runtime(Settings(data_dir=root / "reel"))
    keys = KeyService(runtime.state, AesGcmKek(secrets.token_bytes(32)), runtime.publish, producer="test")
    # One title per scheme: a content key is never used with both cenc and cbcs.
    packages = {scheme: package_for_test(runtime, keys, f"t-browser-{scheme}", scheme, cache)
                for scheme in ("cenc", "cbcs")}
    app = stand_in_app(runtime.objects, {p.package_id: p for p in packages.values()}, keys)
    with serve(app) as base, chromium(root) as browser:
        yield {"base": base, "browser": browser, "packages": packages}
    runtime.close()


def wait(page: Any, condition: str) -> dict[str, Any]:
    """Wait for ``condition`` on the page's state (``s``), failing early on a player error."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(f"() => {{ const s = reel.state(); return s && (s.errors.length > 0 || ({condition})); }}",
                               timeout=WAIT_MS)
    except PlaywrightTimeout:
        pytest.fail(f"the player never reached {condition}: {page.evaluate('reel.state()')}")
    state: dict[str, Any] = page.evaluate("reel.state()")
    assert state["errors"] == [], f"Shaka Player error codes {state['errors']} (state {state})"
    return state


@pytest.mark.parametrize("scheme", ["cenc", "cbcs"])
@pytest.mark.parametrize("manifest", ["manifest.mpd", "master.m3u8"])
def test_chromium_plays_switches_audio_and_shows_subtitles(stack: dict[str, Any], scheme: str, manifest: str) -> None:
    package = stack["packages"][scheme]
    page = stack["browser"].new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(stack["base"] + "/player/player.html")
        # Subtitles from the viewer's preference at load. (Shaka 5.2 adds no cues to an HLS
        # WebVTT track first selected with selectTextTrack during playback; DASH does.)
        page.evaluate("([url, config]) => reel.load(url, config)",
                      [f"{stack['base']}/manifest/{package.package_id}/{manifest}",
                       {"preferredText": [{"language": "en"}]}])
        first = wait(page, "s.totalVideoFrames > 12 && s.currentTime > 0.5 && s.showingCues > 0")
        assert first["keySystem"] == "org.w3.clearkey"
        assert first["audioLanguage"] == "en"
        assert first["textLanguage"] == "en" and first["textVisible"]
        assert set(first["heights"]) == {360}, "the software-secure profile must not offer the HD rung"
        assert sorted(first["audioLanguages"]) == ["en", "fr"]

        page.evaluate("reel.selectAudio('fr')")
        french = wait(page, f"s.audioLanguage === 'fr' && s.currentTime > {first['currentTime'] + 0.5}")
        assert french["totalVideoFrames"] > first["totalVideoFrames"]
        assert french["textLanguage"] == "en" and french["textVisible"] and french["showingCues"] > 0
        assert errors == []
    finally:
        page.close()


def test_the_audio_description_track_is_offered(stack: dict[str, Any]) -> None:
    package = stack["packages"]["cenc"]
    page = stack["browser"].new_page()
    try:
        page.goto(stack["base"] + "/player/player.html")
        page.evaluate("url => reel.load(url)", f"{stack['base']}/manifest/{package.package_id}/manifest.mpd")
        wait(page, "s.totalVideoFrames > 0")
        page.evaluate("reel.selectAudio('en', 'description')")
        described = wait(page, "s.audioRoles.includes('description')")
        assert described["audioLanguage"] == "en"
        assert len(BROWSER_AUDIO) == 3
    finally:
        page.close()


def test_page_assets_exist() -> None:
    assert (Path(__file__).resolve().parents[2] / "reelstream" / "web" / "player.js").exists()
