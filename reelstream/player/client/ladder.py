"""The ladder a session plays: the manifest's video renditions this device got keys for,
with the audio track fetched beside them, and the size of every chunk at every rung.

Pure: built from the parsed manifest, the init segments, the license and the size
sidecars. A chunk is one video segment plus the audio segment(s) of the same time span
(ReelStream cuts both on one 2-s grid; the audio may have one extra segment at the end,
fetched with the last chunk). Sizes come from, in order: the packager's sidecar
(``source="index"``), an HLS byte range (``"byte-range"``), else the rendition's
nominal bandwidth times the segment duration (``"nominal"``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from reelstream.media.package.sizes import SegmentSizes
from reelstream.player.abr import Observation
from reelstream.player.client.decrypt import TrackInfo
from reelstream.player.client.errors import LicenseIncomplete, ManifestInvalid
from reelstream.player.client.manifest import Presentation, Rendition, SegmentRef

HORIZON = 10  # chunks of sizes given to the ABR; beyond, it estimates from bitrates


@dataclass(frozen=True)
class Planned:
    size: int
    source: str


@dataclass(frozen=True)
class Rung:
    video: Rendition
    bitrate_kbps: float  # video + audio


class Ladder:
    def __init__(self, rungs: list[Rung], audio: Rendition | None, inits: Mapping[str, tuple[TrackInfo, bytes]],
                 keys: Mapping[str, bytes], sizes: Mapping[str, SegmentSizes | None],
                 dropped: dict[str, str]) -> None:
        self.rungs, self.audio, self.inits, self.keys, self.sizes = rungs, audio, inits, keys, sizes
        self.dropped = dropped
        counts = {len(r.video.segments) for r in rungs}
        if len(counts) > 1:
            raise ManifestInvalid(f"video renditions have different segment counts {sorted(counts)}: "
                                  "chunks are not aligned across rungs")
        self.chunks = counts.pop() if counts else 0
        self.bitrates_kbps = tuple(r.bitrate_kbps for r in rungs)
        first = rungs[0].video.segments if rungs else ()
        self.chunk_s = max((s.duration_s for s in first), default=2.0)
        self._plan = tuple(tuple(self._planned(i, r) for r in range(len(rungs))) for i in range(self.chunks))

    def moved(self, presentation: Presentation) -> Ladder:
        """The same ladder with every segment URL on another content-steering pathway
        (``presentation`` parsed for it). Keys, inits and sizes stay: a pathway is another
        edge serving the same objects. ManifestInvalid if the pathway's renditions differ."""
        offered = {r.rendition_id: r for r in presentation.video + presentation.audio}

        def move(track: Rendition) -> Rendition:
            other = offered.get(track.rendition_id)
            if other is None or [(s.number, round(s.start_s, 3)) for s in other.segments] != \
                    [(s.number, round(s.start_s, 3)) for s in track.segments]:
                raise ManifestInvalid(f"pathway {presentation.pathway!r} does not offer {track.rendition_id} "
                                      "with the same segments as the one the session started on")
            return replace(track, init_url=other.init_url, segments=other.segments)

        return Ladder([Rung(move(r.video), r.bitrate_kbps) for r in self.rungs],
                      move(self.audio) if self.audio else None, self.inits, self.keys, self.sizes, self.dropped)

    def number(self, index: int) -> int:
        return self.rungs[0].video.segments[index].number

    def index_at(self, position_s: float) -> int:
        """The chunk holding ``position_s`` (``chunks`` past the end)."""
        for i, seg in enumerate(self.rungs[0].video.segments):
            if position_s < seg.start_s + seg.duration_s - 1e-6:
                return i
        return self.chunks

    def segments(self, index: int, rung: int) -> tuple[list[tuple[str, SegmentRef]], list[tuple[str, SegmentRef]]]:
        """(video, audio) segments of chunk ``index`` at ``rung``, with their rendition ids."""
        video = self.rungs[rung].video
        audio: list[tuple[str, SegmentRef]] = []
        if self.audio is not None:
            last = index == self.chunks - 1
            picked = self.audio.segments[index:] if last else self.audio.segments[index:index + 1]
            audio = [(self.audio.rendition_id, s) for s in picked]
        return [(video.rendition_id, video.segments[index])], audio

    def key_for(self, rendition_id: str) -> bytes | None:
        info = self.inits[rendition_id][0]
        track = next((r.video for r in self.rungs if r.video.rendition_id == rendition_id), self.audio)
        if track is not None and track.key_uri:
            return self.keys.get(f"uri:{track.key_uri}")
        return self.keys.get(info.key_id or "")

    def planned_bytes(self, index: int, rung: int) -> Planned:
        return self._plan[index][rung]

    def upcoming_sizes(self, index: int) -> tuple[tuple[int, ...], ...]:
        return tuple(tuple(p.size for p in row) for row in self._plan[index:index + HORIZON])

    def _planned(self, index: int, rung: int) -> Planned:
        video, audio = self.segments(index, rung)
        size, source = self._size(video[0][0], video[0][1], self.rungs[rung].video)
        for rid, seg in audio:
            size += self._size(rid, seg, self.audio)[0]  # type: ignore[arg-type]
        return Planned(size, source)

    def _size(self, rendition_id: str, seg: SegmentRef, track: Rendition) -> tuple[int, str]:
        index = self.sizes.get(rendition_id)
        if index is not None and (known := index.size(seg.number)) is not None:
            return known, "index"
        if seg.byte_range is not None:
            return seg.byte_range[1], "byte-range"
        return round(track.bandwidth_bps * seg.duration_s / 8), "nominal"


def build_ladder(presentation: Presentation, audio: Rendition | None, inits: Mapping[str, tuple[TrackInfo, bytes]],
                 keys: Mapping[str, bytes], sizes: Mapping[str, SegmentSizes | None]) -> Ladder:
    """The rungs whose key was licensed (or that are clear); the others in ``dropped``."""
    def licensed(track: Rendition) -> bool:
        info = inits[track.rendition_id][0]
        if info.scheme == "clear":
            return True
        return (f"uri:{track.key_uri}" in keys) if track.key_uri else (info.key_id in keys)

    dropped: dict[str, str] = {}
    rungs = []
    audio_kbps = (audio.bandwidth_bps if audio else 0) / 1000
    for video in presentation.video:
        if licensed(video):
            rungs.append(Rung(video, video.bandwidth_bps / 1000 + audio_kbps))
        else:
            dropped[video.rendition_id] = "no key licensed to this device"
    if audio is not None and not licensed(audio):
        raise LicenseIncomplete(f"the license holds no key for audio {audio.rendition_id}")
    return Ladder(rungs, audio, inits, keys, sizes, dropped)


def describe(algorithm: str, obs: Observation, rung: int) -> str:
    """Why a rung, in words a log reader follows: the move, the buffer, the last throughput."""
    last = obs.last_rung if obs.last_rung is not None else rung
    move = "up" if rung > last else "down" if rung < last else "hold"
    seen = f", last chunk at {obs.throughputs_kbps[-1]:.0f} kbit/s" if obs.throughputs_kbps else ""
    return f"{algorithm}: {move} to rung {rung} ({obs.bitrates_kbps[rung]:.0f} kbit/s), buffer {obs.buffer_s:.1f} s{seen}"
