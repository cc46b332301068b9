"""WebVTT subtitles cut into sidecar segments (plain ``text/vtt`` files, not fMP4 ``wvtt``).

Each segment is a complete WebVTT file holding every cue that overlaps its time span
(a cue spanning a boundary is repeated, as RFC 8216 3.1.4 and DASH-IF IOP allow), with
the original cue times, so segment N plays correctly on its own. Times are in
milliseconds (timescale 1000).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from reelstream.media.package.errors import PackagingError

_TIME = r"(?:(\d+):)?(\d{2}):(\d{2})\.(\d{3})"
_CUE_TIMING = re.compile(rf"^{_TIME}\s+-->\s+{_TIME}(.*)$")


class BadSubtitles(PackagingError):
    """A subtitle file is not WebVTT (no ``WEBVTT`` signature or an unreadable cue timing)."""


@dataclass(frozen=True)
class Cue:
    start_ms: int
    end_ms: int
    block: str  # the cue as written (identifier, timing line, payload)


def _ms(h: str | None, m: str, s: str, ms: str) -> int:
    return ((int(h or 0) * 60 + int(m)) * 60 + int(s)) * 1000 + int(ms)


def parse(text: str, file: str) -> tuple[str, list[Cue]]:
    """The header block (``WEBVTT`` line plus STYLE/REGION/NOTE blocks) and the cues."""
    text = text.lstrip("\ufeff").replace("\r\n", "\n")
    if not text.startswith("WEBVTT"):
        raise BadSubtitles(f"{file}: box 'WEBVTT': the file does not start with the WEBVTT signature")
    blocks = [b for b in re.split(r"\n{2,}", text.strip("\n")) if b.strip()]
    header, cues = [blocks[0]], list[Cue]()
    for block in blocks[1:]:
        lines = block.split("\n")
        timing = next((i for i, line in enumerate(lines[:2]) if "-->" in line), None)
        if timing is None:
            if not cues:
                header.append(block)  # STYLE / REGION / NOTE before the first cue
            continue
        m = _CUE_TIMING.match(lines[timing].strip())
        if not m:
            raise BadSubtitles(f"{file}: cue timing {lines[timing]!r} is not 'HH:MM:SS.mmm --> ...'")
        g = m.groups()
        cues.append(Cue(_ms(*g[0:4]), _ms(*g[4:8]), block))
    return "\n\n".join(header), cues


def segments(text: str, file: str, duration_ms: int, segment_ms: int) -> list[tuple[int, int, bytes]]:
    """(start, duration, bytes) of each segment covering [0, duration_ms)."""
    header, cues = parse(text, file)
    out: list[tuple[int, int, bytes]] = []
    end_all = max([duration_ms, *(c.end_ms for c in cues)]) if cues else duration_ms
    start = 0
    while start < end_all or not out:
        end = min(start + segment_ms, end_all) if end_all > start else start + segment_ms
        inside = [c.block for c in cues if c.start_ms < end and c.end_ms > start]
        body = header + "\n\n" + "".join(b + "\n\n" for b in inside)
        out.append((start, end - start, body.encode("utf-8")))
        start = end
    return out
