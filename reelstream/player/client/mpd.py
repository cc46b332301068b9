"""DASH MPDs (ISO/IEC 23009-1) as a ``Presentation``: see :mod:`.manifest` for what is read."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import replace
from urllib.parse import urljoin

from reelstream.player.client.errors import ManifestInvalid
from reelstream.player.client.presentation import (
    Kind,
    Presentation,
    Rendition,
    Scheme,
    SegmentRef,
    Steering,
    one_scheme,
    rate,
)

NS = {"mpd": "urn:mpeg:dash:schema:mpd:2011", "cenc": "urn:mpeg:cenc:2013", "dashif": "https://dashif.org/CPS"}
MP4_PROTECTION = "urn:mpeg:dash:mp4protection:2011"
CLEARKEY_SYSTEM = "urn:uuid:e2719d58-a985-b3c9-781a-b030af78d30e"
ROLE_SCHEME = "urn:mpeg:dash:role:2011"


def parse_mpd(text: str, url: str, pathway: str | None = None) -> Presentation:
    """A static MPD's first Period as a ``Presentation`` whose URLs are on ``pathway`` (the
    steering default when None); ManifestInvalid names what is wrong."""
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
    steering = _steering(root, url)
    chosen = pathway or (steering.default if steering else None)
    if pathway is not None and (steering is None or pathway not in steering.pathways):
        raise ManifestInvalid(f"{url}: no BaseURL with serviceLocation {pathway!r} "
                              f"(offered: {', '.join(steering.pathways) if steering else 'none'})")
    base = _base_url(period, _base_url(root, url, chosen))
    tracks: dict[str, list[Rendition]] = {"video": [], "audio": [], "text": []}
    schemes: set[Scheme] = set()
    license_url = None
    for aset in period.findall("mpd:AdaptationSet", NS):
        kind = aset.get("contentType") or (aset.get("mimeType") or "").split("/")[0]
        if kind not in tracks:
            continue
        set_base = _base_url(aset, base)
        set_protection = _protection(aset)
        roles = _roles(aset)
        for rep in aset.findall("mpd:Representation", NS):
            scheme, kid, laurl = _protection(rep) if rep.find("mpd:ContentProtection", NS) is not None \
                else set_protection
            if kind != "text":  # subtitles are plain WebVTT, never encrypted
                schemes.add(scheme)
                license_url = license_url or (urljoin(url, laurl) if laurl else None)
            rendition = _representation(rep, aset, kind, _base_url(rep, set_base), duration, url)  # type: ignore[arg-type]
            rendition = replace(rendition, key_id=kid if kind != "text" else None, roles=roles,
                                language=aset.get("lang"))
            tracks[kind].append(rendition)
    if not tracks["video"] and not tracks["audio"]:
        raise ManifestInvalid(f"{url}: no video or audio Representation")
    return Presentation("dash", duration, one_scheme(schemes, url), tuple(sorted(tracks["video"], key=rate)),
                        tuple(tracks["audio"]), license_url, tuple(tracks["text"]), steering, chosen)


def _roles(aset: ET.Element) -> tuple[str, ...]:
    """Role values, plus "description" for audio description (TVA AudioPurpose 1) and
    "caption" for SDH (Accessibility in the DASH role scheme)."""
    roles = tuple(r.get("value", "") for r in aset.findall("mpd:Role", NS))
    for a in aset.findall("mpd:Accessibility", NS):
        if a.get("schemeIdUri") == "urn:tva:metadata:cs:AudioPurposeCS:2007" and a.get("value") == "1":
            roles += ("description",)
        elif a.get("schemeIdUri") == ROLE_SCHEME and a.get("value") == "caption" and "caption" not in roles:
            roles += ("caption",)
    return roles


def _steering(root: ET.Element, url: str) -> Steering | None:
    """DASH-IF Content Steering: the ``<ContentSteering>`` server, its
    ``defaultServiceLocation`` and every MPD-level ``BaseURL@serviceLocation`` (a pathway)."""
    element = root.find("mpd:ContentSteering", NS)
    if element is None:
        return None
    server = (element.text or "").strip()
    pathways = tuple(n.get("serviceLocation", "") for n in root.findall("mpd:BaseURL", NS) if n.get("serviceLocation"))
    if not server or not pathways:
        raise ManifestInvalid(f"{url}: ContentSteering needs a server URI and BaseURLs with serviceLocation")
    default = element.get("defaultServiceLocation") or pathways[0]
    if default not in pathways:
        raise ManifestInvalid(f"{url}: ContentSteering defaultServiceLocation {default!r} names no BaseURL")
    return Steering(urljoin(url, server), default, pathways,
                    element.get("queryBeforeStart", "false").lower() == "true")


def _base_url(element: ET.Element, base: str, service_location: str | None = None) -> str:
    nodes = element.findall("mpd:BaseURL", NS)
    chosen = [n for n in nodes if service_location and n.get("serviceLocation") == service_location]
    node = next(iter(chosen or nodes), None)
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
    bandwidth = _int(rep, "bandwidth", url) or 0
    if template is None and kind == "text":  # one WebVTT file for the whole title (its BaseURL)
        return Rendition(rendition_id=rid, kind=kind, bandwidth_bps=bandwidth, codecs="", init_url="",
                         segments=(SegmentRef(1, 0.0, duration_s, base),))
    if template is None:
        raise ManifestInvalid(f"{url}: Representation {rid} has no SegmentTemplate (SegmentBase is not supported)")
    init = template.get("initialization") or ("" if kind == "text" else None)
    media = template.get("media")
    if init is None or not media:
        raise ManifestInvalid(f"{url}: Representation {rid}: SegmentTemplate needs initialization and media")
    segments = tuple(
        SegmentRef(number, start / timescale, length / timescale,
                   urljoin(base, fill_template(media, rid, bandwidth, number, start)))
        for number, start, length, timescale in _timeline(template, duration_s, rid, url))
    return Rendition(
        rendition_id=rid, kind=kind, bandwidth_bps=bandwidth,
        codecs=rep.get("codecs") or aset.get("codecs") or "",
        init_url=urljoin(base, fill_template(init, rid, bandwidth, 0, 0)) if init else "", segments=segments,
        width=_int(rep, "width", url), height=_int(rep, "height", url))


def _int(element: ET.Element, name: str, url: str) -> int | None:
    """An integer attribute (None when absent); ManifestInvalid names one that is not."""
    value = element.get(name)
    if not value:
        return None
    try:
        return int(value)
    except ValueError as e:
        raise ManifestInvalid(f"{url}: {element.tag.rpartition('}')[2]}@{name} {value!r} is not an integer") from e


# More segments than any title has (2-s segments of a 4-day title): a manifest whose timeline
# expands past this (a huge S@r, a tiny @duration) is refused, not expanded into memory.
MAX_SEGMENTS = 200_000


def _timeline(template: ET.Element, duration_s: float, rid: str, url: str) -> Iterator[tuple[int, int, int, int]]:
    """(number, start, duration, timescale) of every segment, in the template's timescale;
    ManifestInvalid past ``MAX_SEGMENTS``."""
    for count, segment in enumerate(_segments(template, duration_s, rid, url)):
        if count == MAX_SEGMENTS:
            raise ManifestInvalid(f"{url}: Representation {rid}: the segment timeline runs past {MAX_SEGMENTS} "
                                  "segments")
        yield segment


def _segments(template: ET.Element, duration_s: float, rid: str, url: str) -> Iterator[tuple[int, int, int, int]]:
    timescale = _int(template, "timescale", url) or 1
    number = _int(template, "startNumber", url) or 1
    timeline = template.find("mpd:SegmentTimeline", NS)
    end = round(duration_s * timescale)
    if timeline is None:
        length = _int(template, "duration", url) or 0
        if length <= 0:
            raise ManifestInvalid(f"{url}: Representation {rid}: SegmentTemplate without a timeline or duration")
        for start in range(0, end, length):
            yield number, start, min(length, end - start), timescale
            number += 1
        return
    t = 0
    for s in timeline.findall("mpd:S", NS):
        t = given if (given := _int(s, "t", url)) is not None else t
        length, repeat = _int(s, "d", url) or 0, _int(s, "r", url) or 0
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
