"""What a packaging run produced: the contract between the packager, the manifest
generator (gateways, per request) and the players.

A ``Package`` is stored as ``package.json`` under its storage prefix. It holds key ids,
never keys.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

TrackKind = Literal["video", "audio", "text"]
Scheme = Literal["cenc", "cbcs", "clear"]


@dataclass(frozen=True)
class Segment:
    number: int  # 1-based, as $Number$ in DASH and the media sequence in HLS
    start: int  # in the track's timescale
    duration: int  # in the track's timescale
    size: int  # bytes (players plan variable-size segments with it)


@dataclass(frozen=True)
class PackagedTrack:
    track_id: str  # rendition id ("h264-720p-3000k"), audio ("audio-en", "audio-en-ad") or text ("text-fr-sdh")
    kind: TrackKind
    codecs: str  # RFC 6381: "avc1.64001f", "hvc1.2.4.L150.B0", "mp4a.40.2", "wvtt"
    bandwidth: int  # peak bits/s over any segment
    average_bandwidth: int  # bits/s over the whole track
    timescale: int
    init: str  # object key of the init segment, relative to the package prefix ("" for WebVTT)
    media_template: str  # relative key with "{number}" e.g. "h264-720p-3000k/seg-{number:05d}.m4s"
    segments: tuple[Segment, ...]
    width: int | None = None
    height: int | None = None
    frame_rate: str | None = None  # "24" or "24000/1001"
    video_range: Literal["SDR", "PQ", "HLG"] | None = None
    language: str | None = None  # BCP 47
    roles: tuple[str, ...] = ()  # DASH Role values: main, alternate, description, caption, subtitle, forced-subtitle
    accessibility: tuple[str, ...] = ()  # "audio-description", "sdh"
    key_id: str | None = None  # 32 hex digits; None when clear
    key_class: Literal["AUDIO", "SD", "HD", "UHD"] | None = None

    def media_key(self, number: int) -> str:
        return self.media_template.format(number=number)


@dataclass(frozen=True)
class Package:
    title_id: str
    package_id: str
    scheme: Scheme
    storage_prefix: str  # "packages/{title_id}/{package_id}/"
    duration_s: float
    tracks: tuple[PackagedTrack, ...]
    pssh: dict[str, str] = field(default_factory=dict)  # DRM system id (uuid) -> base64 pssh box, per key set

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Package:
        raw: dict[str, Any] = json.loads(text)
        tracks = tuple(
            PackagedTrack(**{**t, "segments": tuple(Segment(**s) for s in t["segments"]),
                             "roles": tuple(t["roles"]), "accessibility": tuple(t["accessibility"])})
            for t in raw.pop("tracks"))
        return cls(**raw, tracks=tracks)
