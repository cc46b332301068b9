"""The player reads what ReelStream's own renderers write (DASH and HLS, with and without
content steering) into the same ladder, and names what is wrong with a bad manifest."""

from __future__ import annotations

import pytest

from reelstream.media.package import dash, hls
from reelstream.media.package.hls import (
    CHROMIUM_CLEARKEY,
    ContentSteering,
    DeviceProfile,
    Pathway,
    UrlBuilder,
)
from reelstream.player.client.errors import ManifestInvalid
from reelstream.player.client.manifest import (
    fill_template,
    hls_presentation,
    parse_media_playlist,
    parse_mpd,
    parse_multivariant,
)
from tests.unit.media.manifests.conftest import KIDS, make_package

TV = DeviceProfile("tv", frozenset({"avc1", "mp4a"}), security="hardware")
URLS = UrlBuilder(media_base="http://edge.test/s/tok/99/packages/t-golden/p1/",
                  playlist_base="http://gw.test/manifests/t/T/", clearkey_license="http://gw.test/licenses/clearkey?ticket=T",
                  clearkey_key="http://gw.test/licenses/clearkey/keys/{key_id}?ticket=T")


def hls_from(package: object, profile: DeviceProfile, urls: UrlBuilder = URLS,
             steering: ContentSteering | None = None) -> object:
    master_url = "http://gw.test/manifests/titles/t-golden/master.m3u8"
    master = parse_multivariant(hls.multivariant_playlist(package, profile, urls, steering), master_url)  # type: ignore[arg-type]
    playlists = {}
    for uri in {v.uri for v in master.variants} | {a.uri for a in master.audio} | {t.uri for t in master.subtitles}:
        track_id = uri.rsplit("/", 1)[-1].removesuffix(".m3u8")
        text = hls.media_playlist(package, track_id, profile, urls)  # type: ignore[arg-type]
        playlists[uri] = parse_media_playlist(text, uri, needs_init=not track_id.startswith("text-"))
    return hls_presentation(master, playlists, master_url)


def test_dash_ladder_segments_keys_and_license_url() -> None:
    package = make_package("cenc")
    p = parse_mpd(dash.mpd(package, TV, URLS), "http://gw.test/manifests/titles/t-golden/manifest.mpd")
    assert [v.rendition_id for v in p.video] == ["h264-360p-800k", "h264-720p-3000k"]  # HEVC not for this TV
    assert p.scheme == "cenc" and p.duration_s == 5.0
    assert p.license_url == "http://gw.test/licenses/clearkey?ticket=T"
    sd = p.video[0]
    assert (sd.key_id, p.video[1].key_id) == (KIDS["SD"], KIDS["HD"])
    assert sd.init_url == URLS.media_base + "h264-360p-800k/init.mp4"
    assert [(s.number, s.start_s, s.duration_s) for s in sd.segments] == [(1, 0.0, 2.0), (2, 2.0, 2.0), (3, 4.0, 1.0)]
    assert sd.segments[2].url == URLS.media_base + "h264-360p-800k/seg-00003.m4s"
    main = p.main_audio()
    assert main is not None and main.rendition_id == "audio-en" and main.key_id == KIDS["AUDIO"]
    assert p.main_audio("fr").rendition_id == "audio-fr"  # type: ignore[union-attr]
    assert "description" in next(a for a in p.audio if a.rendition_id == "audio-en-ad").roles


def test_hls_gives_the_same_ladder_and_segments_as_dash() -> None:
    package = make_package("cbcs")
    d = parse_mpd(dash.mpd(package, CHROMIUM_CLEARKEY, URLS), "http://gw.test/m.mpd")
    h = hls_from(package, CHROMIUM_CLEARKEY)
    assert h.scheme == "cbcs" == d.scheme  # type: ignore[attr-defined]
    assert [v.rendition_id for v in h.video] == [v.rendition_id for v in d.video] == ["h264-360p-800k"]  # type: ignore[attr-defined]
    for hv, dv in zip(h.video, d.video, strict=True):  # type: ignore[attr-defined]
        assert hv.init_url == dv.init_url
        assert [(s.number, s.url) for s in hv.segments] == [(s.number, s.url) for s in dv.segments]
        assert [round(s.start_s, 3) for s in hv.segments] == [round(s.start_s, 3) for s in dv.segments]
        assert hv.key_uri == f"http://gw.test/licenses/clearkey/keys/{KIDS['SD']}?ticket=T"
    assert h.main_audio().rendition_id == "audio-en"  # type: ignore[attr-defined]


def test_with_content_steering_the_player_stays_on_the_default_pathway() -> None:
    package = make_package("cenc")
    pathways = tuple(Pathway(name, UrlBuilder(media_base=f"http://{name}.test/s/x/9/packages/t-golden/p1/",
                                              playlist_base=f"http://gw.test/manifests/t/T/p/{name}/",
                                              clearkey_license=URLS.clearkey_license,
                                              clearkey_key=URLS.clearkey_key))
                     for name in ("appliance", "pop"))
    steering = ContentSteering("http://steer.test/v1?s=1", pathways)
    mpd = dash.mpd(package, TV, UrlBuilder(clearkey_license=URLS.clearkey_license), steering)
    d = parse_mpd(mpd, "http://gw.test/m.mpd")
    assert d.video[0].segments[0].url == "http://appliance.test/s/x/9/packages/t-golden/p1/h264-360p-800k/seg-00001.m4s"
    master = parse_multivariant(hls.multivariant_playlist(package, TV, URLS, steering), "http://gw.test/master.m3u8")
    assert [v.uri.rsplit("/", 1)[-1] for v in master.variants] == ["h264-360p-800k.m3u8", "h264-720p-3000k.m3u8"]
    assert all("/p/appliance/" in m.uri for m in master.variants + master.audio)  # type: ignore[operator]
    assert len(master.audio) == 3


def test_hls_byte_ranges_continue_from_the_previous_range() -> None:
    lines = ["#EXTM3U", "#EXT-X-TARGETDURATION:2", '#EXT-X-MAP:URI="init.mp4"',
             '#EXT-X-KEY:METHOD=SAMPLE-AES-CTR,URI="k",KEYFORMAT="identity"',
             "#EXTINF:2.000,", "#EXT-X-BYTERANGE:1000@0", "all.mp4",
             "#EXTINF:2.000,", "#EXT-X-BYTERANGE:1500", "all.mp4", "#EXT-X-ENDLIST"]
    text = "\n".join(lines)
    playlist = parse_media_playlist(text, "http://e.test/t/v.m3u8")
    assert [s.byte_range for s in playlist.segments] == [(0, 1000), (1000, 1500)]
    assert playlist.scheme == "cenc" and playlist.key_uri == "http://e.test/t/k"
    assert playlist.init_url == "http://e.test/t/init.mp4"


def test_template_identifiers() -> None:
    assert fill_template("$RepresentationID$/seg-$Number%05d$.m4s", "v1", 800, 7, 0) == "v1/seg-00007.m4s"
    assert fill_template("t$Time$-$Bandwidth$-$$.m4s", "v1", 800, 1, 96000) == "t96000-800-$.m4s"


@pytest.mark.parametrize(("text", "message"), [
    ("<MPD", "not XML"),
    ('<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="dynamic"/>', "only static"),
    ('<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" mediaPresentationDuration="soon"/>', "not an xs:duration"),
    (('<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" mediaPresentationDuration="PT4S"><Period>'
      '<AdaptationSet contentType="video"><Representation id="v" bandwidth="1"/></AdaptationSet></Period></MPD>'),
     "no SegmentTemplate"),
])
def test_bad_mpds_are_named(text: str, message: str) -> None:
    with pytest.raises(ManifestInvalid, match=message):
        parse_mpd(text, "http://gw.test/m.mpd")


@pytest.mark.parametrize(("text", "message"), [
    ("#EXT-X-VERSION:6", "no #EXTM3U"),
    ("#EXTM3U\n#EXT-X-MAP:URI=\"i\"\n#EXTINF:2,\na.m4s", "live playlists"),
    ("#EXTM3U\n#EXT-X-MAP:URI=\"i\"\na.m4s\n#EXT-X-ENDLIST", "without EXTINF"),
    ("#EXTM3U\n#EXTINF:2,\na.m4s\n#EXT-X-ENDLIST", "no EXT-X-MAP"),
    ("#EXTM3U\n#EXT-X-KEY:METHOD=AES-128,URI=\"k\"\n#EXT-X-MAP:URI=\"i\"\n#EXTINF:2,\na\n#EXT-X-ENDLIST", "AES-128"),
])
def test_bad_playlists_are_named(text: str, message: str) -> None:
    with pytest.raises(ManifestInvalid, match=message):
        parse_media_playlist(text, "http://gw.test/v.m3u8")


def test_a_variant_without_a_uri_is_named() -> None:
    with pytest.raises(ManifestInvalid, match="not followed by a URI"):
        parse_multivariant("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\n", "http://gw.test/master.m3u8")


# A number that is not one is a ManifestInvalid naming it, not a ValueError: `reel load`
# counts a player's ManifestInvalid among its errors, while anything else ends the whole run.
MPD_HEAD = '<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" mediaPresentationDuration="PT4S"><Period>'


@pytest.mark.parametrize(("representation", "message"), [
    ('<Representation id="v" bandwidth="1.5e6"><SegmentTemplate initialization="i" media="m" duration="2"/>',
     "Representation@bandwidth '1.5e6'"),
    ('<Representation id="v" bandwidth="1" width="1280px"><SegmentTemplate initialization="i" media="m" duration="2"/>',
     "Representation@width '1280px'"),
    (('<Representation id="v" bandwidth="1"><SegmentTemplate initialization="i" media="m" timescale="90k" '
      'duration="2"/>'), "SegmentTemplate@timescale '90k'"),
    (('<Representation id="v" bandwidth="1"><SegmentTemplate initialization="i" media="m"><SegmentTimeline>'
      '<S t="0" d="2.0"/></SegmentTimeline></SegmentTemplate>'), "S@d '2.0'"),
])
def test_numbers_in_an_mpd_that_are_not_integers_are_named(representation: str, message: str) -> None:
    text = f'{MPD_HEAD}<AdaptationSet contentType="video">{representation}</Representation></AdaptationSet></Period></MPD>'
    with pytest.raises(ManifestInvalid, match=message):
        parse_mpd(text, "http://gw.test/m.mpd")


@pytest.mark.parametrize(("text", "message"), [
    ('#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:one\n#EXT-X-MAP:URI="i"\n#EXTINF:2,\na.m4s\n#EXT-X-ENDLIST',
     "line 2: EXT-X-MEDIA-SEQUENCE: 'one'"),
    ('#EXTM3U\n#EXT-X-MAP:URI="i"\n#EXTINF:2,\n#EXT-X-BYTERANGE:1000@x\na.m4s\n#EXT-X-ENDLIST',
     "line 4: EXT-X-BYTERANGE: 'x'"),
])
def test_numbers_in_a_media_playlist_that_are_not_integers_are_named(text: str, message: str) -> None:
    with pytest.raises(ManifestInvalid, match=message):
        parse_media_playlist(text, "http://gw.test/v.m3u8")


def test_a_variant_whose_bandwidth_is_not_an_integer_is_named() -> None:
    with pytest.raises(ManifestInvalid, match="line 2: EXT-X-STREAM-INF BANDWIDTH: '2.5M'"):
        parse_multivariant("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=2.5M\nv.m3u8\n", "http://gw.test/master.m3u8")
    with pytest.raises(ManifestInvalid, match="RESOLUTION: 'wide'"):
        parse_multivariant("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1,RESOLUTION=widex720\nv.m3u8\n",
                           "http://gw.test/master.m3u8")


@pytest.mark.parametrize("template", [
    ('<SegmentTemplate initialization="i" media="m"><SegmentTimeline><S t="0" d="1" r="999999999"/>'
     '</SegmentTimeline></SegmentTemplate>'),
    '<SegmentTemplate initialization="i" media="m" timescale="1000000" duration="1"/>',
])
def test_a_timeline_that_would_expand_past_any_title_is_refused(template: str) -> None:
    # A billion-segment timeline was expanded in memory: one such manifest stalled `reel load`.
    text = (f'{MPD_HEAD}<AdaptationSet contentType="video"><Representation id="v" bandwidth="1">{template}'
            '</Representation></AdaptationSet></Period></MPD>')
    with pytest.raises(ManifestInvalid, match="runs past 200000 segments"):
        parse_mpd(text, "http://gw.test/m.mpd")
