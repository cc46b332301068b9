"""Offline downloads on Kafka + Cassandra: persistent licenses with expiry, limits,
refusals with reasons, renewal and return as events, and a headless offline player that
plays a download until its license expires, then refuses.

The offline player keeps what a device keeps (the persistent JWK set, the license's
expiry and playback window, the manifest) and enforces expiry with its own clock, as
real CDMs do for persistent licenses. It checks it holds a key for every key id the
manifest signals; ``tests/functional/test_gateways_offline.py`` plays a real encrypted
download, decrypting every track with the persistent license's keys.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from reelstream.gateways import policy
from reelstream.gateways.app import create_app
from reelstream.identity.tokens import b64url_decode
from reelstream.processors.licenses.logic import LICENSES
from reelstream.runtime import Runtime
from tests.support.browser import serve
from tests.unit.gateways.support import (
    Api,
    drop_keyspace,
    grant,
    key_service,
    kid,
    publish_title,
    server_settings,
    settings,
    start_groups_at_end,
    start_processors,
    stop_process,
    wait_for,
)

pytestmark = pytest.mark.integration
HOUR, DAY = 3_600_000, 86_400_000


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, cassandra_contact: tuple[list[str], int],
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("offline")
    unique = uuid.uuid4().hex[:10]
    runtime = Runtime(server_settings(kafka_bootstrap, cassandra_contact, unique, tmp))
    runtime.log.ensure_topics([])  # opening the log creates the topics
    start_groups_at_end(kafka_bootstrap, runtime.settings.group_prefix)
    keys = key_service(runtime)
    titles = {"dl": publish_title(runtime, keys, f"dl-{unique}"),
              "dl2": publish_title(runtime, keys, f"dl2-{unique}"),
              "nodl": publish_title(runtime, keys, f"nodl-{unique}", offline=False)}
    processors = start_processors(runtime.settings, tmp / "processors.log")
    app = create_app(runtime, settings(max_downloads_per_device=1), keys)
    try:
        with serve(app) as base:
            api = Api(base)
            probe = api.account(f"probe-{unique}@x.io", [("tv", "hardware")])["tokens"][0]
            wait_for(lambda: api.call("GET", f"/playback/resume/{titles['dl'].title_id}", probe).status_code == 200,
                     120, "the catalog processor")
            yield {"api": api, "runtime": runtime, "titles": titles, "unique": unique}
    finally:
        stop_process(processors)
        runtime.close()
        drop_keyspace(runtime.settings.state_url)


@dataclass
class OfflinePlayer:
    """A device's offline playback: stored license + manifest, its own clock."""

    jwks: dict[str, Any]
    license: policy.OfflineLicense
    manifest: str
    played: list[int] = field(default_factory=list)

    def play(self, now_ms: int) -> str | None:
        """Play from storage at ``now_ms``; returns the refusal message, or None when it played."""
        if self.license.first_played_ms is None:
            self.license = policy.OfflineLicense(self.license.license_id, self.license.expires_ms,
                                                 self.license.playback_window_ms, first_played_ms=now_ms)
        denial = policy.offline_playable(self.license, now_ms)
        if denial is not None:
            return denial.detail
        held = {b64url_decode(k["kid"]).hex() for k in self.jwks["keys"]}
        signalled = {k.replace("-", "") for k in re.findall(r'cenc:default_KID="([0-9a-f-]{36})"', self.manifest)}
        missing = signalled - held
        assert not missing, f"the download lacks keys {missing}"
        self.played.append(now_ms)
        return None


def download(api: Api, token: str, title_id: str) -> Any:
    return api.call("POST", "/downloads/licenses", token, json={"title_id": title_id})


def test_download_plays_offline_until_expiry_then_refuses(stack: dict[str, Any]) -> None:
    api, runtime, title = stack["api"], stack["runtime"], stack["titles"]["dl"]
    user = api.account(f"off-{stack['unique']}@x.io", [("phone", "hardware")])
    token = user["tokens"][0]
    grant(runtime, user["account_id"], "sub-1")
    r = wait_for(lambda: (x := download(api, token, title.title_id)).status_code == 201 and x, 30,
                 "the entitlement to reach the gateway")
    granted = r.json()
    assert granted["playback_window_ms"] == 48 * HOUR
    issued_ms = int(time.time() * 1000)
    assert abs(granted["expires_at_ms"] - (issued_ms + 30 * DAY)) < 60_000
    # The streaming ticket cannot fetch persistent keys; the download ticket can.
    streaming = api.ticket(token, title.title_id)
    assert api.license(streaming, [kid(title, "SD")], "persistent-license").status_code == 400
    lic = api.license(granted["ticket"], [kid(title, c) for c in ("SD", "HD", "AUDIO")], "persistent-license")
    assert lic.status_code == 200, lic.text
    assert lic.json()["type"] == "persistent-license"
    manifest = api.call("GET", granted["manifest_url"].removeprefix(api.base)).text

    # Offline from here on: the player's own clock, no network.
    player = OfflinePlayer(lic.json(), policy.OfflineLicense(granted["license_id"], granted["expires_at_ms"],
                                                             granted["playback_window_ms"]), manifest)
    start = issued_ms + 2 * DAY
    assert player.play(start) is None
    assert player.play(start + 47 * HOUR) is None
    assert "expired" in (player.play(start + 48 * HOUR) or "")
    # A download never played still expires after 30 days.
    unplayed = OfflinePlayer(lic.json(), policy.OfflineLicense("x", granted["expires_at_ms"], 48 * HOUR), manifest)
    assert unplayed.license.first_played_ms is None
    assert "expired" in (unplayed.play(granted["expires_at_ms"]) or "")


def test_refusals_limits_renewal_and_return(stack: dict[str, Any]) -> None:
    api, runtime, titles = stack["api"], stack["runtime"], stack["titles"]
    user = api.account(f"lim-{stack['unique']}@x.io", [("tablet", "hardware")])
    token = user["tokens"][0]
    since = int(time.time() * 1000) - 1000
    r = download(api, token, titles["nodl"].title_id)
    assert r.status_code == 403 and r.json()["reason"] == "DOWNLOAD_NOT_ALLOWED"
    grant(runtime, user["account_id"], "sub-2")
    first = wait_for(lambda: (x := download(api, token, titles["dl"].title_id)).status_code == 201 and x, 30,
                     "the entitlement").json()
    wait_for(lambda: runtime.state.get(LICENSES, (user["account_id"], first["license_id"])) is not None, 60,
             "the download in the licenses view")
    r = download(api, token, titles["dl2"].title_id)  # one download per device in this deployment
    assert r.status_code == 403 and r.json()["reason"] == "DOWNLOAD_LIMIT"

    renewed = api.call("POST", f"/downloads/licenses/{first['license_id']}/renew", token)
    assert renewed.status_code == 201 and renewed.json()["renewal"] is True
    assert renewed.json()["expires_at_ms"] >= first["expires_at_ms"]
    assert api.call("DELETE", f"/downloads/licenses/{first['license_id']}", token).status_code == 204
    wait_for(lambda: (row := runtime.state.get(LICENSES, (user["account_id"], first["license_id"]))) is not None
             and row.values["returned"], 60, "the return in the licenses view")
    assert download(api, token, titles["dl2"].title_id).status_code == 201  # the slot is free again
    assert api.call("DELETE", f"/downloads/licenses/{first['license_id']}", token).status_code == 404

    reader = runtime.log.consumer(["reel.licenses"], None)
    reader.seek_to_timestamp(since)
    events: list[Any] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and sum(e.type == "DownloadLicensed" for e in events) < 3:
        events += [e for rec in reader.poll(500, 0.5)
                   if (e := runtime.codec.decode(rec.value))["user_id"] == user["account_id"]]
    reader.close()
    kinds = [(e.type, e.data.get("reason") or e.data.get("renewal")) for e in events]
    assert ("LicenseDenied", "DOWNLOAD_NOT_ALLOWED") in kinds and ("LicenseDenied", "DOWNLOAD_LIMIT") in kinds
    assert ("DownloadLicensed", False) in kinds and ("DownloadLicensed", True) in kinds
    assert any(t == "DownloadReturned" for t, _ in kinds)
