"""No key bytes anywhere they must not be: after packaging a title in cenc and cbcs with
ReelStream's packager and key service (events published), scan every object in origin
storage, every manifest generated for every device profile, every message of every topic
of the event log, the state store's file, and everything logged, for each content key
and the KEK in raw, hex, base64 and base64url forms. Only wrapped keys may be at rest.
"""

from __future__ import annotations

import base64
import logging
import secrets
from pathlib import Path

import pytest

from reelstream.config import Settings
from reelstream.events.topics import TOPICS
from reelstream.keys.kek import AesGcmKek
from reelstream.keys.service import CONTENT_KEYS, KeyService
from reelstream.media.package import dash, hls
from reelstream.runtime import Runtime
from tests.support.browser import build_browser_media, package_for_test

PROFILES = (hls.CHROMIUM_CLEARKEY,
            hls.DeviceProfile("living-room-tv", frozenset({"avc1", "mp4a", "wvtt"}), security="hardware",
                              drm=("clearkey", "widevine", "playready", "fairplay")))


def forms(secret: bytes) -> dict[str, bytes]:
    """Every spelling of ``secret`` a careless writer could produce."""
    b64 = base64.b64encode(secret)
    url = base64.urlsafe_b64encode(secret)
    return {"raw": secret, "hex": secret.hex().encode(), "HEX": secret.hex().upper().encode(),
            "base64": b64, "base64 unpadded": b64.rstrip(b"="), "base64url": url,
            "base64url unpadded": url.rstrip(b"=")}


def find(secrets_: dict[str, bytes], where: str, data: bytes) -> list[str]:
    hits = []
    for name, secret in secrets_.items():
        for form, needle in forms(secret).items():
            if needle in data:
                hits.append(f"{name} ({form}) in {where}")
    return hits


def test_no_key_bytes_in_storage_manifests_events_state_or_logs(tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    kek_bytes = secrets.token_bytes(32)
    runtime = Runtime(Settings(data_dir=tmp_path / "reel"))
    service = KeyService(runtime.state, AesGcmKek(kek_bytes), runtime.publish, producer="test")
    cache = build_browser_media(tmp_path / "media")
    packages = [package_for_test(runtime, service, f"t-scan-{s}", s, cache) for s in ("cenc", "cbcs")]

    keys = {f"{p.title_id}/{c}": k.key for p in packages for c, k in service.keys_for(
        p.title_id, ["AUDIO", "SD", "HD"], scheme=p.scheme).items()}
    assert len(keys) == 6 and len(set(keys.values())) == 6
    sensitive = {**keys, "KEK": kek_bytes}
    hits: list[str] = []

    objects = list(runtime.objects.list(""))
    assert any(o.key.endswith(".m4s") for o in objects) and any(o.key.endswith("package.json") for o in objects)
    for info in objects:
        hits += find(sensitive, f"object {info.key}", runtime.objects.get(info.key))

    urls = hls.UrlBuilder(clearkey_license="https://lic/x", clearkey_key="https://lic/{key_id}")
    for package in packages:
        for profile in PROFILES:
            hits += find(sensitive, f"{package.title_id} {profile.name} MPD", dash.mpd(package, profile, urls).encode())
            hits += find(sensitive, f"{package.title_id} {profile.name} m3u8",
                         hls.multivariant_playlist(package, profile, urls).encode())
            for track in hls.select_tracks(package, profile).video + package.tracks[-4:]:
                try:
                    playlist = hls.media_playlist(package, track.track_id, profile, urls)
                except hls.NothingPlayable:
                    continue
                hits += find(sensitive, f"{track.track_id} playlist", playlist.encode())

    runtime.log.flush()
    consumer = runtime.log.consumer([t.name for t in TOPICS], None)
    records = []
    while batch := consumer.poll(timeout=0.2):
        records += batch
    consumer.close()
    assert {r.topic for r in records} >= {"reel.keys", "reel.catalog"}
    for r in records:
        hits += find(sensitive, f"event {r.topic}/{r.partition}@{r.offset}", (r.key or b"") + r.value
                     + b"".join(v for _, v in r.headers))
    decoded = [runtime.codec.decode(r.value) for r in records if r.topic == "reel.keys"]
    assert {k["key_id"] for e in decoded for k in e["keys"]} >= {service.key_ids(p.title_id, p.scheme)["SD"] for p in packages}

    rows = [r.values for p in packages for r in runtime.state.query(CONTENT_KEYS, (p.title_id,))]
    assert rows and all(set(r) >= {"wrapped_key", "key_id"} for r in rows)
    runtime.close()
    for path in sorted((tmp_path / "reel").glob("*.db*")):
        hits += find(sensitive, f"state/log file {path.name}", path.read_bytes())

    hits += find(sensitive, "log output", caplog.text.encode())
    assert hits == []


@pytest.mark.parametrize("form", ["raw", "hex", "HEX", "base64", "base64 unpadded", "base64url", "base64url unpadded"])
def test_the_scan_finds_a_planted_key_in_every_form(form: str) -> None:
    key = bytes(range(250, 256)) + secrets.token_bytes(10)  # 0xfa.. makes base64 and base64url differ
    planted = b'{"junk": "' + forms(key)[form] + b'"}'
    assert any(f"({form})" in hit for hit in find({"k": key}, "planted", planted))
