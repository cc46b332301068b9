"""The watch page's profiles in headless Chromium, against the real gateways: "Who's
watching?" after sign-in, a kids' profile made and chosen in the page (its token names it,
so the manifest gateway holds titles to its band), an R-rated title marked in the catalog
and refused with the PROFILE_MATURITY reason (by the page, and by the gateway when played
anyway), a G title playing on the kids' profile, switching back up and raising a band only
with the account password, a wrong password and a throttled one (429, Retry-After) said
plainly. The page before profiles had none of this: every test here fails on it.
"""

from __future__ import annotations

import base64
import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.integration.test_edge_delivery import NO_NGINX
from tests.integration.test_web_player import (
    ARTIFACTS,
    EMAIL,
    PASSWORD,
    TITLE,
    WAIT_MS,
    browser,
    drain,
    post,
    wait,
    web_stack,
)
from tests.support.browser import browser_missing

__all__ = ["browser"]  # a fixture (module-scoped there): one Chromium for the module

ADULT = "t-web-r"  # rated R (MPAA): 18+
pytestmark = pytest.mark.skipif(browser_missing() is not None or NO_NGINX is not None,
                                reason=browser_missing() or NO_NGINX or "")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    titles = ((TITLE, "cenc", "Signal Tones"), (ADULT, "cenc", "Night Shift", True, "R"))
    with web_stack(tmp_path_factory.mktemp("web-profiles"), titles, max_streams=10) as stack:
        yield stack


def sign_in(context: Any, base: str, email: str = EMAIL) -> Any:
    page = context.new_page()
    page.goto(f"{base}/web/")
    page.fill("#email", email)
    page.fill("#password", PASSWORD)
    page.click("#signin-button")
    return page


def token_profile(token: str) -> str:
    """The profile a session token names (its claims are the token's middle part)."""
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    return str(claims["prf"])


def shown(page: Any, section: str) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_selector(f"#{section}:not([hidden])", timeout=WAIT_MS)
    except PlaywrightTimeout:
        showing = page.evaluate("Array.from(document.querySelectorAll('main > section:not([hidden])'), (s) => s.id)")
        errors = page.evaluate("Array.from(document.querySelectorAll('.error'), (e) => e.id + ': ' + e.textContent)")
        pytest.fail(f"the page never showed #{section}; it shows {showing}, messages {errors}")


def text(page: Any, selector: str) -> str:
    return page.text_content(selector) or ""


def picks(page: Any) -> list[str]:
    return page.eval_on_selector_all(".profile .pick", "els => els.map((e) => e.textContent)")  # type: ignore[no-any-return]


def profile_id(page: Any, name: str) -> str:
    found = page.evaluate(f"reelApp.profiles.find((p) => p.name === {json.dumps(name)})")
    assert found is not None, f"the page lists no profile {name}: {page.evaluate('reelApp.profiles')}"
    return str(found["profile_id"])


def submit_password(page: Any, password: str) -> None:
    page.fill("#profile-password", password)
    page.click("#profile-password-button")


def test_a_kids_profile_chosen_in_the_page_marks_and_refuses_an_r_title_and_plays_a_g_one(
        site: dict[str, Any], browser: Any) -> None:
    context = browser.new_context()
    page = sign_in(context, site["base"])
    # One profile: no picker, straight to the catalog (as before), every title open to it.
    page.wait_for_selector(f".card[data-title-id='{ADULT}']", timeout=WAIT_MS)
    assert page.query_selector(".card.locked") is None, "the main profile (18+) may open every title"
    assert text(page, f".card[data-title-id='{ADULT}'] .band") == "R · 18+"
    assert text(page, f".card[data-title-id='{TITLE}'] .band") == "G · all ages"

    page.click("#switch-profile")
    shown(page, "profiles")
    assert picks(page) == ["main · 18+"]
    page.fill("#new-profile-name", "Kids")
    page.select_option("#new-profile-band", "7")
    page.click("#new-profile-button")
    page.wait_for_function("() => reelApp.profiles.length === 2", timeout=WAIT_MS)
    assert picks(page) == ["main · 18+", "Kids · 7+"], text(page, "#profiles-error")
    kids = profile_id(page, "Kids")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "web-profiles.png"))

    page.click(f".profile[data-profile-id='{kids}'] .pick")
    shown(page, "catalog")
    assert page.is_hidden("#profile-password-form"), "a profile with a lower band needs no password"
    assert token_profile(page.evaluate("reelApp.token")) == kids, "the session token names the chosen profile"
    assert "Kids (7+)" in text(page, "#active-profile")
    locked = page.wait_for_selector(f".card.locked[data-title-id='{ADULT}']", timeout=WAIT_MS)
    assert locked.get_attribute("data-reason") == "PROFILE_MATURITY"
    assert text(page, f".card[data-title-id='{ADULT}'] .lock") == "Not on the Kids profile"
    assert page.query_selector(f".card.locked[data-title-id='{TITLE}']") is None

    page.wait_for_function(f"() => document.querySelector(\".card[data-title-id='{ADULT}'] img\").complete",
                           timeout=WAIT_MS)
    page.screenshot(path=str(ARTIFACTS / "web-profiles-catalog.png"))
    # The page says why before anyone presses Play...
    locked.click()
    shown(page, "title")
    assert page.is_disabled("#play")
    said = text(page, "#player-error")
    assert '"Night Shift" is rated R (MPAA, 18+), and the Kids profile plays titles up to 7+' in said, said
    assert "raise Kids's limit under Profiles" in said
    page.screenshot(path=str(ARTIFACTS / "web-profiles-refused.png"))
    # ...and when played anyway, the gateway's refusal reaches the viewer with its reason.
    page.evaluate("reelApp.play(0).catch(() => null)")
    page.wait_for_function("() => document.getElementById('player-error').textContent.startsWith('title ')",
                           timeout=WAIT_MS)
    said = text(page, "#player-error")
    assert said.startswith(f"title {ADULT} is rated R (MPAA, 18+); this profile plays titles up to 7+"), said
    assert said.endswith("Switch profile, or raise its limit under Profiles.")
    assert page.get_attribute("#player-error", "data-reason") == "PROFILE_MATURITY"

    # A G title plays on the kids' profile: its manifest is asked for with the Kids token.
    page.click("#back")
    shown(page, "catalog")
    page.click(f".card[data-title-id='{TITLE}']")
    shown(page, "title")
    assert page.is_enabled("#play") and text(page, "#player-error") == ""
    manifest = f"/manifests/titles/{TITLE}/manifest.mpd"  # CMCD's query follows
    with page.expect_request(lambda r: manifest in r.url, timeout=WAIT_MS) as opened:
        page.click("#play")
    assert token_profile(opened.value.headers["authorization"].split()[1]) == kids
    wait(page, "s.playing && s.totalVideoFrames > 0 && s.currentTime > 0.3")

    # Back up to main (18+) from Kids: the password, a wrong one said plainly first.
    page.click("#switch-profile")
    shown(page, "profiles")
    assert page.evaluate("reelApp.player") is None, "nothing plays behind the picker"
    main = profile_id(page, "main")
    page.click(f".profile[data-profile-id='{main}'] .pick")
    page.wait_for_selector("#profile-password-form:not([hidden])", timeout=WAIT_MS)
    assert text(page, "#profile-password-why") == ("Switching to main (18+) from a profile limited to 7+ needs "
                                                   "the account password.")
    submit_password(page, "not the password")
    page.wait_for_function("() => document.getElementById('profiles-error').textContent !== ''", timeout=WAIT_MS)
    assert text(page, "#profiles-error").startswith("That password is wrong, so nothing was changed: Switching to "
                                                    "main (18+)")
    assert token_profile(page.evaluate("reelApp.token")) == kids
    submit_password(page, PASSWORD)
    shown(page, "catalog")
    assert token_profile(page.evaluate("reelApp.token")) == main
    page.wait_for_selector(f".card[data-title-id='{ADULT}']", timeout=WAIT_MS)
    assert page.query_selector(".card.locked") is None
    context.close()


def account_call(base: str, method: str, path: str, token: str, body: dict[str, Any]) -> int:
    request = urllib.request.Request(f"{base}{path}", json.dumps(body).encode(), method=method,
                                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def test_who_is_watching_after_sign_in_and_bands_lowered_freely_raised_with_the_password(
        site: dict[str, Any], browser: Any) -> None:
    base, email = site["base"], "family@example.com"
    post(f"{base}/auth/accounts", {"email": email, "password": PASSWORD, "country": "US"})
    token = post(f"{base}/auth/sessions", {"email": email, "password": PASSWORD})["token"]
    assert account_call(base, "POST", "/auth/profiles", token, {"name": "Teen", "max_age": 13}) == 201

    context = browser.new_context()
    page = sign_in(context, base, email)
    shown(page, "profiles")  # two profiles: the page asks who is watching
    assert text(page, "#profiles h2") == "Who's watching?"
    assert picks(page) == ["main · 18+", "Teen · 13+"]
    teen = profile_id(page, "Teen")
    band = f".profile[data-profile-id='{teen}'] select.band"

    page.select_option(band, "7")  # lowering: no password
    page.wait_for_function("() => document.getElementById('profiles-status').textContent !== ''", timeout=WAIT_MS)
    assert text(page, "#profiles-status") == "Teen now plays titles up to 7+."
    assert page.is_hidden("#profile-password-form")

    page.select_option(band, "16")  # raising: the password
    page.wait_for_selector("#profile-password-form:not([hidden])", timeout=WAIT_MS)
    assert text(page, "#profile-password-why") == "Raising Teen's limit from 7+ to 16+ needs the account password."
    submit_password(page, "wrong")
    page.wait_for_function("() => document.getElementById('profiles-error').textContent !== ''", timeout=WAIT_MS)
    assert text(page, "#profiles-error").startswith("That password is wrong, so nothing was changed: Raising Teen's")
    submit_password(page, PASSWORD)
    page.wait_for_function("() => document.getElementById('profiles-status').textContent !== ''", timeout=WAIT_MS)
    assert text(page, "#profiles-status") == "Teen now plays titles up to 16+."
    assert picks(page) == ["main · 18+", "Teen · 16+"]

    # Ten wrong passwords (a child at the TV) hold the account's: the page says for how long.
    for _ in range(10):
        assert account_call(base, "PATCH", f"/auth/profiles/{teen}", token, {"password": "guess", "max_age": 18}) == 401
    page.select_option(band, "18")
    page.wait_for_selector("#profile-password-form:not([hidden])", timeout=WAIT_MS)
    submit_password(page, PASSWORD)
    page.wait_for_function("() => document.getElementById('profiles-error').dataset.status === '429'",
                           timeout=WAIT_MS)
    said = text(page, "#profiles-error")
    assert re.fullmatch(r"Too many wrong passwords for this account: try again in 1[45] min \d+ s\. "
                        r"Nothing was changed\.", said), said

    # Choosing main (the sign-in's own profile) needs nothing more.
    page.click("#profile-password-cancel")
    page.click(f".profile[data-profile-id='{profile_id(page, 'main')}'] .pick")
    shown(page, "catalog")
    context.close()


def test_a_download_made_on_one_profile_does_not_play_offline_on_a_kids_profile(
        site: dict[str, Any], browser: Any) -> None:
    """The browser keeps downloads for every profile on it; offline, no gateway is asked, so
    the page holds the kept download's band to the active profile itself."""
    from reelstream.events.model import new_event

    base, email = site["base"], "offline@example.com"
    account = post(f"{base}/auth/accounts", {"email": email, "password": PASSWORD, "country": "US"})
    site["runtime"].publish(new_event("EntitlementGranted", {
        "entitlement_id": "e-offline", "user_id": account["account_id"], "kind": "SUBSCRIPTION", "title_id": None,
        "plan": "standard", "starts_at": datetime(2020, 1, 1, tzinfo=UTC), "ends_at": None}, producer="test"))
    drain(site["runtime"])
    token = post(f"{base}/auth/sessions", {"email": email, "password": PASSWORD})["token"]
    assert account_call(base, "POST", "/auth/profiles", token, {"name": "Kids", "max_age": 7}) == 201

    context = browser.new_context()
    page = sign_in(context, base, email)
    shown(page, "profiles")
    page.click(f".profile[data-profile-id='{profile_id(page, 'main')}'] .pick")
    shown(page, "catalog")
    page.click(f".card[data-title-id='{ADULT}']")
    shown(page, "title")
    page.click("#download")
    page.wait_for_function("() => /^downloaded|Not available|failed/i.test("
                           "document.querySelector('#download-status').textContent)", timeout=WAIT_MS)
    assert text(page, "#download-status").startswith("downloaded"), text(page, "#download-status")

    page.click("#switch-profile")
    shown(page, "profiles")
    page.click(f".profile[data-profile-id='{profile_id(page, 'Kids')}'] .pick")
    shown(page, "catalog")
    context.set_offline(True)
    refused = page.evaluate(f"reelApp.playOffline('{ADULT}').then(() => 'played', (e) => [e.reason, e.message])")
    context.set_offline(False)
    assert refused == ["PROFILE_MATURITY", ('"Night Shift" is rated R (MPAA, 18+), and the Kids profile plays titles '
                       "up to 7+. Switch profile, or raise Kids's limit under Profiles (it needs the account "
                       "password).")]
    assert page.evaluate("reelApp.player") is None, "nothing was loaded"
    context.close()
