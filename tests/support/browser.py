"""Test support for the browser and key-provider tests: an aiohttp app served on a
loopback port from a background thread (so synchronous code, like the SPEKE client and
Playwright's sync API, can call it), headless Chromium through Playwright, and the
browser-test title (media, packaging).

There is no stand-in license endpoint: every browser test that decrypts gets its keys
from the real license server through the gateways (``test_web_player.web_stack``)."""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aiohttp import web

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
SHAKA_DIST = REPO / "web" / "node_modules" / "shaka-player" / "dist"
# Flags measured to work for EME Clear Key playback headless (shared/MEASURED.md).
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--autoplay-policy=no-user-gesture-required"]


@contextmanager
def serve(app: web.Application) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1:<free port>; yields the base URL ``http://127.0.0.1:PORT``."""
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, access_log=None)
    started = threading.Event()
    port: list[int] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        port.append(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
        started.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=run, name="loopback-aiohttp", daemon=True)
    thread.start()
    if not started.wait(10):
        raise RuntimeError("the loopback server did not start")
    try:
        yield f"http://127.0.0.1:{port[0]}"
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def browser_missing() -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    if not Path(CHROMIUM).exists():
        return "Debian chromium is not installed: apt-get install -y chromium"
    try:
        import playwright  # noqa: F401
    except ImportError:
        return "playwright is not installed: pip install playwright (never `playwright install`)"
    if not (SHAKA_DIST / "shaka-player.compiled.js").exists():
        return "Shaka Player is not installed: (cd web && npm ci)"
    if shutil.which("node") is None:
        return "node is not installed"
    return None


@contextmanager
def chromium(tmp: Path) -> Iterator[Any]:
    """A headless Chromium (the system one) with a fresh profile; yields a Playwright browser context."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp / "chromium-profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield context
        finally:
            context.close()


# --------------------------------------------------------------------------- a packaged title


BROWSER_RENDITIONS = ("h264-360p-800k", "h264-720p-1500k")  # SD and HD: Chromium must get SD only
BROWSER_AUDIO = ("audio-en", "audio-fr", "audio-en-ad")
BROWSER_SUBTITLES = ("text-en-sdh", "text-fr")
BROWSER_SECONDS = 6


def build_browser_media(cache: Path) -> Path:
    """Encode the browser-test title once (ffmpeg 8.1, about 3 s of CPU): two H.264 rungs,
    three AAC tracks at different pitches, two WebVTT tracks, in the transcoder's layout."""
    from tests.support import media_fixtures as mf

    renditions = {"h264-360p-800k": mf.Rendition("h264-360p-800k", 640, 360, 800),
                  "h264-720p-1500k": mf.Rendition("h264-720p-1500k", 1280, 720, 1500)}
    for rid in BROWSER_RENDITIONS:
        mf.encode_rendition(cache / "renditions" / rid, renditions[rid], BROWSER_SECONDS)
    for i, track in enumerate(BROWSER_AUDIO):
        mf.encode_audio(cache / "audio" / f"{track}.mp4", BROWSER_SECONDS, 440 + 220 * i)
    (cache / "subtitles").mkdir(parents=True, exist_ok=True)
    for track in BROWSER_SUBTITLES:
        (cache / "subtitles" / f"{track}.vtt").write_text(mf.vtt(track.split("-")[1], BROWSER_SECONDS))
    return cache


def package_for_test(runtime: Any, key_service: Any, title_id: str, scheme: str, cache: Path) -> Any:
    """Upload the cached media as ``title_id``, package it with ReelStream's packager and the
    key service, and announce it (TitlePackaged), as the pipeline will."""
    from reelstream.events.model import new_event
    from reelstream.media.package.packager import package_title
    from tests.support.media_fixtures import upload_title

    upload_title(runtime.objects, title_id, cache)
    package = package_title(runtime.objects, title_id, BROWSER_RENDITIONS, BROWSER_AUDIO, BROWSER_SUBTITLES,
                            scheme, key_service)  # type: ignore[arg-type]
    runtime.publish(new_event("TitlePackaged", {
        "title_id": title_id, "package_id": package.package_id, "formats": ["dash", "hls"], "schemes": [scheme],
        "storage_prefix": package.storage_prefix, "rendition_ids": list(BROWSER_RENDITIONS)},
        producer="test", correlation_id=title_id))
    return package
