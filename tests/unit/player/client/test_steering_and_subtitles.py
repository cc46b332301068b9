"""Content steering and subtitles, client side: the player reads every pathway and the
subtitle tracks from ReelStream's own DASH and HLS renderers, parses the steering
server's answers (and refuses bad ones by name), builds its requests as the HLS and
DASH-IF specs ask, moves its ladder to another pathway, and checks WebVTT segments."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest

from reelstream.media.package import dash, hls
from reelstream.media.package.hls import ContentSteering, Pathway, UrlBuilder
from reelstream.player.client.errors import ManifestInvalid, SteeringInvalid, SubtitlesInvalid
from reelstream.player.client.ladder import Ladder, Rung
from reelstream.player.client.manifest import (
    SegmentRef,
    Steering,
    hls_presentation,
    parse_media_playlist,
    parse_mpd,
    parse_multivariant,
)
from reelstream.player.client.steering import Steerer, choose, fallback, parse_manifest, request_url
from reelstream.player.client.subtitles import SubtitleTrack, check_vtt, due_segments
from tests.unit.media.manifests.conftest import make_package
from tests.unit.player.client.test_manifest import URLS

TV = hls.DeviceProfile("tv", frozenset({"avc1", "mp4a", "wvtt"}), security="hardware")  # with subtitles

NAMES = ("appliance-isp-a", "pop-1")
STEER = "http://steer.test/steering?session=s1&title=t-golden&isp=isp-a"


def steered() -> ContentSteering:
    return ContentSteering(STEER, tuple(Pathway(name, UrlBuilder(
        media_base=f"http://{name}.test/s/x/9/packages/t-golden/p1/",
        playlist_base=f"http://gw.test/manifests/t/T/p/{name}/", clearkey_license=URLS.clearkey_license,
        clearkey_key=URLS.clearkey_key)) for name in NAMES))


def hls_on(pathway: str | None) -> object:
    package, url = make_package("cenc"), "http://gw.test/manifests/titles/t-golden/master.m3u8"
    master = parse_multivariant(hls.multivariant_playlist(package, TV, URLS, steered()), url, pathway)
    playlists = {}
    for uri in {v.uri for v in master.variants} | {a.uri for a in master.audio} | {t.uri for t in master.subtitles}:
        name = uri.rsplit("/", 2)[-2]  # .../p/{pathway}/TRACK.m3u8
        track = uri.rsplit("/", 1)[-1].removesuffix(".m3u8")
        urls = next(p.urls for p in steered().pathways if p.pathway_id == name)
        playlists[uri] = parse_media_playlist(hls.media_playlist(package, track, TV, urls), uri,
                                              needs_init=not track.startswith("text-"))
    return hls_presentation(master, playlists, url)


def test_dash_offers_every_pathway_and_reads_each_ones_urls() -> None:
    mpd = dash.mpd(make_package("cenc"), TV, UrlBuilder(clearkey_license=URLS.clearkey_license), steered())
    default = parse_mpd(mpd, "http://gw.test/m.mpd")
    assert default.steering == Steering(STEER, "appliance-isp-a", NAMES, query_before_start=True)
    assert default.pathway == "appliance-isp-a"
    pop = parse_mpd(mpd, "http://gw.test/m.mpd", "pop-1")
    assert pop.pathway == "pop-1"
    for a, b in zip(default.video + default.audio + default.text, pop.video + pop.audio + pop.text, strict=True):
        assert a.rendition_id == b.rendition_id
        assert [s.url.replace("appliance-isp-a.test", "pop-1.test") for s in a.segments] == [s.url for s in b.segments]
    assert pop.video[0].segments[0].url == "http://pop-1.test/s/x/9/packages/t-golden/p1/h264-360p-800k/seg-00001.m4s"
    with pytest.raises(ManifestInvalid, match="no BaseURL with serviceLocation 'isp-b'"):
        parse_mpd(mpd, "http://gw.test/m.mpd", "isp-b")


def test_hls_offers_every_pathway_with_its_own_playlists_and_subtitles() -> None:
    default, pop = hls_on(None), hls_on("pop-1")
    assert default.steering == Steering(STEER, "appliance-isp-a", NAMES)  # type: ignore[attr-defined]
    assert (default.pathway, pop.pathway) == ("appliance-isp-a", "pop-1")  # type: ignore[attr-defined]
    assert [t.rendition_id for t in pop.text] == ["text-en-sdh", "text-fr-forced"]  # type: ignore[attr-defined]
    assert pop.text[0].segments[2].url == "http://pop-1.test/s/x/9/packages/t-golden/p1/text-en-sdh/seg-00003.vtt"  # type: ignore[attr-defined]
    assert pop.video[1].segments[0].url.startswith("http://pop-1.test/")  # type: ignore[attr-defined]
    with pytest.raises(ManifestInvalid, match="no variants on pathway 'nowhere'"):
        hls_on("nowhere")


@pytest.mark.parametrize("fmt", ["dash", "hls"])
def test_subtitle_tracks_by_language_with_forced_ones_when_subtitles_are_off(fmt: str) -> None:
    p = parse_mpd(dash.mpd(make_package("cenc"), TV, URLS), "http://gw.test/m.mpd") if fmt == "dash" \
        else hls_on(None)
    text = {t.rendition_id: t for t in p.text}  # type: ignore[attr-defined]
    assert set(text) == {"text-en-sdh", "text-fr-forced"}
    assert "caption" in text["text-en-sdh"].roles and "forced-subtitle" in text["text-fr-forced"].roles
    assert [s.duration_s for s in text["text-en-sdh"].segments] == [2.0, 2.0, 1.0]
    assert text["text-en-sdh"].init_url == "" and text["text-en-sdh"].key_id is None
    assert [t.rendition_id for t in p.subtitles("en-US")] == ["text-en-sdh"]  # type: ignore[attr-defined]
    assert [t.rendition_id for t in p.subtitles(None, "fr")] == ["text-fr-forced"]  # type: ignore[attr-defined]
    assert p.subtitles(None, "en") == () and p.subtitles("de") == ()  # type: ignore[attr-defined]
    assert p.scheme == "cenc", "clear subtitles do not make the presentation mix schemes"  # type: ignore[attr-defined]


def test_a_single_file_webvtt_track_is_one_segment() -> None:
    mpd = ('<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" mediaPresentationDuration="PT6S"><Period>'
           '<AdaptationSet contentType="video"><Representation id="v" bandwidth="1">'
           '<SegmentTemplate media="v-$Number$.m4s" initialization="v.mp4" duration="2"/></Representation>'
           '</AdaptationSet><AdaptationSet contentType="text" mimeType="text/vtt" lang="de">'
           '<Representation id="t" bandwidth="1"><BaseURL>subs/de.vtt</BaseURL></Representation>'
           '</AdaptationSet></Period></MPD>')
    p = parse_mpd(mpd, "http://e.test/t/m.mpd")
    assert [(s.number, s.start_s, s.duration_s, s.url) for s in p.text[0].segments] == [
        (1, 0.0, 6.0, "http://e.test/t/subs/de.vtt")]


def test_steering_manifests_are_read_and_bad_ones_named() -> None:
    body = json.dumps({"VERSION": 1, "TTL": 10, "RELOAD-URI": "/steering?session=s1",
                       "PATHWAY-PRIORITY": ["pop-1", "appliance-isp-a"]}).encode()
    m = parse_manifest(body, "http://steer.test/steering?session=s1&_DASH_pathway=x")
    assert (m.ttl_s, m.reload_uri, m.priority) == (10.0, "http://steer.test/steering?session=s1",
                                                   ("pop-1", "appliance-isp-a"))
    for bad, field in ((b"<html>", "not JSON"), (b"[]", "not a JSON object"),
                       (b'{"VERSION": 2, "TTL": 1, "PATHWAY-PRIORITY": ["a"]}', "VERSION 2"),
                       (b'{"VERSION": 1, "TTL": 0, "PATHWAY-PRIORITY": ["a"]}', "TTL 0"),
                       (b'{"VERSION": 1, "TTL": 5, "PATHWAY-PRIORITY": []}', "PATHWAY-PRIORITY"),
                       (b'{"VERSION": 1, "TTL": 5, "PATHWAY-PRIORITY": ["a"], "RELOAD-URI": 7}', "RELOAD-URI")):
        with pytest.raises(SteeringInvalid, match=field):
            parse_manifest(bad, "http://steer.test/s")


def test_requests_name_the_pathway_and_throughput_per_format() -> None:
    url = request_url(STEER + "&_DASH_pathway=old", "dash", "pop-1", 2_345_678.4)
    query = parse_qs(urlsplit(url).query)
    assert query["_DASH_pathway"] == ["pop-1"] and query["_DASH_throughput"] == ["2345678"]
    assert query["session"] == ["s1"] and query["isp"] == ["isp-a"]
    hls_query = parse_qs(urlsplit(request_url(STEER, "hls", "appliance-isp-a", None)).query)
    assert hls_query["_HLS_pathway"] == ["appliance-isp-a"] and "_HLS_throughput" not in hls_query
    assert choose(["isp-b", "pop-1"], NAMES, "appliance-isp-a") == "pop-1"
    assert choose(["isp-b"], NAMES, "appliance-isp-a") == "appliance-isp-a", "nothing offered: stay"


def test_the_steerer_follows_ttl_reload_uri_and_keeps_its_pathway_on_failures() -> None:
    steerer = Steerer(Steering(STEER, "appliance-isp-a", NAMES), "hls")
    assert steerer.due(0.0) and steerer.pathway == "appliance-isp-a"
    answer = {"VERSION": 1, "TTL": 4, "RELOAD-URI": "http://steer.test/steering?session=s1&r=2",
              "PATHWAY-PRIORITY": ["pop-1", "appliance-isp-a"]}
    assert steerer.answered(1.0, steerer.url(None), 200, json.dumps(answer).encode(), 0.01) == "pop-1"
    assert not steerer.due(4.9) and steerer.due(5.0)
    assert steerer.url(1e6).startswith("http://steer.test/steering?session=s1&r=2&_HLS_pathway=pop-1")
    # A garbled answer, then no answer: the session stays on pop-1 and asks again after the TTL.
    assert steerer.answered(5.0, "u", 200, b"oops", 0.01) == "pop-1"
    assert steerer.answered(9.0, "u", 0, b"ConnectionRefused", 0.0) == "pop-1"
    assert steerer.due_s == 13.0 and steerer.polls[-2].error and "not JSON" in steerer.polls[-2].error
    assert steerer.answered(13.0, "u", 429, b"", 0.0, retry_after_s=30.0) == "pop-1" and steerer.due_s == 43.0
    assert steerer.answered(43.0, "u", 410, b"gone", 0.0) == "pop-1"
    assert not steerer.due(1e9), "410 Gone: no more steering requests in this session"
    assert [p.status for p in steerer.polls] == [200, 200, 0, 429, 410]


def test_a_failed_segment_goes_to_the_next_pathway_of_the_steering_list() -> None:
    three = ("appliance-isp-a", "pop-1", "pop-2")
    assert fallback(["pop-1", "appliance-isp-a"], three, {"pop-1"}) == "appliance-isp-a"
    assert fallback(["pop-1", "appliance-isp-a"], three, {"pop-1", "appliance-isp-a"}) is None, \
        "a pathway the server left out of its list is not tried"
    assert fallback(["isp-b", "pop-2"], three, {"appliance-isp-a"}) == "pop-2", "only pathways the manifest offers"
    steerer = Steerer(Steering(STEER, "pop-1", three), "dash")
    assert steerer.priority == ("pop-1", "appliance-isp-a", "pop-2"), "before any answer: default, then manifest order"
    assert steerer.fallback({"pop-1"}) == "appliance-isp-a" and steerer.pathway == "appliance-isp-a"
    answer = {"VERSION": 1, "TTL": 4, "PATHWAY-PRIORITY": ["pop-2", "pop-1"]}
    assert steerer.answered(1.0, steerer.url(None), 200, json.dumps(answer).encode(), 0.01) == "pop-2"
    assert steerer.priority == ("pop-2", "pop-1")
    assert steerer.fallback({"pop-2"}) == "pop-1" and steerer.fallback({"pop-2", "pop-1"}) is None
    assert "_DASH_pathway=pop-1" in steerer.url(None), "the next poll names the pathway really in use"


def test_a_move_that_fails_keeps_the_session_where_it_is_and_says_why() -> None:
    steerer = Steerer(Steering(STEER, "appliance-isp-a", NAMES), "hls")
    answer = {"VERSION": 1, "TTL": 4, "PATHWAY-PRIORITY": ["pop-1", "appliance-isp-a"]}
    assert steerer.answered(1.0, steerer.url(None), 200, json.dumps(answer).encode(), 0.01) == "pop-1"
    steerer.stay("appliance-isp-a", "moving to pop-1: media playlist: 503 from ...")
    assert steerer.pathway == "appliance-isp-a" and "_HLS_pathway=appliance-isp-a" in steerer.url(None)
    last = steerer.polls[-1]
    assert (last.status, last.pathway, last.priority) == (200, "appliance-isp-a", ("pop-1", "appliance-isp-a"))
    assert last.error == "moving to pop-1: media playlist: 503 from ..."


def test_the_ladder_moves_to_another_pathways_urls_and_keeps_keys_and_sizes() -> None:
    mpd = dash.mpd(make_package("cenc"), TV, UrlBuilder(clearkey_license=URLS.clearkey_license), steered())
    here, there = parse_mpd(mpd, "http://gw.test/m.mpd"), parse_mpd(mpd, "http://gw.test/m.mpd", "pop-1")
    ladder = Ladder([Rung(v, 900.0) for v in here.video], here.main_audio(), {}, {"k": b"0" * 16}, {}, {})
    moved = ladder.moved(there)
    assert moved.rungs[1].video.segments[2].url == there.video[1].segments[2].url
    assert moved.audio is not None and moved.audio.segments[0].url.startswith("http://pop-1.test/")
    assert moved.keys is ladder.keys and moved.chunks == ladder.chunks == 3
    short = parse_mpd(mpd.replace('r="1"', 'r="0"'), "http://gw.test/m.mpd", "pop-1")
    with pytest.raises(ManifestInvalid, match="does not offer h264-360p-800k with the same segments"):
        ladder.moved(short)


VTT = "WEBVTT\n\n1\n00:00:01.500 --> 00:00:02.250\n[en] line 2\n\n2\n00:00:03.000 --> 00:00:04.500\n[en] two\nlines\n"


def test_webvtt_segments_are_checked_against_their_span() -> None:
    cues = check_vtt(VTT.encode(), SegmentRef(1, 2.0, 2.0, "u"), "u")
    assert [(c.start_s, c.end_s, c.text) for c in cues] == [(1.5, 2.25, "[en] line 2"), (3.0, 4.5, "[en] two\nlines")]
    track = SubtitleTrack("text-en", "en", ())
    track.add(cues, 10)
    track.add(cues[1:], 5)  # a cue across a boundary comes in both segments: kept once
    assert (track.segments, track.bytes, len(track.cues)) == (2, 15, 2)
    with pytest.raises(SubtitlesInvalid, match=r"segment 3 \(4000-6000 ms\) holds a cue at 1500-2250 ms"):
        check_vtt(VTT.encode(), SegmentRef(3, 4.0, 2.0, "u"), "u")
    with pytest.raises(SubtitlesInvalid, match="WEBVTT signature"):
        check_vtt(b"\x00\x00\x00\x18ftypmp42", SegmentRef(1, 0.0, 2.0, "u"), "u")
    with pytest.raises(SubtitlesInvalid, match="not UTF-8"):
        check_vtt(b"WEBVTT\n\n\xff", SegmentRef(1, 0.0, 2.0, "u"), "u")


def test_each_chunk_brings_the_subtitle_segments_of_its_span() -> None:
    p = parse_mpd(dash.mpd(make_package("cenc"), TV, URLS), "http://gw.test/m.mpd")
    text = p.text[0]  # segments 0-2, 2-4, 4-5 s
    assert [s.number for s in due_segments(text, 0.0, 2.0, set(), last=False)] == [1]
    assert [s.number for s in due_segments(text, 2.0, 4.0, {1}, last=False)] == [2]
    assert [s.number for s in due_segments(text, 2.0, 4.0, {1, 2}, last=False)] == []
    assert [s.number for s in due_segments(text, 3.0, 4.0, set(), last=True)] == [2, 3], \
        "after a seek into segment 2, the last chunk brings it and every one after"
