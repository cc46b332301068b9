"""The DASH MPD written by ReelStream from a ``Package``, a device profile and a URL
builder: a pure function, no I/O.

ISO/IEC 23009-1 (static MPD, SegmentTemplate with SegmentTimeline), ISO/IEC 23001-7 and
DASH-IF IOP (ContentProtection: ``urn:mpeg:dash:mp4protection:2011`` with
``cenc:default_KID``, then one descriptor per DRM system with ``cenc:pssh``), DASH-IF
roles and accessibility descriptors. The XML is written by hand, element by element in
schema order, so the bytes are stable for golden tests.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

from reelstream.media.package.hls import (
    CLEARKEY,
    COMMON,
    PLAYREADY,
    WIDEVINE,
    ContentSteering,
    DeviceProfile,
    UrlBuilder,
    select_tracks,
)
from reelstream.media.package.model import Package, PackagedTrack

MPD_NS = "urn:mpeg:dash:schema:mpd:2011"
CENC_NS = "urn:mpeg:cenc:2013"
DASHIF_NS = "https://dashif.org/CPS"  # dashif:Laurl, as Shaka Player reads it
ROLE_SCHEME = "urn:mpeg:dash:role:2011"
# TV-Anytime AudioPurposeCS: 1 = audio description for the visually impaired (DASH-IF IOP §6.1.4).
AUDIO_PURPOSE_SCHEME = "urn:tva:metadata:cs:AudioPurposeCS:2007"
PROFILES = "urn:mpeg:dash:profile:isoff-live:2011,urn:mpeg:dash:profile:cmaf:2019"
MIME = {"video": "video/mp4", "audio": "audio/mp4"}


@dataclass
class Node:
    """One XML element: attributes in insertion order, children or text."""

    tag: str
    attrs: list[tuple[str, str]] = field(default_factory=list)
    children: list[Node] = field(default_factory=list)
    text: str | None = None

    def add(self, tag: str, *attrs: tuple[str, object], text: str | None = None) -> Node:
        child = Node(tag, [(k, str(v)) for k, v in attrs if v is not None], text=text)
        self.children.append(child)
        return child

    def render(self, depth: int = 0) -> list[str]:
        pad = "  " * depth
        attrs = "".join(f' {k}="{escape(v, {chr(34): "&quot;"})}"' for k, v in self.attrs)
        if self.text is not None:
            return [f"{pad}<{self.tag}{attrs}>{escape(self.text)}</{self.tag}>"]
        if not self.children:
            return [f"{pad}<{self.tag}{attrs}/>"]
        lines = [f"{pad}<{self.tag}{attrs}>"]
        for child in self.children:
            lines += child.render(depth + 1)
        return lines + [f"{pad}</{self.tag}>"]


def xs_duration(value_s: float) -> str:
    """xs:duration in seconds (PT5.28S), trailing zeros trimmed."""
    text = f"{value_s:.3f}".rstrip("0").rstrip(".")
    return f"PT{text}S"


def segment_template(media_template: str) -> str:
    """Python's "{number:05d}" / "{number}" as DASH "$Number%05d$" / "$Number$" (23009-1 §5.3.9.4.4)."""
    def repl(match: re.Match[str]) -> str:
        spec = match.group(1)
        return f"$Number%{spec}$" if spec else "$Number$"
    return re.sub(r"\{number(?::(0\d+d))?\}", repl, media_template.replace("$", "$$"))


def kid_uuid(kid: str) -> str:
    return f"{kid[:8]}-{kid[8:12]}-{kid[12:16]}-{kid[16:20]}-{kid[20:]}"


def mpd(package: Package, profile: DeviceProfile, urls: UrlBuilder, steering: ContentSteering | None = None) -> str:
    """The static MPD of ``package`` for ``profile``. With ``steering``, one MPD-level
    ``BaseURL`` per pathway (``serviceLocation``) and a ``ContentSteering`` element (the
    order of the DASH-IF Content Steering examples); segment URLs in ``urls`` are then
    relative to the chosen BaseURL."""
    chosen = select_tracks(package, profile)
    root = Node("MPD", [("xmlns", MPD_NS), ("xmlns:cenc", CENC_NS), ("xmlns:dashif", DASHIF_NS),
                        ("profiles", PROFILES), ("type", "static"),
                        ("mediaPresentationDuration", xs_duration(package.duration_s)),
                        ("minBufferTime", xs_duration(_longest_segment(package.tracks)))])
    if steering is not None:
        root.add("ContentSteering", ("defaultServiceLocation", steering.default),
                 ("queryBeforeStart", str(steering.query_before_start).lower()), text=steering.server_uri)
        for pathway in steering.pathways:
            root.add("BaseURL", ("serviceLocation", pathway.pathway_id), text=pathway.urls.media_base)
    period = root.add("Period", ("id", "0"), ("start", "PT0S"))
    groups = _adaptation_groups(chosen.video) + _adaptation_groups(chosen.audio) + _adaptation_groups(chosen.text)
    for set_id, tracks in enumerate(groups):
        _adaptation_set(period, set_id, tracks, package, profile, urls, _switchable(groups, set_id))
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + "\n".join(root.render()) + "\n"


def _longest_segment(tracks: Iterable[PackagedTrack]) -> float:
    return max((s.duration / t.timescale for t in tracks for s in t.segments), default=2.0)


def _switch_family(t: PackagedTrack) -> tuple[object, ...]:
    """Tracks a player may switch between seamlessly: same kind, codec family, language,
    roles and accessibility (so each audio language and each AD track is apart). HDR and
    SDR renditions never mix: a switch between them is not seamless."""
    return (t.kind, t.codecs.split(".")[0], t.language, t.roles, t.accessibility, t.init == "", t.video_range)


def _adaptation_groups(tracks: Sequence[PackagedTrack]) -> list[list[PackagedTrack]]:
    """One set per switch family and content key: DASH-IF IOP v4.3 §7.5.2 and §7.7.1 put
    the ContentProtection descriptors (and so one ``cenc:default_KID``) on the
    AdaptationSet, for all its Representations, so SD and HD renditions under different
    keys go to different sets (``_switchable`` says a player may switch between them)."""
    groups: dict[tuple[object, ...], list[PackagedTrack]] = {}
    for t in tracks:
        groups.setdefault((*_switch_family(t), t.key_id), []).append(t)
    return list(groups.values())


def _switchable(groups: Sequence[Sequence[PackagedTrack]], set_id: int) -> list[int]:
    """The other sets of the same switch family (those split only by their key)."""
    family = _switch_family(groups[set_id][0])
    return [i for i, g in enumerate(groups) if i != set_id and _switch_family(g[0]) == family]


def _adaptation_set(period: Node, set_id: int, tracks: list[PackagedTrack], package: Package,
                    profile: DeviceProfile, urls: UrlBuilder, switchable: Sequence[int] = ()) -> None:
    first = tracks[0]
    raw_vtt = first.kind == "text" and not first.init
    mime = "text/vtt" if raw_vtt else MIME.get(first.kind, "application/mp4")
    attrs: list[tuple[str, object]] = [("id", set_id), ("contentType", first.kind), ("mimeType", mime)]
    if first.language:
        attrs.append(("lang", first.language))
    if first.kind != "text":
        attrs += [("segmentAlignment", "true"), ("startWithSAP", 1)]
    if first.kind == "video":
        attrs += [("maxWidth", max(t.width or 0 for t in tracks)), ("maxHeight", max(t.height or 0 for t in tracks))]
    aset = period.add("AdaptationSet", *attrs)
    if package.scheme != "clear" and first.key_id:  # one key per set (_adaptation_groups)
        _content_protection(aset, first.key_id, package, profile, urls)
    if first.kind == "video" and first.video_range in _CICP_TRANSFER:
        # DASH-IF IOP v4.3 §6.2.5: HDR10 / HLG sets signal colour primaries, transfer and
        # matrix with the CICP code points of ISO/IEC 23091-2 (BT.2020 = 9, PQ = 16, HLG = 18).
        for name, value in (("ColourPrimaries", 9), ("TransferCharacteristics", _CICP_TRANSFER[first.video_range]),
                            ("MatrixCoefficients", 9)):
            aset.add("SupplementalProperty", ("schemeIdUri", f"urn:mpeg:mpegB:cicp:{name}"), ("value", value))
    if switchable:
        # DASH-IF IOP v4.3 §3.8: seamless switching across sets (the same rungs under other keys).
        aset.add("SupplementalProperty", ("schemeIdUri", "urn:mpeg:dash:adaptation-set-switching:2016"),
                 ("value", ",".join(str(i) for i in switchable)))
    for role in first.roles or (("main",) if first.kind != "text" else ("subtitle",)):
        aset.add("Role", ("schemeIdUri", ROLE_SCHEME), ("value", role))
    if "audio-description" in first.accessibility:
        aset.add("Accessibility", ("schemeIdUri", AUDIO_PURPOSE_SCHEME), ("value", 1))
    if "sdh" in first.accessibility:
        # DASH-IF IOP: captions for the deaf and hard of hearing are role "caption".
        aset.add("Accessibility", ("schemeIdUri", ROLE_SCHEME), ("value", "caption"))
    for track in tracks:
        rep = aset.add("Representation", *_representation_attrs(track))
        if raw_vtt and len(track.segments) == 1:
            rep.add("BaseURL", text=urls.media(track, track.segments[0].number))
        else:
            _segment_template(rep, track, urls)


_CICP_TRANSFER = {"PQ": 16, "HLG": 18}


def _representation_attrs(track: PackagedTrack) -> list[tuple[str, object]]:
    attrs: list[tuple[str, object]] = [("id", track.track_id), ("bandwidth", track.bandwidth)]
    if track.init:
        attrs.append(("codecs", track.codecs))
    if track.kind == "video":
        attrs += [("width", track.width), ("height", track.height), ("frameRate", track.frame_rate), ("sar", "1:1")]
    if track.kind == "audio":
        attrs.append(("audioSamplingRate", track.timescale))
    return attrs


def _content_protection(parent: Node, key_id: str, package: Package, profile: DeviceProfile,
                        urls: UrlBuilder) -> None:
    parent.add("ContentProtection", ("schemeIdUri", "urn:mpeg:dash:mp4protection:2011"),
               ("value", package.scheme), ("cenc:default_KID", kid_uuid(key_id)))
    if "clearkey" in profile.drm:
        pssh = package.pssh.get(COMMON) or package.pssh.get(CLEARKEY)
        cp = parent.add("ContentProtection", ("schemeIdUri", f"urn:uuid:{CLEARKEY}"), ("value", "ClearKey1.0"))
        if urls.clearkey_license:
            cp.add("dashif:Laurl", text=urls.clearkey_license)
        if pssh:
            cp.add("cenc:pssh", text=pssh)
    for name, system, value in (("widevine", WIDEVINE, "Widevine"), ("playready", PLAYREADY, "MSPR 2.0")):
        if name in profile.drm and system in package.pssh:
            cp = parent.add("ContentProtection", ("schemeIdUri", f"urn:uuid:{system}"), ("value", value))
            cp.add("cenc:pssh", text=package.pssh[system])


def _segment_template(rep: Node, track: PackagedTrack, urls: UrlBuilder) -> None:
    first = track.segments[0].number if track.segments else 1
    template = rep.add("SegmentTemplate", ("timescale", track.timescale),
                       ("initialization", urls.init(track) if track.init else None),
                       ("media", segment_template(urls.media_base + track.media_template)),
                       ("startNumber", first))
    timeline = template.add("SegmentTimeline")
    expected = None
    run: list[int] = []  # [t, d, r] of the current S element
    for segment in track.segments:
        if run and segment.duration == run[1] and segment.start == expected:
            run[2] += 1
        else:
            if run:
                _s(timeline, run, first_s=len(timeline.children) == 0 or run[0] != run[3])
            run = [segment.start, segment.duration, 0, expected if expected is not None else -1]
        expected = segment.start + segment.duration
    if run:
        _s(timeline, run, first_s=len(timeline.children) == 0 or run[0] != run[3])


def _s(timeline: Node, run: list[int], first_s: bool) -> None:
    """An S element; ``t`` only where the timeline starts or jumps (23009-1 §5.3.9.6)."""
    timeline.add("S", ("t", run[0] if first_s else None), ("d", run[1]), ("r", run[2] or None))
