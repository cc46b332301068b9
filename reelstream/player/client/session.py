"""One playback session against a running ReelStream, on a virtual clock.

    report = await play(http, PlayerConfig(gateway=..., title_id=..., device=..., trace=...))

What a real player does, in order: read the resume point; open a playback session with
the manifest (DASH or HLS) from the manifest gateway; in parallel get the license (the
keys this device may hold), every rung's init segment and segment-size sidecar; then,
chunk after chunk, ask the ABR algorithm for a rung, fetch the video and audio segments
from the edge (signed URLs from the manifest), decrypt them with the licensed keys, check
them (``verify``; with ``decode_check`` ffmpeg also decodes the first segment of every
rendition), and put them in the buffer. Heartbeats go to the playback gateway as the
timeline emits them.

The clock is virtual: a request costs its round trip, plus its bytes sent over the trace
(``TraceLink``, the simulator's network model), plus the time the server really took
(measured), so a loaded deployment shows up as slower start-up and more stalls. Nothing
sleeps; a session over a loopback deployment runs as fast as the servers answer.
"""

from __future__ import annotations

import asyncio
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
from reelstream.player.client.ladder import Ladder, build_ladder, describe
from reelstream.player.client.license import clearkey_license, identity_key
from reelstream.player.client.timeline import Action, Timeline
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
            one the manifest names; the signed paths stay the same.
    """

    gateway: str
    title_id: str
    device: gateway.Device
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
    presentation, session_id, manifest_s = await open_manifest(http, base, token, config)
    started = time.perf_counter()
    ladder, license_s = await prepare(http, presentation, config)
    prepare_s = time.perf_counter() - started  # license, init segments and sidecars, in parallel
    report = PlaybackReport(config.title_id, config.format, session_id, start,
                            [r.video.rendition_id for r in ladder.rungs], dict(ladder.dropped),
                            manifest_s=manifest_s, license_s=license_s)
    try:
        await Player(http, config, ladder, report, presentation.duration_s).run(
            control_s=manifest_s + prepare_s + 2 * config.rtt_s)
    except ReelStreamError as e:
        e.report = report  # type: ignore[attr-defined]  # what was played before it failed (reel load)
        raise
    return report


async def open_manifest(http: Http, base: str, token: str, config: PlayerConfig
                        ) -> tuple[manifest.Presentation, str, float]:
    name = "manifest.mpd" if config.format == "dash" else "master.m3u8"
    url = f"{base}/manifests/titles/{quote(config.title_id)}/{name}"
    reply = await http.request("manifest", "GET", url, token=token)
    session_id = reply.headers.get("X-Reel-Session", "")
    text = reply.body.decode()
    if config.format == "dash":
        return manifest.parse_mpd(text, url), session_id, reply.elapsed_s
    master = manifest.parse_multivariant(text, url)
    uris = sorted({v.uri for v in master.variants} | {a.uri for a in master.audio})
    replies = await asyncio.gather(*(http.request("media playlist", "GET", u) for u in uris))
    playlists = {u: manifest.parse_media_playlist(r.body.decode(), u) for u, r in zip(uris, replies, strict=True)}
    elapsed = reply.elapsed_s + max(r.elapsed_s for r in replies)
    return manifest.hls_presentation(master, playlists, url), session_id, elapsed


async def prepare(http: Http, presentation: manifest.Presentation, config: PlayerConfig) -> tuple[Ladder, float]:
    """License, init segments and size sidecars, fetched together; the playable ladder."""
    audio = presentation.main_audio(config.audio_language)
    tracks = list(presentation.video) + ([audio] if audio else [])
    inits, sizes, (keys, license_s) = await asyncio.gather(
        asyncio.gather(*(http.request(f"init of {t.rendition_id}", "GET", rebase(t.init_url, config.edge),
                                      gateway=False) for t in tracks)),
        asyncio.gather(*(_sizes(http, t, config.edge) for t in tracks)),
        _keys(http, presentation, tracks))
    infos: dict[str, tuple[TrackInfo, bytes]] = {
        t.rendition_id: read_init(r.body, t.init_url) for t, r in zip(tracks, inits, strict=True)}
    ladder = build_ladder(presentation, audio, infos, keys, dict(zip((t.rendition_id for t in tracks), sizes,
                                                                    strict=True)))
    if not ladder.rungs:
        raise LicenseIncomplete(f"title {config.title_id}: no video rendition this device may decrypt "
                                f"({'; '.join(f'{k}: {v}' for k, v in ladder.dropped.items())})")
    return ladder, license_s


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
                 duration_s: float) -> None:
        self.http, self.config, self.ladder, self.report = http, config, ladder, report
        self.link = TraceLink(config.trace, payload_ratio=config.payload_ratio)
        self.timeline = Timeline(report.start_position_s, duration_s, config.actions,
                                 start_buffer_s=config.start_buffer_s, heartbeat_s=config.heartbeat_s,
                                 leave_after_s=config.max_play_s)
        self.history: list[Decision] = []
        self.decoded: set[str] = set()
        self.edge_node: str | None = None

    async def run(self, control_s: float) -> None:
        timeline = self.timeline
        timeline.wait(control_s)  # manifest and license before the first segment request
        index = self.ladder.index_at(timeline.position_s)
        while not timeline.done:
            if index >= self.ladder.chunks:
                timeline.finish()
                await self._post_beats()
                if (to := timeline.take_seek()) is not None:
                    index = self.ladder.index_at(to)
                    continue
                break
            if timeline.buffer_s > self.config.buffer_cap_s:
                idle = timeline.buffer_s - self.config.buffer_cap_s
                timeline.wait(idle)
                self.link.idle(idle)
                if (to := timeline.take_seek()) is not None:
                    index = self.ladder.index_at(to)
            else:
                index = await self._chunk(index)
            await self._post_beats()
        await self._post_beats()
        self.report.startup_s = timeline.startup_s
        self.report.stall_s, self.report.play_s = timeline.stall_s, timeline.play_s
        self.report.end_position_s, self.report.ended = timeline.position_s, timeline.ended
        self.report.decisions = self.history

    async def _chunk(self, index: int) -> int:
        timeline, ladder = self.timeline, self.ladder
        rung, reason = self._choose(index)
        video, audio = ladder.segments(index, rung)
        at, buffer_before, stall_before = timeline.now_s, timeline.buffer_s, timeline.stall_s
        replies = await asyncio.gather(*(self._get(seg.url, seg.byte_range, f"segment {seg.number} of {rid}")
                                         for rid, seg in video + audio))
        size = sum(len(r.body) for r in replies)
        server_s = max(r.elapsed_s for r in replies)
        download = self.config.rtt_s + self.link.transfer(size) + server_s
        timeline.wait(download)  # ends early at a seek; the link still carried every byte
        seek = timeline.take_seek()
        planned = ladder.planned_bytes(index, rung)
        first = ladder.rungs[rung].video.segments[index]
        media_s = first.start_s + first.duration_s - max(first.start_s, timeline.position_s)
        decision = Decision(ladder.number(index), rung, ladder.rungs[rung].video.rendition_id, reason, at,
                            buffer_before, planned.size, planned.source, size, download, server_s,
                            size * 8 / 1000 / download, timeline.stall_s - stall_before, self.edge_node,
                            media_s=media_s, discarded=seek is not None)
        self.history.append(decision)
        if seek is not None:
            return ladder.index_at(seek)
        for (rid, seg), reply in zip(video + audio, replies, strict=True):
            await self._check(rid, seg, reply.body)
        timeline.append(media_s)
        return index + 1

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
                self.report.session_id, self.config.title_id, extra))
