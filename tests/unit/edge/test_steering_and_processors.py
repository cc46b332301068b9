"""Steering ranks tiers per session; the popularity and CMCD processors are pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from reelstream.edge.steering import (
    NodeHealth,
    SessionContext,
    active_connections,
    parse_pathways,
    rank,
    steering_manifest,
    steering_uri,
)
from reelstream.edge.topology import local_topology
from reelstream.errors import ConfigError
from reelstream.events.model import new_event
from reelstream.media.package import dash, hls
from reelstream.processors.cmcd.logic import (
    SESSION_DELIVERY,
    SessionDeliveryProcessor,
    edge_events,
    parse_cmcd,
)
from reelstream.processors.popularity.logic import (
    TITLE_POPULARITY,
    PopularityProcessor,
    popular_titles,
)
from tests.support.memory_state import MemoryState

TOPO = local_topology("http://origin", Path("/tmp/edge"), isps=("isp-a", "isp-b"))
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def ctx(title: str, isp: str | None = "isp-a") -> SessionContext:
    return SessionContext("s1", title, isp)


def test_a_popular_title_goes_to_the_viewers_isp_appliance_first() -> None:
    assert rank(TOPO, ctx("hit"), {"hit"}, {}) == ["appliance-isp-a", "pop-1"]
    assert rank(TOPO, ctx("hit", "isp-b"), {"hit"}, {}) == ["appliance-isp-b", "pop-1"]


def test_the_long_tail_and_viewers_without_an_appliance_go_to_the_pop() -> None:
    assert rank(TOPO, ctx("rare"), {"hit"}, {}) == ["pop-1"]
    assert rank(TOPO, ctx("hit", "isp-z"), {"hit"}, {}) == ["pop-1"]


def test_unhealthy_nodes_are_dropped_and_overloaded_ones_go_last() -> None:
    assert rank(TOPO, ctx("hit"), {"hit"}, {"appliance-isp-a": NodeHealth(healthy=False)}) == ["pop-1"]
    assert rank(TOPO, ctx("hit"), {"hit"}, {"appliance-isp-a": NodeHealth(load=0.95)}) == \
        ["pop-1", "appliance-isp-a"]
    assert rank(TOPO, ctx("hit"), {"hit"}, {n.name: NodeHealth(healthy=False) for n in TOPO.nodes}) == ["pop-1"]


def test_an_overloaded_appliance_loses_its_place_only_past_the_threshold() -> None:
    assert rank(TOPO, ctx("hit"), {"hit"}, {"appliance-isp-a": NodeHealth(load=0.84)})[0] == "appliance-isp-a"
    assert rank(TOPO, ctx("hit"), {"hit"}, {"appliance-isp-a": NodeHealth(load=0.85)})[0] == "pop-1"
    # An overloaded PoP still serves (nothing better), after any calm node.
    assert rank(TOPO, ctx("hit"), {"hit"}, {"pop-1": NodeHealth(load=2.0)}) == ["appliance-isp-a", "pop-1"]


def test_the_load_is_read_from_nginx_stub_status() -> None:
    page = "Active connections: 12 \nserver accepts handled requests\n 40 40 97 \nReading: 0 Writing: 3 Waiting: 9 \n"
    assert active_connections(page) == 12
    with pytest.raises(ValueError, match="not an nginx stub_status page"):
        active_connections("<html>ok</html>")


def test_pathways_and_the_per_session_steering_uri() -> None:
    assert parse_pathways(" a-1=http://h:1/ , pop.2=https://p ") == (("a-1", "http://h:1"), ("pop.2", "https://p"))
    assert parse_pathways("") == ()
    with pytest.raises(ConfigError, match="REEL_EDGE_PATHWAYS"):
        parse_pathways("a=ftp://h")
    assert steering_uri("http://s/", SessionContext("ps-1", "t 1", None)) == \
        "http://s/steering?session=ps-1&title=t+1&isp="


def test_the_steering_manifest_is_the_hls_and_dash_json() -> None:
    assert steering_manifest(["a", "b"], 10, "http://s/steering?session=s1") == {
        "VERSION": 1, "TTL": 10, "PATHWAY-PRIORITY": ["a", "b"], "RELOAD-URI": "http://s/steering?session=s1"}


def _package() -> Any:
    from reelstream.media.package.model import Package, PackagedTrack, Segment

    seg = (Segment(1, 0, 180_000, 1000),)
    video = PackagedTrack("v360", "video", "avc1.64001e", 800_000, 700_000, 90_000, "v360/init.mp4",
                          "v360/seg-{number:05d}.m4s", seg, 640, 360, "24", "SDR", roles=("main",))
    audio = PackagedTrack("audio-en", "audio", "mp4a.40.2", 128_000, 128_000, 48_000, "audio-en/init.mp4",
                          "audio-en/seg-{number:05d}.m4s", (Segment(1, 0, 96_000, 100),), language="en",
                          roles=("main",))
    return Package("t1", "p1", "clear", "packages/t1/p1/", 2.0, (video, audio))


def steering() -> hls.ContentSteering:
    return hls.ContentSteering("http://steer/steering?session=s1", (
        hls.Pathway("appliance-isp-a", hls.UrlBuilder(media_base="http://a/s/x/1/packages/t1/p1/",
                                                      playlist_base="http://a/pl/")),
        hls.Pathway("pop-1", hls.UrlBuilder(media_base="http://p/s/x/1/packages/t1/p1/",
                                            playlist_base="http://p/pl/"))))


def test_hls_multivariant_carries_content_steering_and_a_variant_set_per_pathway() -> None:
    text = hls.multivariant_playlist(_package(), hls.CHROMIUM_CLEARKEY, hls.UrlBuilder(), steering())
    lines = text.splitlines()
    assert '#EXT-X-CONTENT-STEERING:SERVER-URI="http://steer/steering?session=s1",PATHWAY-ID="appliance-isp-a"' \
        in lines
    stream_infs = [i for i, line in enumerate(lines) if line.startswith("#EXT-X-STREAM-INF")]
    assert [lines[i + 1] for i in stream_infs] == ["http://a/pl/v360.m3u8", "http://p/pl/v360.m3u8"]
    assert 'PATHWAY-ID="pop-1"' in lines[stream_infs[1]] and 'AUDIO="audio-mp4a.40.2-pop-1"' in lines[stream_infs[1]]
    assert sum(line.startswith("#EXT-X-MEDIA:TYPE=AUDIO") for line in lines) == 2


def test_hls_subtitles_renditions_name_their_pathway() -> None:
    from dataclasses import replace

    from reelstream.media.package.model import PackagedTrack, Segment

    subtitles = PackagedTrack("text-en", "text", "wvtt", 1000, 1000, 1000, "", "text-en/seg-{number:05d}.vtt",
                              (Segment(1, 0, 2000, 100),), language="en", roles=("subtitle",))
    package = _package()
    package = replace(package, tracks=(*package.tracks, subtitles))
    lines = hls.multivariant_playlist(package, hls.CHROMIUM_CLEARKEY, hls.UrlBuilder(), steering()).splitlines()
    media = [line for line in lines if line.startswith("#EXT-X-MEDIA:TYPE=SUBTITLES")]
    # Shaka Player 5.2 ties a subtitles group to a pathway only by this attribute (without it
    # it fetched the multivariant playlist as the subtitles playlist: error 4017).
    assert ['GROUP-ID="subs-pop-1"' in m and m.endswith('PATHWAY-ID="pop-1"') for m in media] == [False, True]
    assert media[0].endswith('PATHWAY-ID="appliance-isp-a"')


def test_dash_carries_content_steering_and_a_base_url_per_service_location() -> None:
    text = dash.mpd(_package(), hls.CHROMIUM_CLEARKEY, hls.UrlBuilder(), steering())
    assert ('<ContentSteering defaultServiceLocation="appliance-isp-a" queryBeforeStart="true">'
            "http://steer/steering?session=s1</ContentSteering>") in text
    assert '<BaseURL serviceLocation="pop-1">http://p/s/x/1/packages/t1/p1/</BaseURL>' in text
    assert 'media="v360/seg-$Number%05d$.m4s"' in text


def _started(title: str, at: datetime, session: str = "s1") -> Any:
    return new_event("PlaybackStarted", {"session_id": session, "user_id": "u1", "profile_id": "p", "device_id": "d",
                                         "device_type": "browser", "title_id": title, "position_ms": 0},
                     producer="test", event_time=at)


def apply(processor: Any, state: MemoryState, event: Any) -> None:
    state.apply(processor.handle(event, state))


def test_popularity_ranks_titles_by_decayed_starts() -> None:
    state, p = MemoryState(), PopularityProcessor()
    for i in range(5):
        apply(p, state, _started("old-hit", T0 + timedelta(minutes=i)))
    for i in range(3):
        apply(p, state, _started("new-hit", T0 + timedelta(days=3, minutes=i)))
    apply(p, state, _started("rare", T0 + timedelta(days=3)))
    rows = state.query(TITLE_POPULARITY, ("all",))
    assert popular_titles(rows, top_n=2) == ["new-hit", "rare"]  # 5 starts three days ago decay to 0.6
    assert popular_titles(rows, top_n=3, min_starts=2) == ["new-hit", "old-hit"]
    assert p.primary(new_event("PlaybackPaused", {"session_id": "s", "user_id": "u", "profile_id": "p",
                                                  "device_id": "d", "device_type": "browser", "title_id": "t",
                                                  "position_ms": 0}, producer="t")) is None


LOG = ('{"time":"2026-03-01T10:00:00+00:00","node":"appliance-isp-a","tier":"appliance","status":200,'
       '"bytes":250000,"request_time":0.100,"object":"/packages/t1/p1/v360/seg-00001.m4s","cache":"HIT",'
       '"range":"","cmcd":"bl%3D8000%2Cbr%3D800%2Cd%3D2000%2Cmtp%3D9000%2Cot%3Dv%2Csid%3D%22s1%22%2Csu"}')


def test_cmcd_is_parsed_per_cta_5004() -> None:
    assert parse_cmcd('br=800,bl=8000,ot=v,sid="a,b",su,pr=1.5') == {
        "br": 800, "bl": 8000, "ot": "v", "sid": "a,b", "su": True, "pr": 1.5}


def test_edge_log_lines_become_events_joined_to_the_session() -> None:
    events = edge_events([(0, LOG), (300, "not json"), (310, '{"object":"","status":403}')], producer="test")
    assert len(events) == 1
    event = events[0]
    assert (event["session_id"], event["node"], event["title_id"], event["cache_status"]) == \
        ("s1", "appliance-isp-a", "t1", "HIT")
    assert (event["bitrate_kbps"], event["buffer_ms"], event["measured_throughput_kbps"], event["object_type"],
            event["throughput_kbps"]) == (800, 8000, 9000, "v", 20_000)
    assert edge_events([(0, LOG)], producer="test")[0].event_id == event.event_id  # shipped twice, same id

    state, p = MemoryState(), SessionDeliveryProcessor()
    apply(p, state, event)
    apply(p, state, _started("t1", T0))
    row = state.get(SESSION_DELIVERY, ("s1",))
    assert row is not None
    assert {k: row.values[k] for k in ("user_id", "title_id", "requests", "bytes", "hits", "last_buffer_ms")} == \
        {"user_id": "u1", "title_id": "t1", "requests": 1, "bytes": 250000, "hits": 1, "last_buffer_ms": 8000}
    assert row.values["by_node"] == {"appliance-isp-a": 250000}
