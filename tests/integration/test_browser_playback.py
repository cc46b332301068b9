"""A real browser plays ReelStream's output: headless Debian Chromium (through Playwright,
system browser) runs Shaka Player 5.2 on EME Clear Key, for DASH and HLS, ``cenc`` and
``cbcs``. Each run switches audio language and shows a subtitle track, and reads decoded
frames and currentTime from the page.

Everything is ReelStream's: the packager's CMAF segments through the nginx tiers, the
manifests the manifest gateway renders for the Chromium device profile (with content
steering), and the keys from the real license server (the DASH Clear Key license and
the HLS identity key URIs, both with the session's playback ticket).
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_edge_delivery import NO_NGINX
from tests.integration.test_web_player import EMAIL, PASSWORD, post, web_stack
from tests.support.browser import BROWSER_AUDIO, browser_missing, chromium

pytestmark = pytest.mark.skipif(browser_missing() is not None or NO_NGINX is not None,
                                reason=browser_missing() or NO_NGINX or "")

WAIT_MS = 60_000  # an upper bound for a stuck player, not a timing assertion
# One title per scheme: a content key is never used with both cenc and cbcs.
TITLES = (("t-browser-cenc", "cenc", "Browser cenc"), ("t-browser-cbcs", "cbcs", "Browser cbcs"))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("browser")
    # Every test opens its own playback session on one device.
    with web_stack(root, TITLES, max_streams=20) as site, chromium(root) as browser:
        base = site["base"]
        session = post(f"{base}/auth/sessions", {"email": EMAIL, "password": PASSWORD})
        request = urllib.request.Request(
            f"{base}/auth/devices", json.dumps({"name": "browser test", "device_type": "browser",
                                                "security_level": "software"}).encode(),
            {"Content-Type": "application/json", "Authorization": f"Bearer {session['token']}"})
        with urllib.request.urlopen(request, timeout=10) as r:
            device_token = json.loads(r.read())["token"]
        yield {"base": base, "browser": browser, "token": device_token}


def session_manifest(stack: dict[str, Any], scheme: str, name: str) -> str:
    """Open a playback session as a signed-in device would; the URL the player follows
    (the session's ticket in it, so Shaka needs no headers)."""
    request = urllib.request.Request(f"{stack['base']}/manifests/titles/t-browser-{scheme}/{name}",
                                     headers={"Authorization": f"Bearer {stack['token']}"})
    with urllib.request.urlopen(request, timeout=10) as r:
        ticket = r.headers["X-Reel-Ticket"]
    return f"{stack['base']}/manifests/t/{ticket}/{name}"


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
    page = stack["browser"].new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(stack["base"] + "/web/static/player.html")
        # Subtitles from the viewer's preference at load. (Shaka 5.2 adds no cues to an HLS
        # WebVTT track first selected with selectTextTrack during playback; DASH does.)
        page.evaluate("([url, config]) => reel.load(url, config)",
                      [session_manifest(stack, scheme, manifest),
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
    page = stack["browser"].new_page()
    try:
        page.goto(stack["base"] + "/web/static/player.html")
        page.evaluate("url => reel.load(url)", session_manifest(stack, "cenc", "manifest.mpd"))
        wait(page, "s.totalVideoFrames > 0")
        page.evaluate("reel.selectAudio('en', 'description')")
        described = wait(page, "s.audioRoles.includes('description')")
        assert described["audioLanguage"] == "en"
        assert len(BROWSER_AUDIO) == 3
    finally:
        page.close()


def test_page_assets_exist() -> None:
    assert (Path(__file__).resolve().parents[2] / "reelstream" / "web" / "player.js").exists()
