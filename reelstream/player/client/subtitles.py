"""Subtitles, client side: which WebVTT segments a chunk brings along, and whether what
came back is the WebVTT the manifest promised.

ReelStream's packager cuts each subtitle track into whole WebVTT files on the media's
segment grid (``reelstream.media.package.webvtt``: every cue that overlaps a segment is in
it, with its original times, so a cue spanning a boundary is in both). The player
fetches, with each media chunk, the subtitle segments that overlap the chunk's time span
and have not been fetched yet (with the last chunk, every one left), and checks each
with the packager's own WebVTT reader: UTF-8, the ``WEBVTT`` signature, readable cue
timings, and every cue overlapping the segment's span (a cue outside it means the
segment was served for another number, or the cue times were shifted). Pure.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from reelstream.media.package import webvtt
from reelstream.player.client.errors import SubtitlesInvalid
from reelstream.player.client.presentation import Rendition, SegmentRef


@dataclass(frozen=True)
class Cue:
    start_s: float
    end_s: float
    text: str  # the payload lines, joined with "\n"


@dataclass
class SubtitleTrack:
    """What a session fetched of one subtitle track."""

    rendition_id: str
    language: str | None
    roles: tuple[str, ...]
    segments: int = 0
    bytes: int = 0
    cues: list[Cue] = field(default_factory=list)  # in time order, each once

    def add(self, cues: Iterable[Cue], size: int) -> None:
        self.segments += 1
        self.bytes += size
        self.cues = sorted(set(self.cues) | set(cues), key=lambda c: (c.start_s, c.end_s, c.text))


def due_segments(track: Rendition, start_s: float, end_s: float, fetched: set[int], last: bool) -> list[SegmentRef]:
    """Segments of ``track`` to fetch with the chunk spanning [start_s, end_s)."""
    def wanted(s: SegmentRef) -> bool:
        ends_after_start = s.start_s + s.duration_s > start_s + 1e-6
        return ends_after_start and (last or s.start_s < end_s - 1e-6)
    return [s for s in track.segments if s.number not in fetched and wanted(s)]


def check_vtt(data: bytes, seg: SegmentRef, url: str) -> list[Cue]:
    """The cues of one WebVTT segment; SubtitlesInvalid says what is wrong with it."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SubtitlesInvalid(f"{url}: subtitle segment {seg.number} is not UTF-8: {e}") from e
    try:
        _, cues = webvtt.parse(text, url)
    except webvtt.BadSubtitles as e:
        raise SubtitlesInvalid(f"subtitle segment {seg.number}: {e}") from e
    start_ms, end_ms = round(seg.start_s * 1000), round((seg.start_s + seg.duration_s) * 1000)
    out = []
    for cue in cues:
        if cue.start_ms >= end_ms or cue.end_ms <= start_ms:
            raise SubtitlesInvalid(f"{url}: subtitle segment {seg.number} ({start_ms}-{end_ms} ms) holds a cue at "
                                   f"{cue.start_ms}-{cue.end_ms} ms, outside its span")
        out.append(Cue(cue.start_ms / 1000, cue.end_ms / 1000, _payload(cue.block)))
    return out


def _payload(block: str) -> str:
    """A cue block's text: the lines after its timing line (WebVTT §4.1)."""
    lines = block.split("\n")
    timing = next(i for i, line in enumerate(lines) if "-->" in line)
    return "\n".join(lines[timing + 1:])
