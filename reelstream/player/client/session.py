"""One playback session against a running ReelStream, on a virtual clock.

    report = await play(http, PlayerConfig(gateway=..., title_id=..., device=..., trace=...))

What a real player does, in order: read the resume point; open a playback session with
the manifest (DASH or HLS) from the manifest gateway; in parallel get the license (the
keys this device may hold), every rung's init segment and segment-size sidecar; then,
chunk after chunk, ask the ABR algorithm for a rung, fetch the video and audio segments
from the edge (signed URLs from the manifest), decrypt them with the licensed keys, check
them (``verify``; with ``decode_check`` ffmpeg also decodes the first segment of every
rendition), and put them in the buffer. The subtitle segments of the chosen language come
with each chunk and are checked as WebVTT (``subtitles``). Heartbeats go to the playback
gateway as the timeline emits them.

Content steering (``steering``): when the manifest names a steering server, the player
asks it before the first segment (DASH ``queryBeforeStart``; always for HLS) and again
at every TTL, and fetches the following segments on the pathway it ranks first: DASH
reads the same MPD again with that pathway's ``BaseURL``, HLS loads that pathway's media
playlists. Keys, init segments and size sidecars are the same objects on every pathway,
so only the segment URLs change (a move whose HLS media playlists fail leaves the session
where it is). A chunk whose segments fail on the pathway in use (a
5xx, no answer, a timeout) is fetched again on the next pathway of the steering list
(``Decision.failovers`` says what failed); the session stays there until the steering
server's next answer moves it, and fails only when every listed pathway has failed. The
start does the same: a pathway whose edge fails an init segment, a size sidecar or (HLS) a
media playlist hands the start to the next pathway the manifest lists
(``PlaybackReport.startup_failovers``), with the license asked for once.

The clock is virtual: a request costs its round trip, plus its bytes sent over the trace
(``TraceLink``, the simulator's network model), plus the time the server really took
(measured), so a loaded deployment shows up as slower start-up and more stalls. Nothing
sleeps; a session over a loopback deployment runs as fast as the servers answer.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote, urljoin

from reelstream.errors import ReelStreamError
from reelstream.media.package import sizes as sidecar
from reelstream.player.abr import AbrAlgorithm, Observation, default_algorithm
from reelstream.player.client import gateway, manifest
from reelstream.player.client.decode import decode_frames
from reelstream.player.client.decrypt import TrackInfo, decrypt_segment, read_init
from reelstream.player.client.errors import LicenseIncomplete, RequestFailed
from reelstream.player.client.fetch import Http, Reply, rebase
from reelstream.player.client.gateway import Device
from reelstream.player.client.ladder import Ladder, build_ladder, describe
from reelstream.player.client.license import clearkey_license, identity_key
from reelstream.player.client.steering import Poll, Steerer
from reelstream.player.client.subtitles import SubtitleTrack, check_vtt, due_segments
from reelstream.player.client.timeline import TICK_S, Action, Timeline
from reelstream.player.client.verify import Expected, check_segment
from reelstream.player.network import TraceLink
from reelstream.player.traces import Trace


@dataclass(frozen=True)
class PlayerConfig:
    """One viewer's session.

    Attributes:
        gateway: base URL of the gateways (``/auth``, ``/manifests``, ``/playback``).
        title_id: what to play.
        device: a signed-in device (``gateway.sign_in``).
        trace: the viewer's network (bandwidth over time).
        format: "dash" (``manifest.mpd``) or "hls" (``master.m3u8``).
        rtt_s: round trip added to every request.
        start_at_s: where to start; None reads the resume point.
        actions: scripted seeks, pauses and a stop, at playhead positions.
        max_play_s: the viewer leaves (exit) after this much play time.
        buffer_cap_s: the player stops fetching ahead beyond this.
        start_buffer_s: buffered media needed for the first frame.
        first_rung: rung of the first chunk (start low, climb as the buffer allows).
        decode_check: decode the first segment of every rendition with ffmpeg.
        edge: send media requests to this edge (``scheme://host:port``) instead of the
            one the manifest names; the signed paths stay the same (and content steering
            is off: the tier is pinned).
        subtitle_language: fetch every subtitle track in this language (SDH and forced
            ones included); None fetches only the forced-narrative tracks in the audio's
            language, as players do with subtitles off.
        steer: follow the manifest's content steering server; False stays on the
            manifest's default pathway.
    """

    gateway: str
    title_id: str
    device: Device  # not gateway.Device: the field above shadows the module in this scope
    trace: Trace
    format: Literal["dash", "hls"] = "dash"
    abr: AbrAlgorithm = field(default_factory=default_algorithm)
    rtt_s: float = 0.08
    payload_ratio: float = 0.95
    start_at_s: float | None = None
    actions: Sequence[Action] = ()
    max_play_s: float | None = None
    buffer_cap_s: float = 60.0
    start_buffer_s: float = 2.0
    heartbeat_s: float = 30.0
    first_rung: int = 0
    audio_language: str | None = None
    decode_check: bool = False
    edge: str | None = None
    subtitle_language: str | None = None
    steer: bool = True


@dataclass(frozen=True)
class Decision:
    """One chunk: what the player knew, what it chose and why, and what happened."""

    number: int
    rung: int
    rendition_id: str
    reason: str
    at_s: float
    buffer_s: float
    planned_bytes: int
    size_source: str
    size_bytes: int
    download_s: float
    server_s: float
    throughput_kbps: float
    stall_s: float
    edge_node: str | None
    media_s: float = 0.0  # media the chunk put in the buffer
    discarded: bool = False  # a seek made the chunk useless while it downloaded
    pathway: str | None = None  # the content-steering pathway its URLs were on
    failovers: tuple[str, ...] = ()  # "pathway: error" for each pathway the chunk failed on first


@dataclass
class PlaybackReport:
    title_id: str
    format: str
    session_id: str
    start_position_s: float
    ladder: list[str]
    dropped: dict[str, str]
    decisions: list[Decision] = field(default_factory=list)
    beats: list[dict[str, Any]] = field(default_factory=list)
    manifest_s: float = 0.0
    license_s: float = 0.0
    startup_s: float | None = None
    stall_s: float = 0.0
    play_s: float = 0.0
    end_position_s: float = 0.0
    ended: bool = False
    segments_verified: int = 0
    frames_decoded: int = 0
    steering: list[Poll] = field(default_factory=list)  # every request to the steering server
    subtitles: dict[str, SubtitleTrack] = field(default_factory=dict)  # by rendition id
    # "pathway: error" for each pathway whose edge failed the session's start (playlists, init
    # segments, size sidecars) before the next one served it
    startup_failovers: list[str] = field(default_factory=list)

    @property
    def rebuffer_ratio(self) -> float:
        total = self.stall_s + self.play_s
        return self.stall_s / total if total else 0.0


async def play(http: Http, config: PlayerConfig) -> PlaybackReport:
    """Play ``config.title_id`` once, from the resume point (or ``start_at_s``)."""
    base, token = config.gateway.rstrip("/"), config.device.token
    start = config.start_at_s
    if start is None:
        start = await gateway.resume_position(http, base, token, config.title_id)
    source, session_id, manifest_s = await _read_manifest(http, base, token, config)
    started = time.perf_counter()
    presentation, ladder, license_s, playlists_s, failovers = await start_on_a_pathway(http, source, config)
    prepare_s = time.perf_counter() - started - playlists_s  # license, init segments and sidecars, in parallel
    report = PlaybackReport(config.title_id, config.format, session_id, start,
                            [r.video.rendition_id for r in ladder.rungs], dict(ladder.dropped),
                            manifest_s=manifest_s + playlists_s, license_s=license_s, startup_failovers=failovers)
    try:
        await Player(http, config, ladder, report, presentation, source).run(
            control_s=manifest_s + playlists_s + prepare_s + 2 * config.rtt_s)
    except ReelStreamError as e:
        e.report = report  # type: ignore[attr-defined]  # what was played before it failed (reel load)
        raise
    return report


@dataclass(frozen=True)
class ManifestSource:
    """The manifest as fetched: read again for another steering pathway."""

    format: Literal["dash", "hls"]
    url: str
    text: str


async def open_manifest(http: Http, base: str, token: str, config: PlayerConfig
                        ) -> tuple[manifest.Presentation, str, float]:
    """Open a playback session: the presentation (default pathway), the session id, and
    the time the manifest (and, for HLS, its media playlists) took."""
    source, session_id, elapsed = await _read_manifest(http, base, token, config)
    presentation, playlists_s = await load_presentation(http, source)
    return presentation, session_id, elapsed + playlists_s


async def _read_manifest(http: Http, base: str, token: str, config: PlayerConfig
                         ) -> tuple[ManifestSource, str, float]:
    name = "manifest.mpd" if config.format == "dash" else "master.m3u8"
    url = f"{base}/manifests/titles/{quote(config.title_id)}/{name}"
    reply = await http.request("manifest", "GET", url, token=token)
    return ManifestSource(config.format, url, reply.body.decode()), reply.headers.get("X-Reel-Session", ""), \
        reply.elapsed_s


async def load_presentation(http: Http, source: ManifestSource, pathway: str | None = None
                            ) -> tuple[manifest.Presentation, float]:
    """The presentation on ``pathway`` (the default when None), and the time its HLS media
    playlists took (0 for DASH: one MPD holds every pathway's BaseURL)."""
    if source.format == "dash":
        return manifest.parse_mpd(source.text, source.url, pathway), 0.0
    master = manifest.parse_multivariant(source.text, source.url, pathway)
    media = sorted({v.uri for v in master.variants} | {a.uri for a in master.audio})
    text = sorted({t.uri for t in master.subtitles})
    replies = await asyncio.gather(*(http.request("media playlist", "GET", u) for u in media + text))
    playlists = {u: manifest.parse_media_playlist(r.body.decode(), u, needs_init=u not in text)
                 for u, r in zip(media + text, replies, strict=True)}
    return manifest.hls_presentation(master, playlists, source.url), max(r.elapsed_s for r in replies)


def _tracks(presentation: manifest.Presentation, config: PlayerConfig) -> list[manifest.Rendition]:
    audio = presentation.main_audio(config.audio_language)
    return list(presentation.video) + ([audio] if audio else [])


async def _media_headers(http: Http, tracks: Sequence[manifest.Rendition], edge: str | None
                         ) -> tuple[list[Reply], list[sidecar.SegmentSizes | None]]:
    """Every track's init segment and size sidecar, from the edge its URLs name."""
    inits, sizes = await asyncio.gather(
        asyncio.gather(*(http.request(f"init of {t.rendition_id}", "GET", rebase(t.init_url, edge), gateway=False)
                         for t in tracks)),
        asyncio.gather(*(_sizes(http, t, edge) for t in tracks)))
    return list(inits), list(sizes)


def _ladder(presentation: manifest.Presentation, config: PlayerConfig, inits: Sequence[Reply],
            sizes: Sequence[sidecar.SegmentSizes | None], keys: dict[str, bytes]) -> Ladder:
    audio = presentation.main_audio(config.audio_language)
    tracks = _tracks(presentation, config)
    infos: dict[str, tuple[TrackInfo, bytes]] = {
        t.rendition_id: read_init(r.body, t.init_url) for t, r in zip(tracks, inits, strict=True)}
    ladder = build_ladder(presentation, audio, infos, keys, dict(zip((t.rendition_id for t in tracks), sizes,
                                                                    strict=True)))
    if not ladder.rungs:
        raise LicenseIncomplete(f"title {config.title_id}: no video rendition this device may decrypt "
                                f"({'; '.join(f'{k}: {v}' for k, v in ladder.dropped.items())})")
    return ladder


async def prepare(http: Http, presentation: manifest.Presentation, config: PlayerConfig) -> tuple[Ladder, float]:
    """License, init segments and size sidecars, fetched together; the playable ladder."""
    (inits, sizes), (keys, license_s) = await asyncio.gather(
        _media_headers(http, _tracks(presentation, config), config.edge),
        _keys(http, presentation, _tracks(presentation, config)))
    return _ladder(presentation, config, inits, sizes, keys), license_s


async def start_on_a_pathway(http: Http, source: ManifestSource, config: PlayerConfig
                             ) -> tuple[manifest.Presentation, Ladder, float, float, list[str]]:
    """``prepare`` on the manifest's default pathway or, when that pathway's edge fails a
    request (HLS media playlists, init segments, size sidecars: a 5xx, no answer), on the
    next pathway the manifest lists, as a failed segment is fetched from the next pathway
    mid-session. The license is asked for once, beside the first pathway's requests.
    Returns the presentation of the pathway that served, the ladder, the license's and the
    playlists' time, and the failures met ("pathway: error")."""
    failovers: list[str] = []
    tried: set[str] = set()
    pathway: str | None = None
    keys_task: asyncio.Future[tuple[dict[str, bytes], float]] | None = None
    playlists_s = 0.0
    try:
        while True:
            try:
                presentation, took_s = await load_presentation(http, source, pathway)
                playlists_s += took_s
                if keys_task is None:  # the keys are the same on every pathway
                    keys_task = asyncio.ensure_future(_keys(http, presentation, _tracks(presentation, config)))
                inits, sizes = await _media_headers(http, _tracks(presentation, config), config.edge)
                break
            except RequestFailed as failure:
                steering = _steering(source)
                current = pathway or (steering.default if steering else "")
                tried.add(current)
                pathway = next((p for p in steering.pathways if p not in tried), None) \
                    if steering and failure.transient and config.steer and not config.edge else None
                if pathway is None:
                    raise
                failovers.append(f"{current}: {failure}")
        keys, license_s = await keys_task
    except BaseException:
        if keys_task is not None:
            keys_task.cancel()
            if keys_task.done() and not keys_task.cancelled():
                keys_task.exception()  # retrieved: the start's own failure is the one raised
        raise
    return presentation, _ladder(presentation, config, inits, sizes, keys), license_s, playlists_s, failovers


def _steering(source: ManifestSource) -> manifest.Steering | None:
    """The manifest's content steering (its pathways, in order), read without fetching anything."""
    if source.format == "dash":
        return manifest.parse_mpd(source.text, source.url).steering
    return manifest.parse_multivariant(source.text, source.url).steering


async def _sizes(http: Http, track: manifest.Rendition, edge: str | None) -> sidecar.SegmentSizes | None:
    url = rebase(urljoin(track.init_url, sidecar.NAME), edge)
    try:
        reply = await http.request(f"sizes of {track.rendition_id}", "GET", url, gateway=False)
    except RequestFailed as e:
        if e.status in (403, 404):  # packaged before sidecars existed: plan with nominal sizes
            return None
        raise
    return sidecar.parse(reply.body, url.split("?")[0])


async def _keys(http: Http, presentation: manifest.Presentation,
                tracks: list[manifest.Rendition]) -> tuple[dict[str, bytes], float]:
    """DASH: one license request for every KID offered; HLS: each identity key URI."""
    if presentation.scheme == "clear":
        return {}, 0.0
    if presentation.format == "dash":
        kids = {t.key_id for t in tracks if t.key_id}
        if not presentation.license_url or not kids:
            raise LicenseIncomplete("the MPD is protected but names no Clear Key license server or KID")
        return await clearkey_license(http, presentation.license_url, kids)
    uris = sorted({t.key_uri for t in tracks if t.key_uri})
    got = await asyncio.gather(*(identity_key(http, u) for u in uris), return_exceptions=True)
    by_uri: dict[str, bytes] = {}
    for uri, result in zip(uris, got, strict=True):
        if isinstance(result, RequestFailed) and result.status == 403:
            continue  # not for this device: the rendition is dropped from the ladder
        if isinstance(result, BaseException):
            raise result
        by_uri[uri] = result[0]
    return {f"uri:{u}": k for u, k in by_uri.items()}, max((r[1] for r in got if isinstance(r, tuple)),
                                                            default=0.0)


class Player:
    """The chunk loop of one session (see the module doc)."""

    def __init__(self, http: Http, config: PlayerConfig, ladder: Ladder, report: PlaybackReport,
                 presentation: manifest.Presentation, source: ManifestSource) -> None:
        self.http, self.config, self.ladder, self.report = http, config, ladder, report
        self.source, self.pathway = source, presentation.pathway
        self.link = TraceLink(config.trace, payload_ratio=config.payload_ratio)
        self.timeline = Timeline(report.start_position_s, presentation.duration_s, config.actions,
                                 start_buffer_s=config.start_buffer_s, heartbeat_s=config.heartbeat_s,
                                 leave_after_s=config.max_play_s)
        self.history: list[Decision] = []
        self.decoded: set[str] = set()
        self.edge_node: str | None = None
        steering = presentation.steering
        # On the pathway the session started on: the default, or the next after a failed start.
        self.steerer = Steerer(steering, presentation.format, pathway=presentation.pathway or "") \
            if steering and config.steer and not config.edge else None
        if self.steerer and presentation.format == "dash" and not steering.query_before_start:  # type: ignore[union-attr]
            self.steerer.due_s = math.inf  # first asked once the first segment is on its way (see _chunk)
        report.steering = self.steerer.polls if self.steerer else []  # live: a failed session still shows them
        report.decisions = self.history  # live too: reel load counts a failed session's chunks and failovers
        audio = ladder.audio.language if ladder.audio else None
        self.text = list(presentation.subtitles(config.subtitle_language, audio))
        self.text_fetched: dict[str, set[int]] = {t.rendition_id: set() for t in self.text}
        report.subtitles = {t.rendition_id: SubtitleTrack(t.rendition_id, t.language, t.roles) for t in self.text}

    async def run(self, control_s: float) -> None:
        try:
            await self._play(control_s)
        finally:  # a session that fails keeps what it played: reel load counts its start and stalls
            timeline = self.timeline
            self.report.startup_s = timeline.startup_s
            self.report.stall_s, self.report.play_s = timeline.stall_s, timeline.play_s
            self.report.end_position_s, self.report.ended = timeline.position_s, timeline.ended

    async def _play(self, control_s: float) -> None:
        timeline = self.timeline
        timeline.wait(control_s)  # manifest and license before the first segment request
        index = self.ladder.index_at(timeline.position_s)
        while not timeline.done:
            await self._steer()
            if index >= self.ladder.chunks:
                timeline.finish()
                await self._post_beats()
                if (to := timeline.take_seek()) is not None:
                    index = self.ladder.index_at(to)
                    continue
                break
            # Over the cap by less than a tick is at the cap: such a wait would pass no time.
            if timeline.buffer_s - self.config.buffer_cap_s > TICK_S:
                idle = timeline.buffer_s - self.config.buffer_cap_s
                timeline.wait(idle)
                self.link.idle(idle)
                if (to := timeline.take_seek()) is not None:
                    index = self.ladder.index_at(to)
            else:
                index = await self._chunk(index)
            await self._post_beats()
        await self._post_beats()

    async def _chunk(self, index: int) -> int:
        timeline, ladder = self.timeline, self.ladder
        rung, reason = self._choose(index)
        first = ladder.rungs[rung].video.segments[index]
        text = [(t.rendition_id, seg) for t in self.text for seg in due_segments(
            t, first.start_s, first.start_s + first.duration_s, self.text_fetched[t.rendition_id],
            index == ladder.chunks - 1)]
        if self.steerer and self.steerer.due_s == math.inf:
            self.steerer.due_s = timeline.now_s + 1e-9  # DASH without queryBeforeStart: asked with this one
        at, buffer_before, stall_before = timeline.now_s, timeline.buffer_s, timeline.stall_s
        segments, replies, failovers = await self._fetch(index, rung, text)
        video_audio = len(segments) - len(text)  # media first, then the subtitle segments
        size = sum(len(r.body) for r in replies[:video_audio])
        carried = size + sum(len(r.body) for r in replies[video_audio:])  # subtitles share the link
        server_s = max(r.elapsed_s for r in replies)
        download = self.config.rtt_s + self.link.transfer(carried) + server_s
        timeline.wait(download)  # ends early at a seek; the link still carried every byte
        seek = timeline.take_seek()
        planned = ladder.planned_bytes(index, rung)
        media_s = first.start_s + first.duration_s - max(first.start_s, timeline.position_s)
        decision = Decision(ladder.number(index), rung, ladder.rungs[rung].video.rendition_id, reason, at,
                            buffer_before, planned.size, planned.source, size, download, server_s,
                            carried * 8 / 1000 / download, timeline.stall_s - stall_before, self.edge_node,
                            media_s=media_s, discarded=seek is not None, pathway=self.pathway,
                            failovers=tuple(failovers))
        self.history.append(decision)
        if seek is not None:
            return ladder.index_at(seek)
        for (rid, seg), reply in zip(segments[:video_audio], replies[:video_audio], strict=True):
            await self._check(rid, seg, reply.body)
        for (rid, seg), reply in zip(segments[video_audio:], replies[video_audio:], strict=True):
            self.report.subtitles[rid].add(check_vtt(reply.body, seg, seg.url.split("?")[0]), len(reply.body))
            self.text_fetched[rid].add(seg.number)
        timeline.append(media_s)
        return index + 1

    async def _fetch(self, index: int, rung: int, text: list[tuple[str, manifest.SegmentRef]]
                     ) -> tuple[list[tuple[str, manifest.SegmentRef]], list[Reply], list[str]]:
        """Chunk ``index``'s segments at ``rung`` (video, audio, then the subtitle segments
        ``text``) with their replies, from the pathway in use or, for a chunk that fails
        there, from the next pathways of the steering list; and the failures met."""
        video, audio = self.ladder.segments(index, rung)
        segments, failovers, tried = video + audio + text, list[str](), set[str]()
        while True:
            got = await asyncio.gather(*(self._get(seg.url, seg.byte_range, f"segment {seg.number} of {rid}")
                                         for rid, seg in segments), return_exceptions=True)
            failure = next((r for r in got if isinstance(r, BaseException)), None)
            if failure is None:
                return segments, [r for r in got if isinstance(r, Reply)], failovers
            tried.add(self.pathway or "")
            pathway = self._fail_over(failure, tried)
            failovers.append(f"{self.pathway}: {failure}")
            while True:  # HLS: the next pathway's media playlists may fail too
                try:
                    await self._move_to(pathway)
                    break
                except RequestFailed as moving:
                    tried.add(pathway)
                    failovers.append(f"{pathway}: {moving}")
                    pathway = self._fail_over(moving, tried)
            video, audio = self.ladder.segments(index, rung)  # the same segments, that pathway's URLs
            moved = {t.rendition_id: t for t in self.text}
            segments = video + audio + [(rid, next(s for s in moved[rid].segments if s.number == seg.number))
                                        for rid, seg in text]

    def _fail_over(self, failure: BaseException, tried: set[str]) -> str:
        """The pathway to fetch a chunk from after ``failure`` on the one in use: the next of
        the steering list not ``tried`` for this chunk. A failure another server would not
        mend (a 4xx, bad media), no steering, or no pathway left ends the session with it.
        The failed attempt costs its round trip and the time it took on the session's clock."""
        if not isinstance(failure, RequestFailed) or not failure.transient or self.steerer is None:
            raise failure
        pathway = self.steerer.fallback(tried)
        if pathway is None:
            raise failure
        self.timeline.wait(self.config.rtt_s + failure.elapsed_s)
        return pathway

    async def _steer(self) -> None:
        """Ask the steering server when its TTL has passed; move to the pathway it ranks first."""
        steerer, timeline = self.steerer, self.timeline
        if steerer is None or not steerer.due(timeline.now_s):
            return
        kept = [d for d in self.history if not d.discarded]
        url = steerer.url(kept[-1].throughput_kbps * 1000 if kept else None)
        try:
            reply = await self.http.request("steering", "GET", url, gateway=False, ok=(200, 410, 429))
            retry = reply.headers.get("Retry-After", "")
            pathway = steerer.answered(timeline.now_s, url, reply.status, reply.body, reply.elapsed_s,
                                       float(retry) if retry.isdigit() else None)
            elapsed = reply.elapsed_s
        except RequestFailed as e:  # the session goes on where it is; asked again after the TTL
            pathway = steerer.answered(timeline.now_s, url, e.status, str(e).encode(), 0.0)
            elapsed = 0.0
        if not kept:
            timeline.wait(self.config.rtt_s + elapsed)  # before the first segment, the player waits for it
        if pathway != self.pathway:
            try:
                await self._move_to(pathway)
            except RequestFailed as e:  # HLS: its media playlists failed; stay, ask again after the TTL
                if not e.transient:
                    raise
                steerer.stay(self.pathway or "", f"moving to {pathway}: {e}")

    async def _move_to(self, pathway: str) -> None:
        """The next segments on ``pathway``: the same renditions, that pathway's URLs."""
        presentation, playlists_s = await load_presentation(self.http, self.source, pathway)
        if playlists_s:  # HLS: that pathway's media playlists come before its segments
            self.timeline.wait(self.config.rtt_s + playlists_s)
        self.ladder = self.ladder.moved(presentation)
        by_id = {t.rendition_id: t for t in presentation.text}
        self.text = [by_id.get(t.rendition_id, t) for t in self.text]
        self.pathway = pathway

    def _choose(self, index: int) -> tuple[int, str]:
        ladder, kept = self.ladder, [d for d in self.history if not d.discarded]
        if len(ladder.rungs) == 1:
            return 0, "only one rung is playable on this device"
        if not kept:
            rung = min(self.config.first_rung, len(ladder.rungs) - 1)
            return rung, f"first chunk: start at rung {rung} for a fast first frame"
        obs = Observation(
            throughputs_kbps=tuple(d.throughput_kbps for d in kept),
            download_times_s=tuple(d.download_s for d in kept),
            buffer_s=self.timeline.buffer_s, last_rung=kept[-1].rung,
            upcoming_sizes_bytes=ladder.upcoming_sizes(index),
            chunks_remaining=ladder.chunks - index, chunk_duration_s=ladder.chunk_s,
            bitrates_kbps=ladder.bitrates_kbps)
        rung = self.config.abr.choose(obs)
        if not 0 <= rung < len(ladder.rungs):
            raise ValueError(f"{self.config.abr.name} chose rung {rung}, outside 0..{len(ladder.rungs) - 1}")
        return rung, describe(self.config.abr.name, obs, rung)

    async def _get(self, url: str, byte_range: tuple[int, int] | None, what: str) -> Reply:
        headers = {"Range": f"bytes={byte_range[0]}-{sum(byte_range) - 1}"} if byte_range else None
        reply = await self.http.request(what, "GET", rebase(url, self.config.edge), headers=headers, gateway=False,
                                        ok=(200, 206))
        self.edge_node = reply.headers.get("X-Edge-Node", self.edge_node)
        return reply

    async def _check(self, rendition_id: str, seg: manifest.SegmentRef, data: bytes) -> None:
        info, clear_init = self.ladder.inits[rendition_id]
        clear = decrypt_segment(data, info, self.ladder.key_for(rendition_id), seg.url.split("?")[0])
        check_segment(clear, info, Expected(seg.number, seg.start_s, seg.duration_s), seg.url.split("?")[0])
        self.report.segments_verified += 1
        if self.config.decode_check and rendition_id not in self.decoded:
            self.decoded.add(rendition_id)
            frames = await asyncio.to_thread(decode_frames, clear_init, [clear.data], f"{rendition_id} #{seg.number}")
            self.report.frames_decoded += len(frames)

    async def _post_beats(self) -> None:
        last = self.history[-1] if self.history else None
        for beat in self.timeline.take_beats():
            extra = {"rendition_id": last.rendition_id if last else None,
                     "br": round(self.ladder.bitrates_kbps[last.rung]) if last else None,
                     "bl": round(self.timeline.buffer_s * 1000),
                     "mtp": round(last.throughput_kbps) if last else None, "cdn_node": self.edge_node,
                     "startup_ms": round((self.timeline.startup_s or 0) * 1000) if beat.event == "start" else None}
            self.report.beats.append(await gateway.post_beat(
                self.http, self.config.gateway.rstrip("/"), self.config.device.token, beat,
                self.report.session_id, self.config.title_id, extra, seq=len(self.report.beats)))
