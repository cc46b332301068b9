"""What a player knows from a manifest, whatever its format: the ladder (video renditions,
ascending bandwidth), the audio and subtitle tracks, every segment's number, timing, URL
and byte range, the protection (scheme, key ids, license URL) and content steering (the
steering server and the pathways). Parsed by :mod:`.mpd` (DASH) and :mod:`.playlists`
(HLS); :mod:`.manifest` is the one place callers import from.

A presentation's URLs are those of one steering pathway (``Presentation.pathway``); the
player parses the same manifest again for another pathway when the steering server moves
it (:mod:`.steering`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from reelstream.player.client.errors import ManifestInvalid

Kind = Literal["video", "audio", "text"]
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
    """A video rendition (a rung), an audio track or a WebVTT subtitle track.

    ``key_id`` is the 32-hex KID (DASH ``default_KID``; for HLS it is read from the init
    segment's ``tenc``); ``key_uri`` is the HLS identity-key URI. Subtitle tracks are
    plain ``text/vtt`` segments: no init segment (``init_url`` is ""), no key; roles
    include "forced-subtitle" for forced narratives and "caption" for SDH."""

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
class Steering:
    """Content steering as the manifest announces it (DASH ``<ContentSteering>`` and the
    MPD-level ``BaseURL@serviceLocation``s; HLS ``EXT-X-CONTENT-STEERING`` and the
    variants' ``PATHWAY-ID``s).

    Attributes:
        server_uri: the steering server (absolute).
        default: the pathway to use before (or without) an answer from it.
        pathways: every pathway the manifest offers, in manifest order.
        query_before_start: DASH ``queryBeforeStart``: ask before the first segment.
    """

    server_uri: str
    default: str
    pathways: tuple[str, ...]
    query_before_start: bool = False


@dataclass(frozen=True)
class Presentation:
    """What a player needs from a manifest: the ladder, the audio and subtitle tracks,
    protection, and content steering (with ``pathway``, the one these URLs are on)."""

    format: Literal["dash", "hls"]
    duration_s: float
    scheme: Scheme
    video: tuple[Rendition, ...]  # ascending bandwidth: rung 0 is the lowest
    audio: tuple[Rendition, ...]
    license_url: str | None = None  # DASH Clear Key license server (dashif:Laurl)
    text: tuple[Rendition, ...] = ()
    steering: Steering | None = None
    pathway: str | None = None

    def subtitles(self, language: str | None, audio_language: str | None = None) -> tuple[Rendition, ...]:
        """The subtitle tracks a player fetches: every track in ``language`` (SDH and
        forced ones included) when the viewer turned subtitles on; with subtitles off,
        only the forced-narrative tracks in the audio's language (foreign dialogue a
        viewer must read whatever the setting)."""
        if language is not None:
            return tuple(t for t in self.text if _same_language(t.language, language))
        return tuple(t for t in self.text if "forced-subtitle" in t.roles
                     and audio_language is not None and _same_language(t.language, audio_language))

    def main_audio(self, language: str | None = None) -> Rendition | None:
        """The audio a player starts with: the main (not audio-description) track, in
        ``language`` when there is one, else the first listed."""
        plain = [a for a in self.audio if "description" not in a.roles]
        preferred = [a for a in plain if language is None or a.language == language]
        return next(iter(preferred or plain or self.audio), None)


def _same_language(tag: str | None, wanted: str) -> bool:
    """BCP 47 tags match on their primary language ("en-US" is "en"), case-insensitive."""
    return (tag or "und").split("-")[0].lower() == wanted.split("-")[0].lower()


def rate(r: Rendition) -> tuple[int, int]:
    """Sort key of the ladder: bandwidth, then height."""
    return r.bandwidth_bps, r.height or 0


def one_scheme(schemes: set[Scheme], url: str) -> Scheme:
    """The presentation's scheme: players (and CDMs) take one scheme per presentation."""
    if len(schemes) > 1:
        raise ManifestInvalid(f"{url}: tracks use different schemes {sorted(schemes)}; one per presentation")
    return next(iter(schemes), "clear")
