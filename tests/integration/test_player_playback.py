"""The player core plays encrypted titles end to end against the real gateways and the
nginx edge tiers, on the embedded runtime and on Kafka + Cassandra: DASH and HLS, cenc
and cbcs, every segment decrypted with the licensed keys and checked, a real ffmpeg
decode equal frame for frame to the clear source, and resume across devices (a TV stops
at P, a browser starts at P). On the embedded runtime content steering is on: the player
polls the real steering server and moves to the PoP mid-session when the appliance is
found down; and it fetches and checks the WebVTT subtitles of the language asked for."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import aiohttp
import pytest
from aiohttp import web

from reelstream.config import Settings
from reelstream.media import tools
from reelstream.player.client import gateway
from reelstream.player.client.decode import decode_args, decode_frames
from reelstream.player.client.decrypt import decrypt_segment
from reelstream.player.client.errors import RequestFailed, SegmentInvalid
from reelstream.player.client.fetch import Http
from reelstream.player.client.session import (
    PlaybackReport,
    PlayerConfig,
    open_manifest,
    play,
    prepare,
)
from reelstream.player.client.timeline import Pause, Seek, Stop
from reelstream.player.client.verify import Expected, check_segment
from reelstream.runtime import Runtime
from tests.integration.test_edge_delivery import NO_NGINX
from tests.support.browser import build_browser_media, serve
from tests.support.player import EMAIL, PASSWORD, STEADY, player_stack, run, wait_until
from tests.unit.gateways.support import drop_keyspace, server_settings, start_groups_at_end

pytestmark = pytest.mark.skipif(NO_NGINX is not None, reason=NO_NGINX or "")
US = {"X-Client-Country": "US"}


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_browser_media(tmp_path_factory.mktemp("player-media"))


@pytest.fixture(scope="module", params=["embedded", "kafka+cassandra"])
def stack(request: pytest.FixtureRequest, media: Path, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("player")
    if request.param == "embedded":
        settings = Settings(data_dir=root / "reel")
    else:
        bootstrap = request.getfixturevalue("kafka_bootstrap")
        cassandra = request.getfixturevalue("cassandra_contact")
        settings = server_settings(bootstrap, cassandra, uuid.uuid4().hex[:10], root / "reel")
        # The processors fold this run's events only, not what earlier runs left in the
        # shared topics; the keyspace goes when the module is done.
        opened = Runtime(settings)
        opened.log.ensure_topics([])
        opened.close()
        start_groups_at_end(bootstrap, settings.group_prefix)
        request.addfinalizer(lambda: drop_keyspace(settings.state_url))
    # The embedded deployment also has content steering on (as `reel up` does): the player
    # must take the default pathway's URLs from the steered DASH BaseURLs and HLS pathways.
    embedded = request.param == "embedded"
    with player_stack(root, media, settings, child_processors=not embedded, steering=embedded) as deployed:
        yield {**deployed, "media": media, "runtime_name": request.param}


async def session(base: str, config: dict[str, Any], device_id: str | None = None, device_type: str = "tv",
                  security: str = "hardware", http_class: type[Http] = Http) -> PlaybackReport:
    async with aiohttp.ClientSession() as client:
        http = http_class(client, US)
        device = await gateway.sign_in(http, base, EMAIL, PASSWORD, device_id, device_type, security)
        return await play(http, PlayerConfig(gateway=base, device=device, trace=STEADY, **config))


def assert_played_everything(report: PlaybackReport, title_duration_s: float) -> None:
    kept = [d for d in report.decisions if not d.discarded]
    assert report.ended and report.end_position_s == pytest.approx(title_duration_s, abs=0.01)
    assert report.startup_s is not None and report.startup_s > 0 and report.stall_s == 0
    assert all(d.size_source == "index" and d.planned_bytes == d.size_bytes for d in kept), \
        "the ABR planned with the real sizes from the packager's sidecar"
    assert all(d.edge_node == "appliance-isp-a" for d in kept), "segments come from the ISP appliance tier"
    assert all(d.reason for d in report.decisions)
    assert report.beats[0]["event"] == "start" and report.beats[-1]["end_reason"] == "ENDED"
    assert all(b["sid"] == report.session_id and b["cid"] == report.title_id for b in report.beats)


def test_a_tv_stops_at_p_and_a_browser_resumes_at_p(stack: dict[str, Any]) -> None:
    base = stack["base"]
    tv = run(session(base, {"title_id": "t-cenc", "format": "dash", "start_at_s": 0.0, "decode_check": True,
                            "actions": [Stop(at_s=3.1)]}, device_id=stack["tv_device_id"]))
    assert tv.ladder == ["h264-360p-800k", "h264-720p-1500k"], "a hardware-secure TV gets SD and HD keys"
    assert tv.end_position_s == pytest.approx(3.1) and not tv.ended
    assert [b["event"] for b in tv.beats] == ["start", "stop"] and tv.beats[-1]["position_ms"] == 3100
    assert tv.segments_verified >= 4 and tv.frames_decoded > 0
    assert tv.license_s > 0 and tv.manifest_s > 0
    if stack["runtime_name"] == "embedded":  # steering on: the player took the default pathway
        token = stack["api"].call("POST", "/auth/sessions", json={"email": EMAIL, "password": PASSWORD,
                                                                  "device_id": stack["tv_device_id"]}).json()["token"]
        mpd = stack["api"].call("GET", "/manifests/titles/t-cenc/manifest.mpd", token).text
        assert '<ContentSteering defaultServiceLocation="appliance-isp-a"' in mpd and 'serviceLocation="pop-1"' in mpd

    def saved() -> bool:
        async def read() -> float:
            async with aiohttp.ClientSession() as client:
                http = Http(client, US)
                device = await gateway.sign_in(http, base, EMAIL, PASSWORD, stack["tv_device_id"])
                return await gateway.resume_position(http, base, device.token, "t-cenc")
        return run(read()) == pytest.approx(3.1)
    wait_until(saved, "the TV's stop to reach the resume view", stack["settle"])

    # Heartbeats every second of play here (30 s in production) to see the periodic ones on a 6-s title.
    browser = run(session(base, {"title_id": "t-cenc", "format": "hls", "heartbeat_s": 1.0}, device_type="browser",
                          security="software"))
    assert browser.start_position_s == pytest.approx(3.1), "the browser starts where the TV stopped"
    assert browser.ladder == ["h264-360p-800k"], "a software CDM gets the SD rung only"
    assert [(b["event"], b["position_ms"]) for b in browser.beats] == [
        ("start", 3100), ("heartbeat", 4100), ("heartbeat", 5100), ("stop", 6000)]
    assert all(b["br"] > 0 and b["rendition_id"] == "h264-360p-800k" and b["cdn_node"] == "appliance-isp-a"
               for b in browser.beats)
    assert browser.decisions[0].number == 2, "the first segment fetched holds position 3.1 s"
    assert_played_everything(browser, 6.0)


@pytest.mark.parametrize("fmt", ["dash", "hls"])
def test_cbcs_plays_to_the_end_through_a_pause_and_a_seek(stack: dict[str, Any], fmt: str) -> None:
    # A 1.5-s buffer cap makes the player idle between chunks: the seek lands while it waits.
    report = run(session(stack["base"], {"title_id": "t-cbcs", "format": fmt, "start_at_s": 0.0,
                                         "actions": [Pause(at_s=0.5, for_s=3.0), Seek(at_s=1.0, to_s=4.2)],
                                         "first_rung": 1, "buffer_cap_s": 1.5},
                         device_id=stack["tv_device_id"]))
    assert_played_everything(report, 6.0)
    assert report.decisions[0].rung == 1 and "first chunk" in report.decisions[0].reason
    kept = [d for d in report.decisions if not d.discarded]
    assert [b["event"] for b in report.beats] == ["start", "pause", "heartbeat", "seek", "stop"]
    assert report.beats[1]["position_ms"] == 500 and report.beats[1]["state"] == "PAUSED"
    assert report.beats[2]["position_ms"] == 500 and report.beats[2]["state"] == "PLAYING", "resumed"
    assert report.beats[3]["position_ms"] == 4200 and report.beats[3]["state"] == "SEEKING"
    assert kept[-1].number == 3 and report.play_s == pytest.approx(1.0 + 6.0 - 4.2), \
        "played 0-1 s (paused at 0.5 s), jumped to 4.2 s (segment 3) and played to the end"
    audio = next(t for t in stack["packages"]["t-cbcs"].tracks if t.track_id == "audio-en")
    extra_audio = len(audio.segments) - 2  # the last chunk carries the audio segments past the video's
    assert report.segments_verified == sum(2 if d.number < 3 else 1 + extra_audio for d in kept)


def test_decrypted_pictures_equal_the_clear_source(stack: dict[str, Any]) -> None:
    """The strongest check: ffmpeg decodes the decrypted cbcs HD rung to the very frames
    it decodes from the clear chunks the title was packaged from."""
    base = stack["base"]

    async def decrypted_rendition() -> tuple[bytes, list[bytes]]:
        async with aiohttp.ClientSession() as client:
            http = Http(client, US)
            device = await gateway.sign_in(http, base, EMAIL, PASSWORD, stack["tv_device_id"])
            config = PlayerConfig(gateway=base, title_id="t-cbcs", device=device, trace=STEADY)
            presentation, _, _ = await open_manifest(http, base, device.token, config)
            ladder, _ = await prepare(http, presentation, config)
            hd = ladder.rungs[-1].video
            info, clear_init = ladder.inits[hd.rendition_id]
            segments = []
            for seg in hd.segments:
                body = (await http.request("segment", "GET", seg.url, gateway=False)).body
                segments.append(decrypt_segment(body, info, ladder.key_for(hd.rendition_id), seg.url).data)
                if seg.number == 1:  # a wrong key: the decode check catches video, the cheap check audio
                    wrong = decrypt_segment(body, info, bytes(16), seg.url)
                    with pytest.raises(SegmentInvalid, match="could not decode"):
                        decode_frames(clear_init, [wrong.data], "wrong key")
                    audio = ladder.audio
                    assert audio is not None
                    a_body = (await http.request("segment", "GET", audio.segments[0].url, gateway=False)).body
                    a_info = ladder.inits[audio.rendition_id][0]
                    with pytest.raises(SegmentInvalid, match="did not decrypt"):
                        check_segment(decrypt_segment(a_body, a_info, bytes(16), "a"), a_info,
                                      Expected(1, 0.0, audio.segments[0].duration_s), "a")
            second = decrypt_segment(body, info, ladder.key_for(hd.rendition_id), seg.url)  # the last one
            with pytest.raises(SegmentInvalid, match="sequence number 3"):  # served for segment 1 by mistake
                check_segment(second, info, Expected(1, 0.0, 2.0), "mixed-up cache")
            return clear_init, segments

    clear_init, segments = run(decrypted_rendition())
    played = decode_frames(clear_init, segments, "decrypted h264-720p-1500k")
    source: list[str] = []
    for chunk in sorted((stack["media"] / "renditions" / "h264-720p-1500k").rglob("*.mp4")):
        done = subprocess.run(decode_args(tools.ffmpeg(), chunk), capture_output=True, text=True, check=True)
        source += [line.rsplit(",", 1)[-1].strip() for line in done.stdout.splitlines()
                   if line and not line.startswith("#")]
    assert len(played) == len(source) == 144
    assert played == source


def test_the_packagers_size_sidecars_match_the_package(stack: dict[str, Any]) -> None:
    from reelstream.media.package import sizes

    objects = stack["runtime"].objects
    for package in stack["packages"].values():
        for track in package.tracks:
            if track.kind == "text":
                continue
            key = f"{package.storage_prefix}{track.track_id}/{sizes.NAME}"
            index = sizes.parse(objects.get(key), key)
            assert index.sizes == tuple(s.size for s in track.segments)
            assert index.sizes == tuple(objects.head(package.storage_prefix + track.media_key(s.number)).size
                                        for s in track.segments)


# Content steering is configured on the embedded deployment (as `reel up` runs it); the
# Kafka deployment covers the pinned, unsteered manifests.
@pytest.mark.parametrize("stack", ["embedded"], indirect=True)
@pytest.mark.parametrize(("fmt", "language"), [("dash", "en"), ("hls", "fr")])
def test_steering_moves_the_session_to_the_pop_mid_session_and_subtitles_come_along(
        stack: dict[str, Any], fmt: str, language: str) -> None:
    from reelstream.edge.steering import NodeHealth

    health = stack["steering"].health

    class AppliancesFailAfterTheFirstAnswer(Http):
        """The hand-off: once the steering server has answered this session's first poll
        (appliance first), the appliance is what a failed probe makes it, down."""

        async def request(self, what: str, *args: Any, **kwargs: Any) -> Any:
            reply = await super().request(what, *args, **kwargs)
            if what == "steering":
                health["appliance-isp-a"] = NodeHealth(healthy=False)
            return reply

    try:
        # A 1.5-s buffer cap makes the player idle between chunks, so the 1-s TTL passes mid-session.
        report = run(session(stack["base"], {"title_id": "t-cenc", "format": fmt, "start_at_s": 0.0,
                                             "buffer_cap_s": 1.5, "subtitle_language": language},
                             device_id=stack["tv_device_id"], http_class=AppliancesFailAfterTheFirstAnswer))
    finally:
        health.clear()
    polls = report.steering
    assert len(polls) >= 2 and all(p.status == 200 and p.error is None for p in polls)
    assert polls[0].priority == ("appliance-isp-a", "pop-1") and polls[0].pathway == "appliance-isp-a"
    assert polls[1].priority == ("pop-1",) and polls[1].pathway == "pop-1"
    prefix = "_DASH_" if fmt == "dash" else "_HLS_"
    assert f"{prefix}pathway=appliance-isp-a" in polls[0].url and f"{prefix}throughput=" not in polls[0].url
    assert f"{prefix}pathway=appliance-isp-a" in polls[1].url and f"{prefix}throughput=" in polls[1].url
    assert polls[1].at_s - polls[0].at_s >= 1.0, "asked again once the TTL had passed on the session's clock"
    served = [(d.pathway, d.edge_node) for d in report.decisions]
    assert served[0] == ("appliance-isp-a", "appliance-isp-a"), "started on the default pathway"
    assert served[-1] == ("pop-1", "pop-1"), "the last segments came from the PoP (its nginx says so)"
    assert report.ended and report.stall_s == 0 and report.segments_verified >= 6
    [track] = report.subtitles.values()
    assert track.rendition_id == f"text-{'en-sdh' if language == 'en' else language}" and track.segments == 3
    assert [c.text for c in track.cues] == [f"[{language}] line {i}" for i in range(1, 6)], \
        "every cue of the packaged WebVTT track, each once"
    assert [(c.start_s, c.end_s) for c in track.cues][:2] == [(0.5, 1.25), (1.5, 2.25)]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def broken_edge(fault: str) -> Iterator[str]:
    """The base URL of an edge that fails: a real local server answering 503 ("503"), or a
    closed port (connection refused)."""
    async def overloaded(_: web.Request) -> web.Response:
        return web.Response(status=503, text="upstream overloaded")

    failing = web.Application()
    failing.router.add_get("/{tail:.*}", overloaded)
    with serve(failing) as url:
        yield url if fault == "503" else f"http://127.0.0.1:{closed_port()}"


# A failed segment is fetched again on the next pathway of the steering list. The appliance
# tier's nginx cannot be made to fail on demand, so its segment requests after the first
# chunk are sent to a real local server that answers 503 (DASH), or to a closed port (HLS:
# connection refused); everything else, pop-1's segments included, is the real deployment.
@pytest.mark.parametrize("stack", ["embedded"], indirect=True)
@pytest.mark.parametrize(("fmt", "fault"), [("dash", "503"), ("hls", "refused")])
def test_a_segment_that_fails_on_one_pathway_is_fetched_from_the_next(
        stack: dict[str, Any], fmt: str, fault: str) -> None:
    appliance = stack["topology"].node("appliance-isp-a").base_url
    pop = stack["topology"].node("pop-1").base_url

    with broken_edge(fault) as target:

        class ApplianceFailsAfterTheFirstChunk(Http):
            segments, broken, failed = 0, (appliance,), []

            async def request(self, what: str, method: str, url: str, **kwargs: Any) -> Any:
                if what.startswith("segment "):
                    type(self).segments += 1
                    edge = next((e for e in self.broken if url.startswith(e)), None)
                    if edge and type(self).segments > 2:  # chunk 1 (video + audio) is served
                        url = target + url[len(edge):]
                        type(self).failed.append(edge)
                return await super().request(what, method, url, **kwargs)

        class EveryPathwayFails(ApplianceFailsAfterTheFirstChunk):
            segments, broken, failed = 0, (appliance, pop), []

        config = {"title_id": "t-cenc", "format": fmt, "start_at_s": 0.0}
        report = run(session(stack["base"], config, device_id=stack["tv_device_id"],
                             http_class=ApplianceFailsAfterTheFirstChunk))
        with pytest.raises(RequestFailed, match="segment 2 of") as failed:
            run(session(stack["base"], config, device_id=stack["tv_device_id"], http_class=EveryPathwayFails))
    assert set(EveryPathwayFails.failed) == {appliance, pop}, "tried every pathway, then gave up"
    assert [d.number for d in failed.value.report.decisions] == [1], "the report keeps what was played"  # type: ignore[attr-defined]
    first, *rest = report.decisions
    assert (first.pathway, first.edge_node, first.failovers) == ("appliance-isp-a", "appliance-isp-a", ())
    assert rest and all(d.pathway == d.edge_node == "pop-1" for d in rest), "the rest came from the PoP"
    [failover] = rest[0].failovers
    assert failover.startswith("appliance-isp-a: segment ")
    assert ("503 from" in failover and "upstream overloaded" in failover) if fault == "503" \
        else "no answer" in failover and "ClientConnectorError" in failover
    assert all(f.startswith("appliance-isp-a: ") for d in rest for f in d.failovers), \
        "a later poll may send the session back to the appliance: it fails over again"
    assert report.ended and report.segments_verified >= 2 * len(report.decisions), "every chunk checked"


# The same at the session's start: the appliance's edge fails every init segment and size
# sidecar (and, for HLS, media playlist) it is asked for, so the session starts on the next
# pathway the manifest lists, with one license. A real local server answers 503 (DASH) or
# the requests go to a closed port (HLS); everything else is the real deployment.
@pytest.mark.parametrize("stack", ["embedded"], indirect=True)
@pytest.mark.parametrize(("fmt", "fault"), [("dash", "503"), ("hls", "refused")])
def test_a_start_that_fails_on_one_pathway_starts_on_the_next(stack: dict[str, Any], fmt: str, fault: str) -> None:
    appliance = stack["topology"].node("appliance-isp-a").base_url
    pop = stack["topology"].node("pop-1").base_url

    starting = ("init of ", "sizes of ", "media playlist")

    with broken_edge(fault) as target:

        class ApplianceFailsAtTheStart(Http):
            broken, failed, keys = (("appliance-isp-a", appliance),), [], []

            async def request(self, what: str, method: str, url: str, **kwargs: Any) -> Any:
                # A pathway's edge (init segments, sidecars) and, for HLS, its media playlists
                # (the gateway serves them under /p/PATHWAY/).
                edge = next((e for name, e in self.broken if url.startswith(e) or f"/p/{name}/" in url), None)
                if edge and what.startswith(starting):
                    url = target + "/" + url.split("/", 3)[3]
                    type(self).failed.append((edge, what))
                if what in ("license", "key"):
                    type(self).keys.append(url)
                return await super().request(what, method, url, **kwargs)

        class EveryPathwayFailsAtTheStart(ApplianceFailsAtTheStart):
            broken, failed, keys = (("appliance-isp-a", appliance), ("pop-1", pop)), [], []

        config = {"title_id": "t-cenc", "format": fmt, "start_at_s": 0.0}
        report = run(session(stack["base"], config, device_id=stack["tv_device_id"],
                             http_class=ApplianceFailsAtTheStart))
        with pytest.raises(RequestFailed, match="init of|sizes of|media playlist"):
            run(session(stack["base"], config, device_id=stack["tv_device_id"],
                        http_class=EveryPathwayFailsAtTheStart))
    assert {edge for edge, _ in ApplianceFailsAtTheStart.failed} == {appliance}
    if fmt == "hls":  # the start failed at its media playlists, before any init segment
        assert {what for _, what in ApplianceFailsAtTheStart.failed} == {"media playlist"}
    assert {edge for edge, _ in EveryPathwayFailsAtTheStart.failed} == {appliance, pop}, "tried both, then gave up"
    [failover] = report.startup_failovers
    assert failover.startswith("appliance-isp-a: ")
    assert ("503 from" in failover and "upstream overloaded" in failover) if fault == "503" \
        else "no answer" in failover
    keys = ApplianceFailsAtTheStart.keys
    assert keys and len(keys) == len(set(keys)), "the license (each HLS key) asked for once, not per pathway"
    prefix = "_DASH_" if fmt == "dash" else "_HLS_"
    assert f"{prefix}pathway=pop-1" in report.steering[0].url, "the session started on the next pathway"
    # The steering server still ranks the appliance first, and its segments are fine: the
    # session goes where the answer sends it.
    assert [d.pathway for d in report.decisions][:1] == [report.steering[0].pathway]
    assert report.ended and report.segments_verified >= 2 * len(report.decisions), "every chunk checked"


# HLS: the steering server moves the session to the PoP mid-session, but the PoP's media
# playlists fail (a real local server answering 503 stands in for them): the session stays
# on the appliance, plays to the end, and the poll says why it did not move.
@pytest.mark.parametrize("stack", ["embedded"], indirect=True)
def test_a_move_whose_playlists_fail_leaves_the_session_where_it_is(stack: dict[str, Any]) -> None:
    from reelstream.edge.steering import NodeHealth

    health = stack["steering"].health

    with broken_edge("503") as target:
        class PopPlaylistsFailAfterTheFirstAnswer(Http):
            failed: ClassVar[list[str]] = []

            async def request(self, what: str, method: str, url: str, **kwargs: Any) -> Any:
                if what == "media playlist" and "/p/pop-1/" in url:  # the gateway serves a pathway's playlists
                    url = target + "/" + url.split("/", 3)[3]
                    type(self).failed.append(url)
                reply = await super().request(what, method, url, **kwargs)
                if what == "steering":
                    health["appliance-isp-a"] = NodeHealth(healthy=False)
                return reply

        try:
            report = run(session(stack["base"], {"title_id": "t-cenc", "format": "hls", "start_at_s": 0.0,
                                                 "buffer_cap_s": 1.5},
                                 device_id=stack["tv_device_id"], http_class=PopPlaylistsFailAfterTheFirstAnswer))
        finally:
            health.clear()
    assert PopPlaylistsFailAfterTheFirstAnswer.failed, "the steering server did send the session to the PoP"
    moves = [p for p in report.steering if p.error and p.error.startswith("moving to pop-1: ")]
    assert moves and all(p.pathway == "appliance-isp-a" and "503 from" in (p.error or "") for p in moves)
    assert {d.pathway for d in report.decisions} == {"appliance-isp-a"}, "every chunk from the appliance"
    assert report.ended and report.segments_verified >= 2 * len(report.decisions)


# HLS: a segment fails on the appliance, and the next pathway's media playlists fail too:
# with no pathway left the session ends with that failure, having tried both.
@pytest.mark.parametrize("stack", ["embedded"], indirect=True)
def test_a_failover_whose_next_playlists_fail_ends_when_no_pathway_is_left(stack: dict[str, Any]) -> None:
    appliance = stack["topology"].node("appliance-isp-a").base_url

    with broken_edge("503") as target:
        class SegmentsAndPopPlaylistsFail(Http):
            segments, failed = 0, []

            async def request(self, what: str, method: str, url: str, **kwargs: Any) -> Any:
                if what.startswith("segment "):
                    type(self).segments += 1
                    if url.startswith(appliance) and type(self).segments > 2:  # chunk 1 is served
                        url = target + url[len(appliance):]
                        type(self).failed.append(what)
                if what == "media playlist" and "/p/pop-1/" in url:
                    url = target + "/" + url.split("/", 3)[3]
                    type(self).failed.append(what)
                return await super().request(what, method, url, **kwargs)

        with pytest.raises(RequestFailed, match="media playlist"):
            run(session(stack["base"], {"title_id": "t-cenc", "format": "hls", "start_at_s": 0.0},
                        device_id=stack["tv_device_id"], http_class=SegmentsAndPopPlaylistsFail))
    failed = SegmentsAndPopPlaylistsFail.failed
    assert failed[0].startswith("segment ") and "media playlist" in failed, "the segment failed, then the move"


# The buffer cap is checked on a virtual clock kept in floating point: 2.0 s of buffer idled
# down to a 0.6-s cap leaves 0.6000000000000001 s, an excess shorter than any wait. (On a
# long title the same residue appears at the 60-s default cap once an idle wait is split at a
# heartbeat.) The player must go on fetching, not spin on a wait that passes no time.
@pytest.mark.parametrize("stack", ["embedded"], indirect=True)
@pytest.mark.timeout(30)
def test_a_player_that_idles_down_to_its_buffer_cap_plays_on(stack: dict[str, Any]) -> None:
    report = run(session(stack["base"], {"title_id": "t-cenc", "format": "dash", "start_at_s": 0.0,
                                         "buffer_cap_s": 0.6}, device_id=stack["tv_device_id"]))
    assert report.ended and report.end_position_s == pytest.approx(6.0, abs=0.01)
    assert [d.number for d in report.decisions] == [1, 2, 3] and report.beats[-1]["end_reason"] == "ENDED"


# A session that fails after its first frame keeps, in the report it carries, its start-up,
# play and stall time: `reel load` counts it as started and its stalls in the rebuffer ratio.
# Every segment request after the first chunk goes to a real local server answering 503.
@pytest.mark.parametrize("stack", ["embedded"], indirect=True)
def test_a_session_that_fails_mid_play_reports_its_start_and_play_time(stack: dict[str, Any]) -> None:
    from urllib.parse import urlsplit, urlunsplit

    from reelstream.player.load import Outcome, summarize

    with broken_edge("503") as target:

        class EdgesFailAfterTheFirstChunk(Http):
            segments = 0

            async def request(self, what: str, method: str, url: str, **kwargs: Any) -> Any:
                if what.startswith("segment "):
                    type(self).segments += 1
                    if type(self).segments > 2:  # chunk 1 (video + audio) is served
                        to = urlsplit(target)
                        url = urlunsplit((to.scheme, to.netloc, *urlsplit(url)[2:]))
                return await super().request(what, method, url, **kwargs)

        with pytest.raises(RequestFailed, match="segment 2 of") as failed:
            run(session(stack["base"], {"title_id": "t-cenc", "format": "dash", "start_at_s": 0.0},
                        device_id=stack["tv_device_id"], http_class=EdgesFailAfterTheFirstChunk))
    report: PlaybackReport = failed.value.report  # type: ignore[attr-defined]
    assert report.startup_s is not None and report.startup_s > 0, "the first frame was shown"
    assert report.play_s > 0 and report.end_position_s > 0, "it played while the failing chunk was tried"
    summary = summarize([Outcome(0, "steady", report, str(failed.value), "segment 2 of h264 503")], 1.0)
    assert (summary.started, summary.failed) == (1, 1) and summary.play_s == pytest.approx(report.play_s, abs=1e-3)
    assert summary.startup_s["p50"] == pytest.approx(report.startup_s, abs=1e-3)


# A heartbeat whose 204 is lost (the gateway wrote it; the answer never came back) is posted
# again with the same seq, and the session's QoE counts it once. The loss is injected in the
# player's HTTP layer after the real gateway answered; everything else is the deployment.
@pytest.mark.parametrize("stack", ["embedded"], indirect=True)
def test_a_heartbeat_whose_answer_was_lost_is_retried_and_counted_once(stack: dict[str, Any]) -> None:
    from reelstream.processors.sessions.logic import LIVE_SESSIONS

    class EveryBeatsFirstAnswerIsLost(Http):
        posts: ClassVar[list[int]] = []

        async def request(self, what: str, method: str, url: str, **kwargs: Any) -> Any:
            reply = await super().request(what, method, url, **kwargs)
            if what == "heartbeat":
                seq = kwargs["json"]["seq"]
                type(self).posts.append(seq)
                if type(self).posts.count(seq) == 1:
                    raise RequestFailed(what, url, 0, "ServerDisconnectedError: the answer was lost")
            return reply

    report = run(session(stack["base"], {"title_id": "t-cenc", "format": "dash", "start_at_s": 0.0,
                                         "heartbeat_s": 2.0}, device_id=stack["tv_device_id"],
                         http_class=EveryBeatsFirstAnswerIsLost))
    seqs = [b["seq"] for b in report.beats]
    assert report.ended and seqs == list(range(len(report.beats))) and len(seqs) >= 3
    assert EveryBeatsFirstAnswerIsLost.posts == [s for s in seqs for _ in (0, 1)], "each beat posted twice"

    account_id = stack["api"].call("POST", "/auth/sessions", json={"email": EMAIL, "password": PASSWORD}
                                   ).json()["account_id"]

    def counted_once() -> bool:
        row = stack["runtime"].state.get(LIVE_SESSIONS, (account_id, report.session_id))
        # the stop report is two events (its beat and PlaybackStopped)
        return row is not None and row.values["ended"] and row.values["qoe"]["events"] == len(seqs) + 1
    wait_until(counted_once, "the session's QoE to count each retried beat once", stack["settle"])
