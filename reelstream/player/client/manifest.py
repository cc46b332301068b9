"""Manifests as a player reads them: DASH MPDs and HLS playlists to one ``Presentation``.

Pure functions of the manifest text and its URL (relative URLs resolve against it); the
session fetches. What is read:

- DASH (ISO/IEC 23009-1): static MPD, ``mediaPresentationDuration``; AdaptationSets of
  video and audio with Role and Accessibility; ``SegmentTemplate`` (on the set or the
  Representation) with ``$Number$``/``$Number%0Nd$``/``$RepresentationID$``/``$Time$``
  and a ``SegmentTimeline`` (§5.3.9.6) or a fixed ``duration``; ContentProtection
  ``urn:mpeg:dash:mp4protection:2011`` (scheme, ``cenc:default_KID``, 23001-7 §11.1) and
  the Clear Key license URL (``dashif:Laurl``).
- HLS (RFC 8216): the multivariant playlist's ``EXT-X-STREAM-INF`` and ``EXT-X-MEDIA``
  (TYPE=AUDIO), then each media playlist's ``EXTINF``, ``EXT-X-MAP``, ``EXT-X-KEY``
  (METHOD SAMPLE-AES-CTR = cenc, SAMPLE-AES = cbcs; the ``identity`` key URI) and
  ``EXT-X-BYTERANGE`` (§4.3.2.2).

Rungs are video renditions in ascending bandwidth. Segment *sizes* are not in these
manifests (ReelStream's packager writes a sidecar beside each track, see
:mod:`reelstream.media.package.sizes`); HLS byte ranges give them where present.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Literal
from urllib.parse import urljoin

from reelstream.player.client.errors import ManifestInvalid

Kind = Literal["video", "audio"]
Scheme = Literal["cenc", "cbcs", "clear"]
NS = {"mpd": "urn:mpeg:dash:schema:mpd:2011", "cenc": "urn:mpeg:cenc:2013", "dashif": "https://dashif.org/CPS"}
MP4_PROTECTION = "urn:mpeg:dash:mp4protection:2011"
CLEARKEY_SYSTEM = "urn:uuid:e2719d58-a985-b3c9-781a-b030af78d30e"
HLS_METHODS: dict[str, Scheme] = {"SAMPLE-AES-CTR": "cenc", "SAMPLE-AES": "cbcs", "NONE": "clear"}


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


# --------------------------------------------------------------------------- DASH


def parse_mpd(text: str, url: str) -> Presentation:
    """A static MPD's first Period as a ``Presentation``; ManifestInvalid names what is wrong."""
    try:
        root = ET.fromstring(text)
    except ET.ParseError as e:
        raise ManifestInvalid(f"MPD from {url} is not XML: {e}") from e
    if root.tag != f"{{{NS['mpd']}}}MPD":
        raise ManifestInvalid(f"{url}: root element is {root.tag}, not an MPD")
    if root.get("type", "static") != "static":
        raise ManifestInvalid(f"{url}: only static (VOD) MPDs are played, this one is {root.get('type')}")
    duration = parse_duration(root.get("mediaPresentationDuration") or "", url)
    period = root.find("mpd:Period", NS)
    if period is None:
        raise ManifestInvalid(f"{url}: MPD has no Period")
    base = _base_url(root, url, _default_pathway(root))
    base = _base_url(period, base)
    video: list[Rendition] = []
    audio: list[Rendition] = []
    schemes: set[Scheme] = set()
    license_url = None
    for aset in period.findall("mpd:AdaptationSet", NS):
        kind = aset.get("contentType") or (aset.get("mimeType") or "").split("/")[0]
        if kind not in ("video", "audio"):
            continue  # text tracks are not played here
        set_base = _base_url(aset, base)
        set_protection = _protection(aset)
        roles = tuple(r.get("value", "") for r in aset.findall("mpd:Role", NS))
        if any(a.get("schemeIdUri") == "urn:tva:metadata:cs:AudioPurposeCS:2007" and a.get("value") == "1"
               for a in aset.findall("mpd:Accessibility", NS)):
            roles += ("description",)
        for rep in aset.findall("mpd:Representation", NS):
            scheme, kid, laurl = _protection(rep) if rep.find("mpd:ContentProtection", NS) is not None \
                else set_protection
            schemes.add(scheme)
            license_url = license_url or (urljoin(url, laurl) if laurl else None)
            rendition = _representation(rep, aset, kind, _base_url(rep, set_base), duration, url)  # type: ignore[arg-type]
            rendition = replace(rendition, key_id=kid, roles=roles, language=aset.get("lang"))
            (video if kind == "video" else audio).append(rendition)
    if not video and not audio:
        raise ManifestInvalid(f"{url}: no video or audio Representation")
    return Presentation("dash", duration, _one_scheme(schemes, url), tuple(sorted(video, key=_rate)),
                        tuple(audio), license_url)


def _rate(r: Rendition) -> tuple[int, int]:
    return r.bandwidth_bps, r.height or 0


def _one_scheme(schemes: set[Scheme], url: str) -> Scheme:
    if len(schemes) > 1:
        raise ManifestInvalid(f"{url}: tracks use different schemes {sorted(schemes)}; one per presentation")
    return next(iter(schemes), "clear")


def _default_pathway(root: ET.Element) -> str | None:
    """DASH-IF Content Steering: the ``serviceLocation`` to use before (or without) asking
    the steering server. This player stays on it for the whole session."""
    steering = root.find("mpd:ContentSteering", NS)
    return steering.get("defaultServiceLocation") if steering is not None else None


def _base_url(element: ET.Element, base: str, service_location: str | None = None) -> str:
    nodes = element.findall("mpd:BaseURL", NS)
    chosen = [n for n in nodes if service_location and n.get("serviceLocation") == service_location]
    node = (chosen or nodes or [None])[0]
    return urljoin(base, node.text.strip()) if node is not None and node.text else base


def _protection(element: ET.Element) -> tuple[Scheme, str | None, str | None]:
    """(scheme, default KID as 32 hex, Clear Key license URL) of an element's descriptors."""
    scheme: Scheme = "clear"
    kid = laurl = None
    for cp in element.findall("mpd:ContentProtection", NS):
        if cp.get("schemeIdUri") == MP4_PROTECTION:
            value = cp.get("value", "cenc")
            scheme = value if value in ("cenc", "cbcs") else "cenc"  # type: ignore[assignment]
            raw = cp.get(f"{{{NS['cenc']}}}default_KID")
            kid = raw.replace("-", "").lower() if raw else None
        elif (cp.get("schemeIdUri") or "").lower() == CLEARKEY_SYSTEM:
            node = cp.find("dashif:Laurl", NS)
            laurl = node.text.strip() if node is not None and node.text else laurl
    return scheme, kid, laurl


def _representation(rep: ET.Element, aset: ET.Element, kind: Kind, base: str, duration_s: float,
                    url: str) -> Rendition:
    rid = rep.get("id")
    if not rid:
        raise ManifestInvalid(f"{url}: a Representation has no id")
    template = rep.find("mpd:SegmentTemplate", NS)
    if template is None:
        template = aset.find("mpd:SegmentTemplate", NS)
    if template is None:
        raise ManifestInvalid(f"{url}: Representation {rid} has no SegmentTemplate (SegmentBase is not supported)")
    bandwidth = int(rep.get("bandwidth") or 0)
    init = template.get("initialization")
    media = template.get("media")
    if not init or not media:
        raise ManifestInvalid(f"{url}: Representation {rid}: SegmentTemplate needs initialization and media")
    segments = tuple(
        SegmentRef(number, start / timescale, length / timescale,
                   urljoin(base, fill_template(media, rid, bandwidth, number, start)))
        for number, start, length, timescale in _timeline(template, duration_s, rid, url))
    return Rendition(
        rendition_id=rid, kind=kind, bandwidth_bps=bandwidth,
        codecs=rep.get("codecs") or aset.get("codecs") or "",
        init_url=urljoin(base, fill_template(init, rid, bandwidth, 0, 0)), segments=segments,
        width=_int(rep.get("width")), height=_int(rep.get("height")))


def _int(value: str | None) -> int | None:
    return int(value) if value else None


def _timeline(template: ET.Element, duration_s: float, rid: str, url: str) -> Iterator[tuple[int, int, int, int]]:
    """(number, start, duration, timescale) of every segment, in the template's timescale."""
    timescale = int(template.get("timescale") or 1)
    number = int(template.get("startNumber") or 1)
    timeline = template.find("mpd:SegmentTimeline", NS)
    end = round(duration_s * timescale)
    if timeline is None:
        length = int(template.get("duration") or 0)
        if length <= 0:
            raise ManifestInvalid(f"{url}: Representation {rid}: SegmentTemplate without a timeline or duration")
        for start in range(0, end, length):
            yield number, start, min(length, end - start), timescale
            number += 1
        return
    t = 0
    for s in timeline.findall("mpd:S", NS):
        t = int(s.get("t")) if s.get("t") is not None else t  # type: ignore[arg-type]
        length, repeat = int(s.get("d") or 0), int(s.get("r") or 0)
        if length <= 0:
            raise ManifestInvalid(f"{url}: Representation {rid}: an S element has no positive d")
        if repeat < 0:  # 23009-1: repeat until the end of the Period
            repeat = max(0, -(-(end - t) // length) - 1)
        for _ in range(repeat + 1):
            yield number, t, length, timescale
            number, t = number + 1, t + length


_IDENTIFIER = re.compile(r"\$(RepresentationID|Number|Bandwidth|Time)(%0(\d+)d)?\$|\$\$")


def fill_template(template: str, rid: str, bandwidth: int, number: int, time: int) -> str:
    """A SegmentTemplate URL with its identifiers substituted (23009-1 §5.3.9.4.4)."""
    def value(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, width = match.group(1), match.group(3)
        raw: object = {"RepresentationID": rid, "Number": number, "Bandwidth": bandwidth, "Time": time}[name]
        return f"{raw:0{width}d}" if width and name != "RepresentationID" else str(raw)
    return _IDENTIFIER.sub(value, template)


def parse_duration(text: str, url: str) -> float:
    """An xs:duration as used by MPDs (PnDTnHnMnS) in seconds."""
    match = re.fullmatch(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:([\d.]+)S)?)?", text.strip())
    if not match or text.strip() in ("P", "PT"):
        raise ManifestInvalid(f"{url}: mediaPresentationDuration {text!r} is not an xs:duration")
    days, hours, minutes, secs = (float(g) if g else 0.0 for g in match.groups())
    return days * 86400 + hours * 3600 + minutes * 60 + secs


# --------------------------------------------------------------------------- HLS


@dataclass(frozen=True)
class Variant:
    """One ``EXT-X-STREAM-INF`` of a multivariant playlist."""

    uri: str
    bandwidth_bps: int
    codecs: str
    width: int | None
    height: int | None
    audio_group: str | None


@dataclass(frozen=True)
class AudioMedia:
    """One ``EXT-X-MEDIA:TYPE=AUDIO``."""

    uri: str
    group: str
    language: str | None
    name: str
    default: bool
    description: bool  # CHARACTERISTICS public.accessibility.describes-video


@dataclass(frozen=True)
class Multivariant:
    variants: tuple[Variant, ...]
    audio: tuple[AudioMedia, ...]


_ATTRIBUTE = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)')


def attributes(text: str) -> dict[str, str]:
    """An HLS attribute list (RFC 8216 §4.2), quotes removed."""
    return {k: v[1:-1] if v.startswith('"') else v for k, v in _ATTRIBUTE.findall(text)}


def _lines(text: str, url: str) -> list[str]:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines or lines[0] != "#EXTM3U":
        raise ManifestInvalid(f"{url}: not an HLS playlist (no #EXTM3U on the first line)")
    return lines


def parse_multivariant(text: str, url: str) -> Multivariant:
    """Variants (one per video rendition and audio group) and audio renditions."""
    lines = _lines(text, url)
    variants: list[Variant] = []
    audio: list[AudioMedia] = []
    # rfc8216bis §4.4.6.6: with content steering every pathway repeats the variants; this
    # player stays on the default pathway (it does not poll the steering server).
    pathway = next((attributes(line.partition(":")[2]).get("PATHWAY-ID") for line in lines
                    if line.startswith("#EXT-X-CONTENT-STEERING:")), None)
    for i, line in enumerate(lines):
        if line.startswith("#EXT-X-STREAM-INF:"):
            attrs = attributes(line.partition(":")[2])
            if pathway and attrs.get("PATHWAY-ID", pathway) != pathway:
                continue
            if i + 1 >= len(lines) or lines[i + 1].startswith("#"):
                raise ManifestInvalid(f"{url}: EXT-X-STREAM-INF on line {i + 1} is not followed by a URI")
            if "BANDWIDTH" not in attrs:
                raise ManifestInvalid(f"{url}: EXT-X-STREAM-INF on line {i + 1} has no BANDWIDTH")
            w, _, h = attrs.get("RESOLUTION", "").partition("x")
            variants.append(Variant(urljoin(url, lines[i + 1]), int(attrs["BANDWIDTH"]), attrs.get("CODECS", ""),
                                    int(w) if w else None, int(h) if h else None, attrs.get("AUDIO")))
        elif line.startswith("#EXT-X-MEDIA:"):
            attrs = attributes(line.partition(":")[2])
            if attrs.get("TYPE") == "AUDIO" and "URI" in attrs:
                audio.append(AudioMedia(urljoin(url, attrs["URI"]), attrs.get("GROUP-ID", ""), attrs.get("LANGUAGE"),
                                        attrs.get("NAME", ""), attrs.get("DEFAULT") == "YES",
                                        "describes-video" in attrs.get("CHARACTERISTICS", "")))
    if not variants:
        raise ManifestInvalid(f"{url}: multivariant playlist has no EXT-X-STREAM-INF")
    groups = {v.audio_group for v in variants}
    return Multivariant(tuple(variants), tuple(a for a in audio if a.group in groups))


@dataclass(frozen=True)
class MediaPlaylist:
    init_url: str
    segments: tuple[SegmentRef, ...]
    scheme: Scheme
    key_uri: str | None


def parse_media_playlist(text: str, url: str) -> MediaPlaylist:
    """A VOD media playlist: init map, key, segments (with byte ranges when given)."""
    lines = _lines(text, url)
    if "#EXT-X-ENDLIST" not in lines:
        raise ManifestInvalid(f"{url}: live playlists (no EXT-X-ENDLIST) are not played")
    number, start = 0, 0.0
    init_url = key_uri = None
    scheme: Scheme = "clear"
    duration: float | None = None
    byte_range: tuple[int, int] | None = None
    next_offset: dict[str, int] = {}
    segments: list[SegmentRef] = []
    for i, line in enumerate(lines):
        tag, _, value = line.partition(":")
        if tag == "#EXT-X-MEDIA-SEQUENCE":
            number = int(value)
        elif tag == "#EXT-X-MAP":
            init_url = urljoin(url, attributes(value).get("URI", ""))
        elif tag == "#EXT-X-KEY":
            attrs = attributes(value)
            method = attrs.get("METHOD", "NONE")
            if method not in HLS_METHODS:
                raise ManifestInvalid(f"{url}: line {i + 1}: EXT-X-KEY METHOD {method} is not a CENC scheme")
            scheme = HLS_METHODS[method]
            if attrs.get("KEYFORMAT", "identity") == "identity" and "URI" in attrs:
                key_uri = urljoin(url, attrs["URI"])
        elif tag == "#EXTINF":
            try:
                duration = float(value.split(",")[0])
            except ValueError as e:
                raise ManifestInvalid(f"{url}: line {i + 1}: EXTINF duration {value!r}") from e
        elif tag == "#EXT-X-BYTERANGE":
            length, _, offset = value.partition("@")
            byte_range = (int(offset) if offset else -1, int(length))
        elif not line.startswith("#"):
            if duration is None:
                raise ManifestInvalid(f"{url}: line {i + 1}: segment URI without EXTINF")
            seg_url = urljoin(url, line)
            if byte_range is not None and byte_range[0] < 0:  # continues the previous range (§4.3.2.2)
                byte_range = (next_offset.get(seg_url, 0), byte_range[1])
            if byte_range is not None:
                next_offset[seg_url] = byte_range[0] + byte_range[1]
            segments.append(SegmentRef(number, start, duration, seg_url, byte_range))
            number, start, duration, byte_range = number + 1, start + duration, None, None
    if init_url is None:
        raise ManifestInvalid(f"{url}: no EXT-X-MAP: fragmented MP4 playlists need an init segment")
    if not segments:
        raise ManifestInvalid(f"{url}: no segments")
    return MediaPlaylist(init_url, tuple(segments), scheme, key_uri)


def hls_presentation(master: Multivariant, playlists: dict[str, MediaPlaylist], url: str) -> Presentation:
    """Join a multivariant playlist with its fetched media playlists (keyed by URI)."""
    video: dict[str, Rendition] = {}
    for v in master.variants:
        if v.uri in video:
            continue  # the same rendition listed for another audio group
        media = playlists[v.uri]
        video[v.uri] = Rendition(
            rendition_id=_track_id(v.uri), kind="video", bandwidth_bps=v.bandwidth_bps, codecs=v.codecs,
            init_url=media.init_url, segments=media.segments, width=v.width, height=v.height,
            key_uri=media.key_uri)
    audio = []
    for a in master.audio:
        media = playlists[a.uri]
        roles = ("main",) if a.default else ()
        audio.append(Rendition(
            rendition_id=_track_id(a.uri), kind="audio", bandwidth_bps=0, codecs="",
            init_url=media.init_url, segments=media.segments, language=a.language,
            roles=roles + (("description",) if a.description else ()), key_uri=media.key_uri))
    schemes = {p.scheme for p in playlists.values()}
    duration = max(r.duration_s for r in video.values())
    return Presentation("hls", duration, _one_scheme(schemes, url), tuple(sorted(video.values(), key=_rate)),
                        tuple(audio))


def _track_id(uri: str) -> str:
    return uri.split("?")[0].rsplit("/", 1)[-1].removesuffix(".m3u8")
