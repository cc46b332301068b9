"""A downloaded title plays offline, decrypted with its persistent license's keys, until
the license expires; then the player refuses and the license server does too (issue #5).

Real media this time (ffmpeg 8.1, a 4 s title), packaged and encrypted (``cenc``) by
ReelStream's packager with the key service's keys. The device downloads through the
gateways (``POST /downloads/licenses``, then a persistent Clear Key license for every
key its manifest signals) and keeps the segments it fetched from origin storage. Offline,
the player decrypts each track with the key its license holds (ffmpeg's CENC decryption,
as a CDM would) and decodes every frame: the decrypted samples must be the transcoder's
clear samples byte for byte."""

from __future__ import annotations

import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from reelstream.config import Settings
from reelstream.events.model import new_event
from reelstream.gateways import policy
from reelstream.gateways.app import create_app
from reelstream.identity.tokens import b64url, b64url_decode
from reelstream.media.package.model import Package
from reelstream.media.package.packager import package_title
from reelstream.runtime import Runtime
from tests.functional.test_gateways_embedded import US, sign_up
from tests.support.media_fixtures import (
    DEFAULT_AUDIO,
    DEFAULT_RENDITIONS,
    build_media,
    framemd5,
    upload_title,
)
from tests.unit.gateways.support import T0, Clock, drain, grant, key_service, settings

HOUR, DAY = 3_600_000, 86_400_000
RENDITIONS = [r.rendition_id for r in DEFAULT_RENDITIONS]


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_media(tmp_path_factory.mktemp("offline-media"))


@pytest.fixture
async def stack(tmp_path: Path, media: Path) -> AsyncIterator[dict[str, Any]]:
    runtime = Runtime(Settings(data_dir=tmp_path / "reel"))
    keys = key_service(runtime)
    upload_title(runtime.objects, "film-dl", media)
    package = package_title(runtime.objects, "film-dl", RENDITIONS, DEFAULT_AUDIO, (), "cenc", keys)
    for event_type, data in (
            ("TitleRegistered", {
                "title_id": "film-dl", "title": "Film", "original_language": "en", "audio_languages": ["en"],
                "rating": {"system": "MPAA", "value": "PG"}, "genres": ["drama"],
                "license_terms": {"territories": ["US"], "window_start": T0, "window_end": None,
                                  "offline_download_allowed": True, "max_height": 2160}}),
            ("TitlePackaged", {"title_id": "film-dl", "package_id": package.package_id, "formats": ["dash", "hls"],
                               "schemes": ["cenc"], "storage_prefix": package.storage_prefix,
                               "rendition_ids": RENDITIONS}),
            ("TitlePublished", {"title_id": "film-dl", "package_id": package.package_id})):
        runtime.publish(new_event(event_type, data, producer="test", correlation_id="film-dl"))
    drain(runtime)
    clock = Clock(time.time())
    async with TestClient(TestServer(create_app(runtime, settings(), keys, clock=clock))) as client:
        yield {"client": client, "runtime": runtime, "package": package, "clock": clock, "media": media}
    runtime.close()


@dataclass
class OfflinePlayer:
    """What a device keeps for a download (segments, persistent keys, the license's terms)
    and plays with no network, enforcing expiry with its own clock as a CDM does."""

    files: dict[str, Path]  # track id -> init + segments, as downloaded
    kids: dict[str, str]  # track id -> key id
    jwks: dict[str, Any]
    license: policy.OfflineLicense
    frames: dict[str, list[str]] = field(default_factory=dict)

    def play(self, now_ms: int) -> str | None:
        """Decrypt and decode every track; the refusal message once the license has expired."""
        if self.license.first_played_ms is None:
            self.license = policy.OfflineLicense(self.license.license_id, self.license.expires_ms,
                                                 self.license.playback_window_ms, first_played_ms=now_ms)
        if (denial := policy.offline_playable(self.license, now_ms)) is not None:
            return denial.detail
        held = {b64url_decode(k["kid"]).hex(): b64url_decode(k["k"]) for k in self.jwks["keys"]}
        for track_id, path in self.files.items():
            # Every frame decodes without an error (framemd5 is strict), with the license's key.
            self.frames[track_id] = framemd5(path, key=held[self.kids[track_id]])
        return None


async def test_a_download_plays_offline_decrypted_until_expiry_then_refuses(stack: dict[str, Any],
                                                                          tmp_path: Path) -> None:
    client, runtime, package, clock = stack["client"], stack["runtime"], stack["package"], stack["clock"]
    package_: Package = package
    user = await sign_up(client, "offline@example.com", "phone", "hardware")
    grant(runtime, user["account_id"], "sub-dl")
    drain(runtime)
    r = await client.post("/downloads/licenses", json={"title_id": "film-dl"}, headers=user["auth"])
    assert r.status == 201, await r.text()
    download = await r.json()
    r = await client.get("/" + download["manifest_url"].split("://", 1)[1].split("/", 1)[1], headers=US)
    assert r.status == 200, await r.text()
    signalled = sorted({k.replace("-", "") for k in re.findall(r'cenc:default_KID="([0-9a-f-]{36})"', await r.text())})
    tracks = {t.track_id: t for t in package_.tracks if t.key_id}
    assert sorted({t.key_id for t in tracks.values()}) == signalled  # the manifest signals every track's key
    r = await client.post(f"/licenses/clearkey?ticket={download['ticket']}", headers=US, data=json.dumps(
        {"kids": [b64url(bytes.fromhex(k)) for k in signalled], "type": "persistent-license"}))
    assert r.status == 200, await r.text()
    jwks = await r.json()
    assert jwks["type"] == "persistent-license" and len(jwks["keys"]) == len(signalled)
    drain(runtime)  # fetching the download's keys leaves it in the account's downloads
    r = await client.get("/downloads/licenses", headers=user["auth"])
    assert r.status == 200 and download["license_id"] in json.dumps(await r.json()), await r.text()

    # The downloader keeps each track's init segment and media segments.
    files = {}
    for track_id, t in tracks.items():
        path = tmp_path / f"{track_id}.mp4"
        path.write_bytes(b"".join(runtime.objects.get(package_.storage_prefix + key)
                                  for key in [t.init, *(t.media_key(s.number) for s in t.segments)]))
        files[track_id] = path
    player = OfflinePlayer(files, {i: t.key_id for i, t in tracks.items() if t.key_id}, jwks,
                           policy.OfflineLicense(download["license_id"], download["expires_at_ms"],
                                                 download["playback_window_ms"]))

    # Offline: two days later, then just inside the 48 h playback window.
    start = clock.now * 1000 + 2 * DAY
    assert player.play(start) is None
    held = {b64url_decode(k["kid"]).hex(): b64url_decode(k["k"]) for k in jwks["keys"]}
    for track_id in RENDITIONS + list(DEFAULT_AUDIO):  # decrypted samples == the transcoder's clear ones
        protected = framemd5(files[track_id], key=held[str(tracks[track_id].key_id)], copy=True)
        source = _source_packets(stack["media"], track_id)
        assert [_size_md5(line) for line in protected] == [_size_md5(line) for line in source]
        assert len(player.frames[track_id]) == len(source) > 0
    assert player.play(start + 47 * HOUR) is None
    # 48 h after the first play the license has expired: the player refuses...
    assert "expired" in (player.play(start + 48 * HOUR) or "")
    # ...and without the key nothing decodes: the encryption is real.
    with pytest.raises(AssertionError):
        framemd5(files[RENDITIONS[0]], key=bytes(16))
    # Back online after the license's 30 days: the license server refuses the download ticket.
    clock.advance(31 * 86_400)
    r = await client.post(f"/licenses/clearkey?ticket={download['ticket']}", headers=US, data=json.dumps(
        {"kids": [b64url(bytes.fromhex(signalled[0]))], "type": "persistent-license"}))
    assert r.status == 401 and "expired" in (await r.json())["error"]


def _size_md5(framemd5_line: str) -> list[str]:
    """A packet's size and MD5 (fields 5 and 6; side data may follow)."""
    return [f.strip() for f in framemd5_line.split(",")[4:6]]


def _source_packets(media: Path, track_id: str) -> list[str]:
    if track_id in RENDITIONS:
        return [line for c in sorted((media / "renditions" / track_id).glob("*.mp4"))
                for line in framemd5(c, copy=True)]
    return framemd5(media / "audio" / f"{track_id}.mp4", copy=True)
