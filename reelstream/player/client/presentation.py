"""What a player knows from a manifest, whatever its format: the ladder (video renditions,
ascending bandwidth), the audio tracks, every segment's number, timing, URL and byte
range, and the protection (scheme, key ids, license URL). Parsed by :mod:`.mpd` (DASH)
and :mod:`.playlists` (HLS); :mod:`.manifest` is the one place callers import from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from reelstream.player.client.errors import ManifestInvalid

Kind = Literal["video", "audio"]
Scheme = Literal["cenc", "cbcs", "clear"]


@dataclass(frozen=True)
class SegmentRef:
    """One media segment: its number (DASH ``$Number$`` / HLS media sequence), timing in
    seconds, URL, and byte range ``(offset, length)`` when the manifest gives one."""

    number: int
    start_s: float
    duration_s: float
    url: str
    byte_range: tuple[int, int] | None = None


@dataclass(frozen=True)
class Rendition:
    """A video rendition (a rung) or an audio track.

    ``key_id`` is the 32-hex KID (DASH ``default_KID``; for HLS it is read from the init
    segment's ``tenc``); ``key_uri`` is the HLS identity-key URI."""

    rendition_id: str
    kind: Kind
    bandwidth_bps: int
    codecs: str
    init_url: str
    segments: tuple[SegmentRef, ...]
    width: int | None = None
    height: int | None = None
    language: str | None = None
    roles: tuple[str, ...] = ()
    key_id: str | None = None
    key_uri: str | None = None

    @property
    def duration_s(self) -> float:
        return sum(s.duration_s for s in self.segments)


@dataclass(frozen=True)
class Presentation:
    """What a player needs from a manifest: the ladder, the audio tracks, protection."""

    format: Literal["dash", "hls"]
    duration_s: float
    scheme: Scheme
    video: tuple[Rendition, ...]  # ascending bandwidth: rung 0 is the lowest
    audio: tuple[Rendition, ...]
    license_url: str | None = None  # DASH Clear Key license server (dashif:Laurl)

    def main_audio(self, language: str | None = None) -> Rendition | None:
        """The audio a player starts with: the main (not audio-description) track, in
        ``language`` when there is one, else the first listed."""
        plain = [a for a in self.audio if "description" not in a.roles]
        preferred = [a for a in plain if language is None or a.language == language]
        return (preferred or plain or list(self.audio) or [None])[0]


def rate(r: Rendition) -> tuple[int, int]:
    """Sort key of the ladder: bandwidth, then height."""
    return r.bandwidth_bps, r.height or 0


def one_scheme(schemes: set[Scheme], url: str) -> Scheme:
    """The presentation's scheme: players (and CDMs) take one scheme per presentation."""
    if len(schemes) > 1:
        raise ManifestInvalid(f"{url}: tracks use different schemes {sorted(schemes)}; one per presentation")
    return next(iter(schemes), "clear")
