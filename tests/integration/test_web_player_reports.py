"""The watch page in headless Chromium, beyond the happy path of ``test_web_player``:
what it reports to the playback gateway (heartbeats while paused, the rendition it
plays, the end of the title, stalls, a tab sent to the background), what a viewer sees when something fails (a refused license, an expired session,
a title that is gone, no network), and signing in again on a browser whose device was
removed from the account. One stack for the module (``test_web_player.web_stack``);
time is stepped with Playwright's clock where the page waits 30 s.
"""

from __future__ import annotations

import base64
import contextlib
import json
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.test_edge_delivery import NO_NGINX
from tests.integration.test_web_player import (
    EMAIL,
    PASSWORD,
    TITLE,
    WAIT_MS,
    browser,
    drain,
    sign_in_and_open_title,
    wait,
    web_stack,
)
from tests.support.browser import browser_missing

__all__ = ["browser"]  # a fixture (module-scoped there, so one Chromium per module here too)

MESSAGE_MS = 15_000  # failures are answered in well under a second; waiting longer is a silent stall
pytestmark = pytest.mark.skipif(browser_missing() is not None or NO_NGINX is not None,
                                reason=browser_missing() or NO_NGINX or "")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    # Every test here signs in as a new browser of the one account, most of them play: more
    # than the default ten devices an account may register, five that may hold licenses, and
    # three streams (a closed tab that sent no stop counts for 70 s, from its license on).
    with web_stack(tmp_path_factory.mktemp("web-reports"), max_devices=50, max_licensed_devices=50,
                   max_streams=50) as stack:
        yield stack




def test_heartbeats_while_paused_say_paused_and_name_the_rendition(site: dict[str, Any], browser: Any) -> None:
    context = browser.new_context()
    context.clock.install()  # time flows as usual until the test fast-forwards it
    page = sign_in_and_open_title(context, site["base"])
    page.click("#play")
    wait(page, "s.playing && s.currentTime > 0.5 && s.heartbeats.some(b => b.event === 'start')")
    page.evaluate("reelApp.pause()")
    wait(page, "s.paused && s.heartbeats.some(b => b.event === 'pause')")
    context.clock.fast_forward(31_000)  # one heartbeat interval, paused all along
    state = wait(page, "s.heartbeats.some(b => b.event === 'heartbeat')")
    beat = next(b for b in state["heartbeats"] if b["event"] == "heartbeat")
    assert beat["state"] == "PAUSED", "a paused player must not count as viewing time in QoE"
    assert beat["rendition_id"] == "h264-360p-800k", "the rendition playing, as the manifest names it"
    video_kbps, variant_kbps = page.evaluate(
        "(() => { const v = reelApp.player.getVariantTracks().find((t) => t.active);"
        " return [Math.round(v.videoBandwidth / 1000), Math.round(v.bandwidth / 1000)]; })()")
    assert beat["br"] == video_kbps < variant_kbps, "the rendition's bitrate, not the variant's with its audio"
    context.close()



def session_row(site: dict[str, Any], page: Any, session_id: str) -> dict[str, Any]:
    """The sessions processor's row for ``session_id`` (of the page's account), once it has
    folded everything the gateway logged."""
    from reelstream.processors.sessions.logic import LIVE_SESSIONS

    drain(site["runtime"])
    account = json.loads(base64.urlsafe_b64decode(page.evaluate("reelApp.token").split(".")[1] + "=="))["sub"]
    row = site["runtime"].state.get(LIVE_SESSIONS, (account, session_id))
    assert row is not None, f"the sessions processor has no session {session_id}"
    return dict(row.values)


def heartbeat_posts(page: Any) -> list[str]:
    """Every heartbeat the page posts from now on, answered or not."""
    posts: list[str] = []
    page.on("request", lambda r: posts.append(r.post_data or "") if r.url.endswith("/playback/heartbeats") else None)
    return posts


def test_a_title_played_to_its_end_stops_its_session(site: dict[str, Any], browser: Any) -> None:
    from reelstream.processors.sessions.logic import is_live

    context = browser.new_context()
    context.clock.install()
    page = sign_in_and_open_title(context, site["base"])
    page.click("#play")
    # The title is 6 s long; at its end the element fires pause, then ended.
    wait(page, "document.getElementById('video').ended && "
               "s.heartbeats.some(b => b.event === 'stop' || b.event === 'pause')")
    page.evaluate("reelApp.pendingBeat")
    posts = heartbeat_posts(page)
    context.clock.fast_forward(31_000)  # past the next heartbeat interval
    page.evaluate("reelApp.pendingBeat")
    state = page.evaluate("reelApp.state()")
    assert state["errors"] == []
    after_start = [b for b in state["heartbeats"] if b["event"] != "start"]
    assert [(b["event"], b["state"], b.get("end_reason")) for b in after_start] == [("stop", "STOPPED", "ENDED")]
    assert after_start[0]["position_ms"] >= 5_900, "the stop says where the title ended"
    assert posts == [], "no beat follows the stop: the session is over"
    row = session_row(site, page, after_start[0]["sid"])
    assert row["ended"] and row["state"] == "STOPPED"
    assert not is_live(row, int(time.time() * 1000)), "an ended title no longer takes one of the account's streams"
    context.close()


def test_a_heartbeat_whose_answer_was_lost_is_posted_again_and_counted_once(site: dict[str, Any],
                                                                           browser: Any) -> None:
    """The gateway writes each beat, then the answer is lost on the way back (the fault is
    injected by Playwright after the real gateway answered): the page posts it again with
    the same seq, and the session's QoE counts every beat once."""
    context = browser.new_context()
    answered: list[int] = []

    def lose_each_first_answer(route: Any) -> None:
        seq = json.loads(route.request.post_data)["seq"]
        answered.append(seq)
        if answered.count(seq) == 1:
            route.fetch()  # the real gateway takes it...
            route.abort("connectionreset")  # ...and the page never hears back
        else:
            route.continue_()

    context.route("**/playback/heartbeats", lose_each_first_answer)
    page = sign_in_and_open_title(context, site["base"])
    page.click("#play")
    wait(page, "document.getElementById('video').ended && s.heartbeats.some(b => b.event === 'stop')")
    state = page.evaluate("reelApp.state()")
    beats = state["heartbeats"]
    assert state["errors"] == [] and [b["event"] for b in beats] == ["start", "stop"]
    assert [b["seq"] for b in beats] == [0, 1] and answered == [0, 0, 1, 1], "each beat posted twice"
    row = session_row(site, page, beats[0]["sid"])
    assert row["ended"] and row["qoe"]["events"] == 3, "start, the stop beat and PlaybackStopped: once each"
    context.close()


def test_a_stall_after_the_first_frame_is_reported_as_rebuffering(site: dict[str, Any], browser: Any) -> None:
    from playwright.sync_api import Error as PlaywrightError

    from reelstream.processors.sessions.logic import summary

    context = browser.new_context()
    context.clock.install()
    page = sign_in_and_open_title(context, site["base"])
    held: dict[str, Any] = {}

    def hold_the_first(route: Any) -> None:
        track = route.request.url.split("/seg-")[0].rsplit("/", 1)[1]  # a retry may go to another tier
        if track in held:
            route.continue_()
        else:
            held[track] = route

    # The second segment of each track (2-4 s), held: the buffer runs dry 2 s in, for real.
    # (Held video alone, Chromium plays the audio on for a while before it waits.)
    page.route("**/seg-00002.m4s*", hold_the_first)
    page.evaluate("""() => { const v = document.getElementById('video'); window.stalls = 0;
                             v.addEventListener('waiting', () => { if (v.currentTime > 1) window.stalls++; }); }""")
    page.click("#play")
    wait(page, "window.stalls > 0 && s.heartbeats.some(b => b.event === 'start')")
    # One heartbeat interval while stalled (the page's clock): that beat says BUFFERING. Shaka's
    # own timeouts (retryParameters.stallTimeout, 5 s) give up on the held requests at the same
    # jump and fetch the segments again, which go through: the stall ends a retry delay later.
    context.clock.fast_forward(30_000)
    state = wait(page, "document.getElementById('video').ended && "
                       "s.heartbeats.some(b => b.event === 'stop' || b.event === 'pause')")
    for route in held.values():
        with contextlib.suppress(PlaywrightError):  # Shaka has cancelled it already
            route.abort()
    beats = state["heartbeats"]
    assert "rebuffer_ms" not in beats[0] or not beats[0]["rebuffer_ms"], "start-up is not a stall"
    during = [b for b in beats if b["event"] == "heartbeat"]
    assert [b["state"] for b in during] == ["BUFFERING"], beats
    assert during[0]["rebuffer_ms"] >= 30_000, "stalled since the stall began, by the page's clock"
    total = sum(b.get("rebuffer_ms") or 0 for b in beats)
    assert total > during[0]["rebuffer_ms"], "the rest of the stall comes with the next beat"
    row = session_row(site, page, beats[0]["sid"])
    assert row["qoe"]["rebuffer_ms"] == total, "the sessions processor counts every stalled millisecond"
    # Not 0 any more. (Its value means little here: the page's clock jumped 30 s, the
    # gateway's, which times the session, did not.)
    assert summary(row, "ENDED")["rebuffer_ratio"] > 0
    context.close()


def test_a_page_sent_to_the_background_saves_the_position(site: dict[str, Any], browser: Any) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    context = browser.new_context()
    page = sign_in_and_open_title(context, site["base"])
    page.evaluate("""() => { const post = window.fetch; window.keptAlive = [];
        window.fetch = (url, init) => {
          if (init && init.keepalive) window.keptAlive.push(JSON.parse(init.body));
          return post(url, init);
        }; }""")
    page.click("#play")
    wait(page, "s.currentTime > 1 && s.heartbeats.some(b => b.event === 'start')")
    # Headless Chromium has no background tab (nor a CDP call to make one): the page is told
    # it is hidden as a browser tells it, by visibilityState and the visibilitychange event.
    page.evaluate("""() => {
        Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => 'hidden' });
        Object.defineProperty(document, 'hidden', { configurable: true, get: () => true });
        document.dispatchEvent(new Event('visibilitychange')); }""")
    try:  # a beat at once, not the next interval's (30 s after the start)
        page.wait_for_function("() => reelApp.state().heartbeats.some(b => b.event === 'heartbeat')",
                               timeout=MESSAGE_MS)
    except PlaywrightTimeout:
        pytest.fail(f"no beat when the page was hidden: {page.evaluate('reelApp.state()')}")
    state = page.evaluate("reelApp.state()")
    assert state["errors"] == []
    beat = next(b for b in state["heartbeats"] if b["event"] == "heartbeat")
    assert beat["state"] == "PLAYING" and beat["position_ms"] >= 1_000
    assert [b["event"] for b in page.evaluate("window.keptAlive")][-1:] == ["heartbeat"], \
        "posted with keepalive: it outlives a tab killed right after"
    # Were the tab killed now, with no pagehide and no exit beat, the position is kept.
    row = session_row(site, page, beat["sid"])
    assert row["position_ms"] == beat["position_ms"] and not row["ended"]
    context.close()

def test_signing_in_again_on_a_browser_whose_device_was_removed_registers_it_afresh(
        site: dict[str, Any], browser: Any) -> None:
    context = browser.new_context()
    page = sign_in_and_open_title(context, site["base"])
    removed = page.evaluate("reelApp.deviceId")
    # Removed from the account elsewhere (another device's settings, or support); this
    # browser still remembers the device id it registered.
    request = urllib.request.Request(f"{site['base']}/auth/devices/{removed}", method="DELETE",
                                     headers={"Authorization": "Bearer " + page.evaluate("reelApp.token")})
    with urllib.request.urlopen(request, timeout=10) as r:
        assert r.status == 204
    page.reload()
    page.fill("#email", EMAIL)
    page.fill("#password", PASSWORD)
    page.click("#signin-button")
    page.wait_for_function("() => document.querySelector('#signin-error').textContent || "
                           "document.querySelector('.card')", timeout=WAIT_MS)
    assert page.text_content("#signin-error") == "", "the viewer can sign in again on this browser"
    assert page.is_visible(f".card[data-title-id='{TITLE}']")
    renewed = page.evaluate("reelApp.deviceId")
    assert renewed != removed
    devices = json.loads(urllib.request.urlopen(urllib.request.Request(
        f"{site['base']}/auth/devices", headers={"Authorization": "Bearer " + page.evaluate("reelApp.token")}),
        timeout=10).read())["devices"]
    active = {d["device_id"] for d in devices if d["active"]}
    assert renewed in active and removed not in active
    context.close()


# --------------------------------------------------------------------------- what a viewer sees when it fails


def shown_error(page: Any, element: str) -> str:
    """The message the page shows in ``element`` (waits for one: a blank page is the failure)."""
    page.wait_for_function(f"() => document.querySelector('{element}').textContent !== ''", timeout=MESSAGE_MS)
    return str(page.text_content(element))


def expired_token(site: dict[str, Any], token: str) -> str:
    """``token``'s claims, signed with the gateway's key but issued a lifetime ago: expired."""
    from reelstream.gateways.services import SESSION
    from reelstream.identity.tokens import KeyRing, TokenSigner

    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    ttl_s = site["settings"].session_ttl_s
    signer = TokenSigner(KeyRing.from_setting(site["settings"].signing_keys), lambda: time.time() - ttl_s - 60)
    return signer.issue({k: claims[k] for k in ("sub", "prf", "dev")}, ttl_s, SESSION)


def test_a_refused_license_tells_the_viewer_why(site: dict[str, Any], browser: Any) -> None:
    context = browser.new_context()
    page = sign_in_and_open_title(context, site["base"])
    # The viewer's network moved to a country outside the title's territories between the
    # manifest and the license (a VPN, a border): the license server refuses, for real.
    page.route("**/licenses/clearkey**",
               lambda route: route.continue_(headers={**route.request.headers, "x-client-country": "FR"}))
    page.click("#play")
    message = shown_error(page, "#player-error")
    assert f"title {TITLE} is not available in FR" in message, message
    context.close()


def test_an_expired_session_sends_the_viewer_back_to_sign_in(site: dict[str, Any], browser: Any) -> None:
    context = browser.new_context()
    page = sign_in_and_open_title(context, site["base"])
    page.click("#back")
    page.wait_for_selector("#catalog:not([hidden])", timeout=WAIT_MS)
    page.evaluate(f"reelApp.token = {json.dumps(expired_token(site, page.evaluate('reelApp.token')))}")
    page.click(f".card[data-title-id='{TITLE}']")  # the page was left open past the session's lifetime
    message = shown_error(page, "#signin-error")
    assert "sign in again" in message, message
    assert page.is_visible("#signin-form")
    context.close()


def test_a_title_that_is_gone_is_explained(site: dict[str, Any], browser: Any) -> None:
    context = browser.new_context()
    page = sign_in_and_open_title(context, site["base"])
    page.evaluate("reelApp.title = { title_id: 't-gone', title: 'Gone' }")  # withdrawn after the page listed it
    page.click("#play")  # the manifest gateway answers 404
    assert "title 't-gone' is not published" in shown_error(page, "#player-error")
    # Its card, in a catalog read before it went: the title page cannot open.
    gone = {"title_id": "t-gone", "title": "Gone", "genres": [], "audio_languages": [], "offline": False,
            "poster": "posters/t-gone.jpg"}
    page.route("**/web/api/catalog", lambda route: route.fulfill(json={"titles": [gone]}))
    page.click("#back")
    page.click(".card[data-title-id='t-gone']")
    assert "title 't-gone' is not published" in shown_error(page, "#catalog-error")
    context.close()


def test_a_lost_network_is_explained(site: dict[str, Any], browser: Any) -> None:
    context = browser.new_context()
    page = sign_in_and_open_title(context, site["base"])
    context.set_offline(True)
    page.click("#play")
    assert "network" in shown_error(page, "#player-error").lower()
    context.set_offline(False)
    context.close()


def test_a_refused_download_licence_is_explained_not_left_downloading(site: dict[str, Any], browser: Any) -> None:
    context = browser.new_context()
    page = sign_in_and_open_title(context, site["base"])
    page.route("**/licenses/clearkey**",  # the download is granted; its persistent license is refused
               lambda route: route.continue_(headers={**route.request.headers, "x-client-country": "FR"}))
    page.click("#download")
    page.wait_for_function("() => /^downloaded|not available|failed/i.test("
                           "document.querySelector('#download-status').textContent)", timeout=MESSAGE_MS)
    assert page.text_content("#download-status") == f"Download failed: title {TITLE} is not available in FR"
    assert page.evaluate(f"reelApp.offlineLicense('{TITLE}')") is None
    context.close()
