"""HLS playlists written by ReelStream from a ``Package``, a device profile and a URL
builder: pure functions, no I/O (the gateway calls them per request).

Tags follow RFC 8216 and its successor draft (draft-pantos-hls-rfc8216bis, which adds
``METHOD=SAMPLE-AES-CTR`` for ``cenc``); accessibility characteristics follow Apple's
HLS Authoring Specification. The device profile, URL builder and track selection live
here and are shared with ``dash.py``.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from reelstream.errors import ReelStreamError
from reelstream.media.package.model import Package, PackagedTrack

# DASH-IF registered DRM system ids (https://dashif.org/identifiers/content_protection/).
WIDEVINE = "edef8ba9-79d6-4ace-a3c8-27dcd51d21ed"
PLAYREADY = "9a04f079-9840-4286-ab92-e65be0885f95"
FAIRPLAY = "94ce86fb-07ff-4f43-adb8-93d2fa968ca2"
COMMON = "1077efec-c0b2-4d02-ace3-3c1e52e2fb4b"  # W3C Common PSSH, used by Clear Key
CLEARKEY = "e2719d58-a985-b3c9-781a-b030af78d30e"  # DASH-IF Clear Key ContentProtection

DrmName = Literal["clearkey", "widevine", "playready", "fairplay"]
DRM_ORDER: tuple[DrmName, ...] = ("clearkey", "widevine", "playready", "fairplay")

# Software-secure CDMs may hold only these classes (issue #4: "a software-secure device
# that may only play SD cannot decrypt HD"). Clear tracks have no class and always pass.
SOFTWARE_KEY_CLASSES = frozenset({"AUDIO", "SD"})

SDH_CHARACTERISTICS = "public.accessibility.transcribes-spoken-dialog,public.accessibility.describes-music-and-sound"
AD_CHARACTERISTICS = "public.accessibility.describes-video"
HLS_VERSION = 6  # EXT-X-MAP in a playlist without EXT-X-I-FRAMES-ONLY needs version 6 (RFC 8216 §7)


class NothingPlayable(ReelStreamError):
    """No video or audio track of the package is playable on the device profile; the
    message lists what was dropped and why."""


class UnknownTrack(NothingPlayable):
    """The package has no track of that id at all (a wrong name, not one this device
    is refused): a not-found, where a track withheld from the device is a refusal."""


# --------------------------------------------------------------------------- shared with dash.py


@dataclass(frozen=True)
class DeviceProfile:
    """What a device can play: the RFC 6381 sample-entry codes it decodes, its largest
    video height, whether its CDM is hardware-secure, and the DRM systems it has."""

    name: str
    codecs: frozenset[str]  # "avc1", "avc3", "hvc1", "hev1", "vp09", "av01", "mp4a", "ec-3", "opus", "wvtt"
    max_height: int = 2160
    security: Literal["hardware", "software"] = "software"
    drm: tuple[DrmName, ...] = ("clearkey",)

    def why_not(self, track: PackagedTrack) -> str | None:
        """Why ``track`` is not playable here, or None when it is."""
        codes = {c.strip().split(".")[0] for c in track.codecs.split(",")}
        missing = sorted(codes - self.codecs)
        if missing:
            return f"codec {','.join(missing)} not decoded by {self.name}"
        if track.kind == "video" and (track.height or 0) > self.max_height:
            return f"{track.height} lines > {self.max_height}"
        if track.key_class and self.security == "software" and track.key_class not in SOFTWARE_KEY_CLASSES:
            return f"{track.key_class} key not released to a software-secure CDM"
        return None


# Debian's Chromium 156 headless (shared/MEASURED.md): H.264, VP9, AV1, AAC, Opus; no
# HEVC; Clear Key only (no Widevine CDM); a software CDM, so SD and audio keys only.
CHROMIUM_CLEARKEY = DeviceProfile(
    "chromium-clearkey", frozenset({"avc1", "avc3", "vp09", "av01", "mp4a", "opus", "wvtt"}),
    max_height=2160, security="software", drm=("clearkey",))


@dataclass(frozen=True)
class UrlBuilder:
    """Where players fetch things. ``media_base`` prefixes the package's relative object
    keys (a CDN path, or "" to resolve against the manifest URL); ``playlist_base``
    prefixes media playlist names in the multivariant playlist."""

    media_base: str = ""
    playlist_base: str = ""
    clearkey_license: str | None = None  # DASH dashif:Laurl (EME Clear Key license JSON)
    clearkey_key: str | None = None  # HLS identity key URI, "{key_id}" replaced by the KID hex
    fairplay_host: str = ""  # skd://{host}/{kid}; "" gives skd://{kid}

    def init(self, track: PackagedTrack) -> str:
        return self.media_base + track.init

    def media(self, track: PackagedTrack, number: int) -> str:
        return self.media_base + track.media_key(number)

    def playlist(self, track: PackagedTrack) -> str:
        return f"{self.playlist_base}{track.track_id}.m3u8"


@dataclass(frozen=True)
class Pathway:
    """One content-steering pathway (HLS ``PATHWAY-ID``, DASH ``serviceLocation``): a
    delivery path (an edge node) with its own URLs, signed for that edge."""

    pathway_id: str  # [A-Za-z0-9._-], as rfc8216bis §4.4.6.6 allows
    urls: UrlBuilder


@dataclass(frozen=True)
class ContentSteering:
    """Where a player asks which pathway to use (HLS ``EXT-X-CONTENT-STEERING``,
    draft-pantos-hls-rfc8216bis §4.4.6.6; DASH ``<ContentSteering>``, DASH-IF Content
    Steering / ISO/IEC 23009-1 Amd.), and the pathways, the default first."""

    server_uri: str
    pathways: tuple[Pathway, ...]
    query_before_start: bool = True  # DASH: ask the steering server before the first segment

    @property
    def default(self) -> str:
        return self.pathways[0].pathway_id


@dataclass(frozen=True)
class Selection:
    """The tracks a device gets, in package order, and what was dropped (for logs)."""

    video: tuple[PackagedTrack, ...]
    audio: tuple[PackagedTrack, ...]
    text: tuple[PackagedTrack, ...]
    dropped: tuple[tuple[str, str], ...] = field(default=())  # (track_id, reason)


def select_tracks(package: Package, profile: DeviceProfile) -> Selection:
    kept: dict[str, list[PackagedTrack]] = {"video": [], "audio": [], "text": []}
    dropped = []
    for track in package.tracks:
        reason = profile.why_not(track)
        if reason is None:
            kept[track.kind].append(track)
        else:
            dropped.append((track.track_id, reason))
    if not kept["video"] and not kept["audio"]:
        detail = "; ".join(f"{t}: {r}" for t, r in dropped)
        raise NothingPlayable(f"title {package.title_id}: nothing playable on {profile.name} ({detail})")
    return Selection(tuple(kept["video"]), tuple(kept["audio"]), tuple(kept["text"]), tuple(dropped))


LANGUAGE_NAMES = {"en": "English", "fr": "French", "de": "German", "es": "Spanish", "it": "Italian",
                  "pt": "Portuguese", "nl": "Dutch", "ja": "Japanese", "ko": "Korean", "zh": "Chinese",
                  "ar": "Arabic", "hi": "Hindi", "ru": "Russian", "sv": "Swedish", "pl": "Polish"}


def display_name(track: PackagedTrack) -> str:
    """"English", "English (audio description)", "French (SDH)", "French (forced)"."""
    language = track.language or "und"
    name = LANGUAGE_NAMES.get(language.split("-")[0], language)
    notes = []
    if "audio-description" in track.accessibility:
        notes.append("audio description")
    if "sdh" in track.accessibility:
        notes.append("SDH")
    if "forced-subtitle" in track.roles:
        notes.append("forced")
    return f"{name} ({', '.join(notes)})" if notes else name


def seconds(value: int, timescale: int) -> str:
    """A duration with millisecond precision, as EXTINF and xs:duration both print it."""
    return f"{value / timescale:.3f}"


def pssh_payload(box_b64: str) -> bytes:
    """The ``Data`` of a base64 ``pssh`` box (ISO/IEC 23001-7 §8.1.1): for PlayReady,
    the PlayReady Header Object HLS carries in its data URI."""
    box = base64.b64decode(box_b64)
    version = box[8]
    offset = 28
    if version > 0:
        (count,) = struct.unpack(">I", box[offset:offset + 4])
        offset += 4 + 16 * count
    (size,) = struct.unpack(">I", box[offset:offset + 4])
    return box[offset + 4:offset + 4 + size]


# --------------------------------------------------------------------------- tags


@dataclass(frozen=True)
class KeyTag:
    """EXT-X-KEY (RFC 8216 §4.3.2.4) / EXT-X-SESSION-KEY (§4.3.4.5)."""

    method: str  # SAMPLE-AES-CTR (cenc) or SAMPLE-AES (cbcs)
    uri: str
    keyformat: str

    def render(self, session: bool = False) -> str:
        tag = "EXT-X-SESSION-KEY" if session else "EXT-X-KEY"
        return (f'#{tag}:METHOD={self.method},URI="{self.uri}",KEYFORMAT="{self.keyformat}",'
                f'KEYFORMATVERSIONS="1"')


def key_tags(package: Package, key_id: str, profile: DeviceProfile, urls: UrlBuilder,
             session: bool = False) -> list[KeyTag]:
    """One tag per DRM system the device has and the package signals, in DRM_ORDER."""
    method = {"cenc": "SAMPLE-AES-CTR", "cbcs": "SAMPLE-AES"}[package.scheme]
    tags = []
    for drm in DRM_ORDER:
        if drm not in profile.drm:
            continue
        if drm == "clearkey" and urls.clearkey_key and not session:
            # KEYFORMAT "identity": Shaka fetches the 16-byte key from URI and takes the KID from
            # the init segment's tenc. Not used as a session key: there the KID is unknown
            # (Shaka assumes all zeros), so it would announce a key that matches nothing.
            tags.append(KeyTag(method, urls.clearkey_key.format(key_id=key_id), "identity"))
        elif drm == "widevine" and WIDEVINE in package.pssh:
            tags.append(KeyTag(method, f"data:text/plain;base64,{package.pssh[WIDEVINE]}", f"urn:uuid:{WIDEVINE}"))
        elif drm == "playready" and PLAYREADY in package.pssh:
            pro = base64.b64encode(pssh_payload(package.pssh[PLAYREADY])).decode()
            tags.append(KeyTag(method, f"data:text/plain;charset=UTF-16;base64,{pro}", "com.microsoft.playready"))
        elif drm == "fairplay" and package.scheme == "cbcs":
            # FairPlay decrypts cbcs only; the skd:// URI names the key for the key server.
            host = f"{urls.fairplay_host}/" if urls.fairplay_host else ""
            tags.append(KeyTag(method, f"skd://{host}{key_id}", "com.apple.streamingkeydelivery"))
    return tags


def _attributes(pairs: Sequence[tuple[str, str | int | None]]) -> str:
    return ",".join(f"{k}={v}" for k, v in pairs if v is not None)


def _q(value: str) -> str:
    if '"' in value or "\n" in value or "\r" in value:
        raise ValueError(f"HLS quoted-string cannot hold {value!r}")
    return f'"{value}"'


def frame_rate(value: str | None) -> str | None:
    if not value:
        return None
    num, _, den = value.partition("/")
    return f"{int(num) / int(den or 1):.3f}"


# --------------------------------------------------------------------------- multivariant


def multivariant_playlist(package: Package, profile: DeviceProfile, urls: UrlBuilder,
                          steering: ContentSteering | None = None) -> str:
    """The multivariant ("master") playlist: renditions the device can play, one
    EXT-X-STREAM-INF per video track and audio codec group (per pathway with ``steering``)."""
    chosen = select_tracks(package, profile)
    lines = ["#EXTM3U", f"#EXT-X-VERSION:{HLS_VERSION}", "#EXT-X-INDEPENDENT-SEGMENTS"]
    if package.scheme != "clear":
        seen: set[str] = set()
        for track in chosen.video + chosen.audio:
            for tag in key_tags(package, track.key_id or "", profile, urls, session=True):
                line = tag.render(session=True)
                if track.key_id and line not in seen:
                    seen.add(line)
                    lines.append(line)
    if steering is None:
        lines += _variants(chosen, urls, "", None)
    else:
        # Each pathway repeats the variants with its own URLs and its own rendition groups
        # (a variant's groups must be on its pathway); players switch without a new playlist.
        lines.append(f"#EXT-X-CONTENT-STEERING:SERVER-URI={_q(steering.server_uri)},PATHWAY-ID={_q(steering.default)}")
        for pathway in steering.pathways:
            lines += _variants(chosen, pathway.urls, f"-{pathway.pathway_id}", pathway.pathway_id)
    return "\n".join(lines) + "\n"


def _variants(chosen: Selection, urls: UrlBuilder, suffix: str, pathway: str | None) -> list[str]:
    """The EXT-X-MEDIA and EXT-X-STREAM-INF lines of one pathway (or of the only one)."""
    lines: list[str] = []
    groups = _audio_groups(chosen.audio, suffix)
    for group, tracks in groups.items():
        default = _default_audio(tracks)
        for track in tracks:
            lines.append("#EXT-X-MEDIA:" + _attributes([
                ("TYPE", "AUDIO"), ("GROUP-ID", _q(group)), ("LANGUAGE", _q(track.language or "und")),
                ("NAME", _q(display_name(track))), ("DEFAULT", "YES" if track is default else "NO"),
                ("AUTOSELECT", "YES"),
                ("CHARACTERISTICS", _q(AD_CHARACTERISTICS) if "audio-description" in track.accessibility else None),
                ("URI", _q(urls.playlist(track)))]))
    for track in chosen.text:
        forced = "forced-subtitle" in track.roles
        lines.append("#EXT-X-MEDIA:" + _attributes([
            ("TYPE", "SUBTITLES"), ("GROUP-ID", _q("subs" + suffix)), ("LANGUAGE", _q(track.language or "und")),
            ("NAME", _q(display_name(track))), ("DEFAULT", "NO"), ("AUTOSELECT", "YES"),
            ("FORCED", "YES" if forced else "NO"),
            ("CHARACTERISTICS", _q(SDH_CHARACTERISTICS) if "sdh" in track.accessibility else None),
            ("URI", _q(urls.playlist(track))),
            # Not an EXT-X-MEDIA attribute in rfc8216bis (clients ignore unknown ones): Shaka Player
            # 5.2 ties a subtitles group to its pathway only through it (audio through the variants).
            ("PATHWAY-ID", _q(pathway) if pathway else None)]))
    text_peak = max((t.bandwidth for t in chosen.text), default=0)
    text_average = max((t.average_bandwidth for t in chosen.text), default=0)
    text_codecs = sorted({t.codecs for t in chosen.text if t.init})  # raw WebVTT needs no CODECS entry
    for video in chosen.video:
        for group, tracks in (groups.items() or [("", [])]):
            codecs = [video.codecs] + ([tracks[0].codecs] if tracks else []) + text_codecs
            lines.append("#EXT-X-STREAM-INF:" + _attributes([
                ("BANDWIDTH", video.bandwidth + max((t.bandwidth for t in tracks), default=0) + text_peak),
                ("AVERAGE-BANDWIDTH", video.average_bandwidth
                 + max((t.average_bandwidth for t in tracks), default=0) + text_average),
                ("CODECS", _q(",".join(codecs))),
                ("RESOLUTION", f"{video.width}x{video.height}" if video.width and video.height else None),
                ("FRAME-RATE", frame_rate(video.frame_rate)),
                ("VIDEO-RANGE", video.video_range),
                ("AUDIO", _q(group) if tracks else None),
                ("SUBTITLES", _q("subs" + suffix) if chosen.text else None),
                ("PATHWAY-ID", _q(pathway) if pathway else None)]))
            lines.append(urls.playlist(video))
    return lines


def _audio_groups(audio: Sequence[PackagedTrack], suffix: str = "") -> dict[str, list[PackagedTrack]]:
    """One group per audio codec (a variant names one group; its CODECS must cover every
    rendition in it)."""
    groups: dict[str, list[PackagedTrack]] = {}
    for track in audio:
        groups.setdefault(f"audio-{track.codecs}{suffix}", []).append(track)
    return groups


def _default_audio(tracks: Sequence[PackagedTrack]) -> PackagedTrack:
    plain = [t for t in tracks if "audio-description" not in t.accessibility]
    main = [t for t in plain if "main" in t.roles]
    return (main or plain or list(tracks))[0]


# --------------------------------------------------------------------------- media playlists


def media_playlist(package: Package, track_id: str, profile: DeviceProfile, urls: UrlBuilder) -> str:
    """One track's media playlist (VOD): keys, init map, every segment, ENDLIST."""
    chosen = select_tracks(package, profile)
    track = next((t for t in chosen.video + chosen.audio + chosen.text if t.track_id == track_id), None)
    if track is None:
        dropped = dict(chosen.dropped)
        if track_id not in dropped:
            raise UnknownTrack(f"title {package.title_id} has no track {track_id!r}; the multivariant "
                               "playlist (master.m3u8) lists this device's tracks")
        raise NothingPlayable(f"title {package.title_id}: track {track_id} not offered to {profile.name} "
                              f"({dropped[track_id]})")
    durations = [s.duration / track.timescale for s in track.segments]
    target = max((int(d + 0.5) for d in durations), default=1)  # RFC 8216 §4.3.3.1: rounded EXTINF <= target
    first = track.segments[0].number if track.segments else 1
    lines = ["#EXTM3U", f"#EXT-X-VERSION:{HLS_VERSION}", f"#EXT-X-TARGETDURATION:{max(target, 1)}",
             f"#EXT-X-MEDIA-SEQUENCE:{first}", "#EXT-X-PLAYLIST-TYPE:VOD"]
    if track.kind != "text":
        lines.append("#EXT-X-INDEPENDENT-SEGMENTS")
    if package.scheme != "clear" and track.key_id:
        lines += [t.render() for t in key_tags(package, track.key_id, profile, urls)]
    if track.init:
        lines.append(f'#EXT-X-MAP:URI="{urls.init(track)}"')
    for segment in track.segments:
        lines.append(f"#EXTINF:{seconds(segment.duration, track.timescale)},")
        lines.append(urls.media(track, segment.number))
    lines.append("#EXT-X-ENDLIST")
    return "\n".join(lines) + "\n"
