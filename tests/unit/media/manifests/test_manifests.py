"""Manifests: byte-exact goldens (tests/golden/manifests) plus structural checks that
read the output the way a player does (xml.etree for the MPD, tag parsing for HLS).

Regenerate the goldens after an intended change with ``REEL_UPDATE_GOLDEN=1`` and review
the diff."""

from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from reelstream.media.package import dash, hls
from reelstream.media.package.hls import (
    AD_CHARACTERISTICS,
    CHROMIUM_CLEARKEY,
    SDH_CHARACTERISTICS,
    DeviceProfile,
    NothingPlayable,
    UrlBuilder,
)
from reelstream.media.package.model import Package
from tests.unit.media.manifests.conftest import KIDS

GOLDEN = Path(__file__).resolve().parents[3] / "golden" / "manifests"
NS = {"mpd": dash.MPD_NS, "cenc": dash.CENC_NS, "dashif": dash.DASHIF_NS}
URLS = UrlBuilder(media_base="https://cdn.example/packages/t-golden/p1/", playlist_base="",
                  clearkey_license="https://lic.example/clearkey/t-golden",
                  clearkey_key="https://lic.example/keys/t-golden/{key_id}", fairplay_host="fps.example")
LIVING_ROOM = DeviceProfile("living-room-tv", frozenset({"avc1", "hvc1", "mp4a", "wvtt"}), max_height=2160,
                            security="hardware", drm=("clearkey", "widevine", "playready", "fairplay"))


def golden(name: str, actual: str) -> None:
    path = GOLDEN / name
    if os.environ.get("REEL_UPDATE_GOLDEN") == "1":
        path.write_text(actual)
    assert actual == path.read_text(), f"{name} differs from the golden file (REEL_UPDATE_GOLDEN=1 to accept)"


CASES = [
    ("cenc", CHROMIUM_CLEARKEY, "cenc-chromium"), ("cenc", LIVING_ROOM, "cenc-living-room"),
    ("cbcs", CHROMIUM_CLEARKEY, "cbcs-chromium"), ("cbcs", LIVING_ROOM, "cbcs-living-room")]


@pytest.mark.parametrize("scheme, profile, name", CASES)
def test_golden_mpd(scheme: str, profile: DeviceProfile, name: str, request: pytest.FixtureRequest) -> None:
    package = request.getfixturevalue(f"{scheme}_package")
    golden(f"{name}.mpd", dash.mpd(package, profile, URLS))


@pytest.mark.parametrize("scheme, profile, name", CASES)
def test_golden_hls(scheme: str, profile: DeviceProfile, name: str, request: pytest.FixtureRequest) -> None:
    package = request.getfixturevalue(f"{scheme}_package")
    golden(f"{name}.m3u8", hls.multivariant_playlist(package, profile, URLS))
    for track_id in ("h264-360p-800k", "audio-en", "text-en-sdh"):
        golden(f"{name}-{track_id}.m3u8", hls.media_playlist(package, track_id, profile, URLS))


# --------------------------------------------------------------------------- DASH structure


def test_mpd_structure_for_chromium(cenc_package: Package) -> None:
    root = ET.fromstring(dash.mpd(cenc_package, CHROMIUM_CLEARKEY, URLS))
    assert root.tag == f"{{{dash.MPD_NS}}}MPD"
    assert root.get("type") == "static" and root.get("mediaPresentationDuration") == "PT5S"
    sets = root.findall("mpd:Period/mpd:AdaptationSet", NS)
    kinds = [(s.get("contentType"), s.get("lang")) for s in sets]
    assert kinds == [("video", None), ("audio", "en"), ("audio", "fr"), ("audio", "en"), ("text", "en"), ("text", "fr")]
    reps = [r.get("id") for r in sets[0].findall("mpd:Representation", NS)]
    assert reps == ["h264-360p-800k"], "software-secure Chromium gets SD only, and no HEVC"
    protection = sets[0].findall("mpd:ContentProtection", NS)
    assert protection[0].get("schemeIdUri") == "urn:mpeg:dash:mp4protection:2011"
    assert protection[0].get("value") == "cenc"
    assert protection[0].get(f"{{{dash.CENC_NS}}}default_KID") == "11111111-1111-1111-1111-111111111111"
    assert protection[1].get("schemeIdUri") == f"urn:uuid:{hls.CLEARKEY}"
    assert protection[1].find("dashif:Laurl", NS).text == URLS.clearkey_license
    assert protection[1].find("cenc:pssh", NS).text == cenc_package.pssh[hls.COMMON]
    ad = sets[3]
    assert [r.get("value") for r in ad.findall("mpd:Role", NS)] == ["alternate", "description"]
    assert ad.find("mpd:Accessibility", NS).attrib == {"schemeIdUri": dash.AUDIO_PURPOSE_SCHEME, "value": "1"}
    assert sets[4].find("mpd:Accessibility", NS).get("value") == "caption"
    assert sets[5].find("mpd:Role", NS).get("value") == "forced-subtitle"


def test_mpd_segment_timeline_covers_every_segment(cenc_package: Package) -> None:
    root = ET.fromstring(dash.mpd(cenc_package, LIVING_ROOM, URLS))
    for rep in root.iterfind(".//mpd:Representation", NS):
        track = next(t for t in cenc_package.tracks if t.track_id == rep.get("id"))
        template = rep.find("mpd:SegmentTemplate", NS)
        t, expanded = 0, []
        for s in template.iterfind("mpd:SegmentTimeline/mpd:S", NS):
            t = int(s.get("t", t))
            for _ in range(int(s.get("r", 0)) + 1):
                expanded.append((t, int(s.get("d"))))
                t += int(s.get("d"))
        assert expanded == [(s.start, s.duration) for s in track.segments]
        assert int(template.get("startNumber")) == track.segments[0].number
        assert "$Number%05d$" in template.get("media")


def test_mpd_puts_sd_and_hd_keys_in_separate_switchable_sets(cenc_package: Package) -> None:
    """DASH-IF IOP v4.3 §7.5.2: the ContentProtection descriptors of an encrypted set are on
    the AdaptationSet and apply to all its Representations (§7.7.1: one default_KID per set),
    so renditions under different keys are in different sets, marked switchable (§3.8)."""
    root = ET.fromstring(dash.mpd(cenc_package, LIVING_ROOM, URLS))
    assert root.find(".//mpd:Representation/mpd:ContentProtection", NS) is None
    sets = root.findall("mpd:Period/mpd:AdaptationSet", NS)
    for aset in sets:
        if aset.get("contentType") == "text":
            continue
        mp4 = [c for c in aset.findall("mpd:ContentProtection", NS)
               if c.get("schemeIdUri") == "urn:mpeg:dash:mp4protection:2011"]
        assert len(mp4) == 1, aset.get("id")
    kid = f"{{{dash.CENC_NS}}}default_KID"
    avc = {s.get("id"): s for s in sets if s.find("mpd:Representation", NS).get("codecs", "").startswith("avc1")}
    reps = {i: ([r.get("id") for r in s.findall("mpd:Representation", NS)], s.find("mpd:ContentProtection", NS).get(kid))
            for i, s in avc.items()}
    assert reps == {"0": (["h264-360p-800k"], "11111111-1111-1111-1111-111111111111"),
                    "1": (["h264-720p-3000k"], "22222222-2222-2222-2222-222222222222")}
    switching = {i: [p.get("value") for p in s.findall("mpd:SupplementalProperty", NS)
                     if p.get("schemeIdUri") == "urn:mpeg:dash:adaptation-set-switching:2016"]
                 for i, s in avc.items()}
    assert switching == {"0": ["1"], "1": ["0"]}
    systems = [c.get("schemeIdUri") for c in avc["0"].findall("mpd:ContentProtection", NS)]
    assert systems == ["urn:mpeg:dash:mp4protection:2011", f"urn:uuid:{hls.CLEARKEY}",
                       f"urn:uuid:{hls.WIDEVINE}", f"urn:uuid:{hls.PLAYREADY}"]


def test_segment_template_conversion() -> None:
    assert dash.segment_template("v/seg-{number:05d}.m4s") == "v/seg-$Number%05d$.m4s"
    assert dash.segment_template("v/{number}.m4s") == "v/$Number$.m4s"
    assert dash.segment_template("a$b/{number}.m4s") == "a$$b/$Number$.m4s"


# --------------------------------------------------------------------------- HLS structure


def tags(playlist: str) -> list[tuple[str, dict[str, str] | str]]:
    """(tag, attributes) for attribute-list tags, (tag, value) for the others, ("URI", line) for URIs."""
    out: list[tuple[str, dict[str, str] | str]] = []
    for line in playlist.splitlines():
        if not line.startswith("#"):
            out.append(("URI", line))
            continue
        name, _, value = line[1:].partition(":")
        if name in ("EXT-X-STREAM-INF", "EXT-X-MEDIA", "EXT-X-KEY", "EXT-X-SESSION-KEY", "EXT-X-MAP"):
            out.append((name, {k: v.strip('"') for k, v in re.findall(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)', value)}))
        else:
            out.append((name, value))
    return out


def test_multivariant_structure(cenc_package: Package) -> None:
    parsed = tags(hls.multivariant_playlist(cenc_package, CHROMIUM_CLEARKEY, URLS))
    assert parsed[0] == ("EXTM3U", "") and ("EXT-X-VERSION", "6") in parsed
    media = [a for n, a in parsed if n == "EXT-X-MEDIA"]
    audio = [m for m in media if m["TYPE"] == "AUDIO"]
    assert [(m["LANGUAGE"], m["DEFAULT"]) for m in audio] == [("en", "YES"), ("fr", "NO"), ("en", "NO")]
    assert audio[2]["CHARACTERISTICS"] == AD_CHARACTERISTICS
    subs = [m for m in media if m["TYPE"] == "SUBTITLES"]
    assert subs[0]["CHARACTERISTICS"] == SDH_CHARACTERISTICS and subs[1]["FORCED"] == "YES"
    streams = [a for n, a in parsed if n == "EXT-X-STREAM-INF"]
    assert len(streams) == 1
    s = streams[0]
    assert s["BANDWIDTH"] == str(880000 + 131072 + 800) and s["AVERAGE-BANDWIDTH"] == str(800000 + 128000 + 400)
    assert (s["CODECS"], s["RESOLUTION"], s["FRAME-RATE"], s["VIDEO-RANGE"]) == (
        "avc1.64001e,mp4a.40.2", "640x360", "24.000", "SDR")
    assert s["AUDIO"] == "audio-mp4a.40.2" and s["SUBTITLES"] == "subs"
    assert not [a for n, a in parsed if n == "EXT-X-SESSION-KEY"], "identity keys are never session keys"


def test_session_keys_for_pssh_systems_and_fairplay(cbcs_package: Package) -> None:
    parsed = tags(hls.multivariant_playlist(cbcs_package, LIVING_ROOM, URLS))
    session = [a for n, a in parsed if n == "EXT-X-SESSION-KEY"]
    assert [k["KEYFORMAT"] for k in session] == [
        f"urn:uuid:{hls.WIDEVINE}", "com.microsoft.playready", "com.apple.streamingkeydelivery",
        "com.apple.streamingkeydelivery", "com.apple.streamingkeydelivery"]
    assert {k["METHOD"] for k in session} == {"SAMPLE-AES"}
    assert {k["URI"] for k in session[2:]} == {f"skd://fps.example/{k}" for k in (KIDS["SD"], KIDS["HD"], KIDS["AUDIO"])}
    assert len([a for n, a in parsed if n == "EXT-X-STREAM-INF"]) == 3  # 360p, 720p, HEVC 1080p


@pytest.mark.parametrize("scheme, method", [("cenc", "SAMPLE-AES-CTR"), ("cbcs", "SAMPLE-AES")])
def test_media_playlist_structure(scheme: str, method: str, request: pytest.FixtureRequest) -> None:
    package = request.getfixturevalue(f"{scheme}_package")
    parsed = tags(hls.media_playlist(package, "h264-360p-800k", CHROMIUM_CLEARKEY, URLS))
    names = [n for n, _ in parsed]
    assert names.index("EXT-X-KEY") < names.index("EXT-X-MAP") < names.index("EXTINF")
    key = dict(parsed)["EXT-X-KEY"]
    assert key == {"METHOD": method, "URI": f"https://lic.example/keys/t-golden/{KIDS['SD']}",
                   "KEYFORMAT": "identity", "KEYFORMATVERSIONS": "1"}
    assert dict(parsed)["EXT-X-TARGETDURATION"] == "2"
    assert [v for n, v in parsed if n == "EXTINF"] == ["2.000,", "2.000,", "1.000,"]
    assert [v for n, v in parsed if n == "URI"][-1].endswith("h264-360p-800k/seg-00003.m4s")
    assert names[-1] == "EXT-X-ENDLIST"


def test_subtitle_playlist_has_no_key_and_no_map(cenc_package: Package) -> None:
    parsed = dict(tags(hls.media_playlist(cenc_package, "text-en-sdh", CHROMIUM_CLEARKEY, URLS)))
    assert "EXT-X-KEY" not in parsed and "EXT-X-MAP" not in parsed


def test_hd_playlist_is_refused_to_a_software_cdm(cenc_package: Package) -> None:
    with pytest.raises(NothingPlayable, match="HD key not released to a software-secure CDM"):
        hls.media_playlist(cenc_package, "h264-720p-3000k", CHROMIUM_CLEARKEY, URLS)
    with pytest.raises(NothingPlayable, match="codec hvc1 not decoded"):
        hls.media_playlist(cenc_package, "hevc-1080p-4000k", CHROMIUM_CLEARKEY, URLS)


def test_nothing_playable_names_every_reason(cenc_package: Package) -> None:
    feature_phone = DeviceProfile("feature-phone", frozenset({"mp4v"}))
    with pytest.raises(NothingPlayable, match="h264-360p-800k: codec avc1 not decoded.*audio-en: codec mp4a"):
        dash.mpd(cenc_package, feature_phone, URLS)


def test_manifests_are_deterministic(cenc_package: Package) -> None:
    assert dash.mpd(cenc_package, LIVING_ROOM, URLS) == dash.mpd(cenc_package, LIVING_ROOM, URLS)
    assert hls.multivariant_playlist(cenc_package, LIVING_ROOM, URLS) == hls.multivariant_playlist(
        cenc_package, LIVING_ROOM, URLS)


def test_mpd_signals_hdr10_in_its_own_adaptation_set(cenc_package: Package) -> None:
    from dataclasses import replace

    from tests.unit.media.manifests.conftest import video

    uhd = replace(video("hevc-2160p-15000k-hdr", "hvc1.2.4.L150.90", 3840, 2160, 16_500_000, 15_000_000, "HD"),
                  video_range="PQ")
    package = replace(cenc_package, tracks=cenc_package.tracks + (uhd,))
    root = ET.fromstring(dash.mpd(package, LIVING_ROOM, URLS))
    sets = root.findall(".//mpd:AdaptationSet[@contentType='video']", NS)
    hdr = [s for s in sets if s.find("mpd:Representation[@id='hevc-2160p-15000k-hdr']", NS) is not None]
    assert len(hdr) == 1 and len(hdr[0].findall("mpd:Representation", NS)) == 1  # never mixed with SDR
    props = {p.get("schemeIdUri"): p.get("value") for p in hdr[0].findall("mpd:SupplementalProperty", NS)}
    assert props == {"urn:mpeg:mpegB:cicp:ColourPrimaries": "9", "urn:mpeg:mpegB:cicp:TransferCharacteristics": "16",
                     "urn:mpeg:mpegB:cicp:MatrixCoefficients": "9"}
    sdr = [s for s in sets if s is not hdr[0]]
    assert not [p for s in sdr for p in s.findall("mpd:SupplementalProperty", NS)
                if p.get("schemeIdUri", "").startswith("urn:mpeg:mpegB:cicp:")]
