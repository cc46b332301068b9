"""HLS playlists (RFC 8216) as a ``Presentation``: see :mod:`.manifest` for what is read."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urljoin

from reelstream.player.client.errors import ManifestInvalid
from reelstream.player.client.presentation import (
    Presentation,
    Rendition,
    Scheme,
    SegmentRef,
    Steering,
    one_scheme,
    rate,
)

HLS_METHODS: dict[str, Scheme] = {"SAMPLE-AES-CTR": "cenc", "SAMPLE-AES": "cbcs", "NONE": "clear"}


@dataclass(frozen=True)
class Variant:
    """One ``EXT-X-STREAM-INF`` of a multivariant playlist."""

    uri: str
    bandwidth_bps: int
    codecs: str
    width: int | None
    height: int | None
    audio_group: str | None
    subtitles_group: str | None = None


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
class SubtitlesMedia:
    """One ``EXT-X-MEDIA:TYPE=SUBTITLES`` (a WebVTT media playlist)."""

    uri: str
    group: str
    language: str | None
    name: str
    forced: bool
    sdh: bool  # CHARACTERISTICS public.accessibility.transcribes-spoken-dialog


@dataclass(frozen=True)
class Multivariant:
    """The variants, audio and subtitles of one pathway (``pathway``; None without steering)."""

    variants: tuple[Variant, ...]
    audio: tuple[AudioMedia, ...]
    subtitles: tuple[SubtitlesMedia, ...] = ()
    steering: Steering | None = None
    pathway: str | None = None


_ATTRIBUTE = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)')


def attributes(text: str) -> dict[str, str]:
    """An HLS attribute list (RFC 8216 §4.2), quotes removed."""
    return {k: v[1:-1] if v.startswith('"') else v for k, v in _ATTRIBUTE.findall(text)}


def _lines(text: str, url: str) -> list[str]:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines or lines[0] != "#EXTM3U":
        raise ManifestInvalid(f"{url}: not an HLS playlist (no #EXTM3U on the first line)")
    return lines


def parse_multivariant(text: str, url: str, pathway: str | None = None) -> Multivariant:
    """Variants (one per video rendition and audio group), audio and subtitle renditions,
    of ``pathway`` (the steering default when None)."""
    lines = _lines(text, url)
    steering = _steering(lines, url)
    chosen = pathway or (steering.default if steering else None)
    if pathway is not None and (steering is None or pathway not in steering.pathways):
        raise ManifestInvalid(f"{url}: no variants on pathway {pathway!r} "
                              f"(offered: {', '.join(steering.pathways) if steering else 'none'})")
    variants: list[Variant] = []
    audio: list[AudioMedia] = []
    subtitles: list[SubtitlesMedia] = []
    for i, line in enumerate(lines):
        if line.startswith("#EXT-X-STREAM-INF:"):
            attrs = attributes(line.partition(":")[2])
            # rfc8216bis §4.4.6.6: with content steering every pathway repeats the variants.
            if chosen and attrs.get("PATHWAY-ID", ".") != chosen:
                continue
            if i + 1 >= len(lines) or lines[i + 1].startswith("#"):
                raise ManifestInvalid(f"{url}: EXT-X-STREAM-INF on line {i + 1} is not followed by a URI")
            if "BANDWIDTH" not in attrs:
                raise ManifestInvalid(f"{url}: EXT-X-STREAM-INF on line {i + 1} has no BANDWIDTH")
            w, _, h = attrs.get("RESOLUTION", "").partition("x")
            where = f"{url}: line {i + 1}: EXT-X-STREAM-INF"
            variants.append(Variant(urljoin(url, lines[i + 1]), _integer(attrs["BANDWIDTH"], f"{where} BANDWIDTH"),
                                    attrs.get("CODECS", ""), _integer(w, f"{where} RESOLUTION") if w else None,
                                    _integer(h, f"{where} RESOLUTION") if h else None, attrs.get("AUDIO"),
                                    attrs.get("SUBTITLES")))
        elif line.startswith("#EXT-X-MEDIA:"):
            attrs = attributes(line.partition(":")[2])
            if attrs.get("TYPE") == "AUDIO" and "URI" in attrs:
                audio.append(AudioMedia(urljoin(url, attrs["URI"]), attrs.get("GROUP-ID", ""), attrs.get("LANGUAGE"),
                                        attrs.get("NAME", ""), attrs.get("DEFAULT") == "YES",
                                        "describes-video" in attrs.get("CHARACTERISTICS", "")))
            elif attrs.get("TYPE") == "SUBTITLES" and "URI" in attrs:
                subtitles.append(SubtitlesMedia(
                    urljoin(url, attrs["URI"]), attrs.get("GROUP-ID", ""), attrs.get("LANGUAGE"),
                    attrs.get("NAME", ""), attrs.get("FORCED") == "YES",
                    "transcribes-spoken-dialog" in attrs.get("CHARACTERISTICS", "")))
    if not variants:
        raise ManifestInvalid(f"{url}: multivariant playlist has no EXT-X-STREAM-INF")
    groups = {v.audio_group for v in variants}
    text_groups = {v.subtitles_group for v in variants}
    return Multivariant(tuple(variants), tuple(a for a in audio if a.group in groups),
                        tuple(t for t in subtitles if t.group in text_groups), steering, chosen)


def _steering(lines: list[str], url: str) -> Steering | None:
    """``EXT-X-CONTENT-STEERING`` (rfc8216bis §4.4.6.6) and the variants' pathways, in
    playlist order; a variant without ``PATHWAY-ID`` is on pathway "."."""
    tag = next((line for line in lines if line.startswith("#EXT-X-CONTENT-STEERING:")), None)
    if tag is None:
        return None
    attrs = attributes(tag.partition(":")[2])
    if not attrs.get("SERVER-URI"):
        raise ManifestInvalid(f"{url}: EXT-X-CONTENT-STEERING has no SERVER-URI")
    pathways: list[str] = []
    for line in lines:
        if line.startswith("#EXT-X-STREAM-INF:"):
            name = attributes(line.partition(":")[2]).get("PATHWAY-ID", ".")
            if name not in pathways:
                pathways.append(name)
    default = attrs.get("PATHWAY-ID", pathways[0] if pathways else ".")
    if default not in pathways:
        raise ManifestInvalid(f"{url}: EXT-X-CONTENT-STEERING PATHWAY-ID {default!r} names no variant")
    return Steering(urljoin(url, attrs["SERVER-URI"]), default, tuple(pathways))


@dataclass(frozen=True)
class MediaPlaylist:
    init_url: str  # "" for a WebVTT playlist (no EXT-X-MAP)
    segments: tuple[SegmentRef, ...]
    scheme: Scheme
    key_uri: str | None


def parse_media_playlist(text: str, url: str, needs_init: bool = True) -> MediaPlaylist:
    """A VOD media playlist: init map, key, segments (with byte ranges when given).
    ``needs_init`` False for subtitles: WebVTT segments are whole files (§3.1.4)."""
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
            number = _integer(value, f"{url}: line {i + 1}: EXT-X-MEDIA-SEQUENCE")
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
            where = f"{url}: line {i + 1}: EXT-X-BYTERANGE"
            byte_range = (_integer(offset, where) if offset else -1, _integer(length, where))
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
    if init_url is None and needs_init:
        raise ManifestInvalid(f"{url}: no EXT-X-MAP: fragmented MP4 playlists need an init segment")
    if not segments:
        raise ManifestInvalid(f"{url}: no segments")
    return MediaPlaylist(init_url or "", tuple(segments), scheme, key_uri)


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
        roles: tuple[str, ...] = ("main",) if a.default else ()
        audio.append(Rendition(
            rendition_id=_track_id(a.uri), kind="audio", bandwidth_bps=0, codecs="",
            init_url=media.init_url, segments=media.segments, language=a.language,
            roles=roles + (("description",) if a.description else ()), key_uri=media.key_uri))
    text = []
    for t in master.subtitles:
        media = playlists[t.uri]
        roles = (("forced-subtitle",) if t.forced else ("subtitle",)) + (("caption",) if t.sdh else ())
        text.append(Rendition(rendition_id=_track_id(t.uri), kind="text", bandwidth_bps=0, codecs="",
                              init_url="", segments=media.segments, language=t.language, roles=roles))
    schemes = {playlists[u].scheme for u in {v.uri for v in master.variants} | {a.uri for a in master.audio}}
    duration = max(r.duration_s for r in video.values())
    return Presentation("hls", duration, one_scheme(schemes, url), tuple(sorted(video.values(), key=rate)),
                        tuple(audio), text=tuple(text), steering=master.steering, pathway=master.pathway)


def _integer(text: str, where: str) -> int:
    """A decimal-integer (RFC 8216 §4.2); ManifestInvalid says ``where`` one is not."""
    try:
        return int(text)
    except ValueError as e:
        raise ManifestInvalid(f"{where}: {text!r} is not an integer") from e


def _track_id(uri: str) -> str:
    return uri.split("?")[0].rsplit("/", 1)[-1].removesuffix(".m3u8")
