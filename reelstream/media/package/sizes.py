"""The segment-size sidecar: one small JSON file beside each track's init segment.

ReelStream's manifests use ``SegmentTemplate`` (DASH) and whole-segment URIs (HLS), so
neither carries segment sizes, and an ABR that plans by size (variable-size chunks of a
per-title ladder, issue #8) would otherwise have to assume ``bitrate x duration``. The
packager writes ``{track}/segment-sizes.json`` next to ``{track}/init.mp4``; a player
finds it by resolving ``segment-sizes.json`` against the init segment's URL, so it
inherits the signed edge prefix like every other object of the title::

    {"format": "reelstream.segment-sizes/1", "track_id": "h264-360p-800k",
     "first_number": 1, "sizes": [182723, 212057, 196406]}

``sizes[i]`` is the byte size of segment ``first_number + i``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

from reelstream.errors import ReelStreamError
from reelstream.media.package.model import Segment

NAME = "segment-sizes.json"
FORMAT = "reelstream.segment-sizes/1"


class SizesInvalid(ReelStreamError):
    """A segment-size sidecar is not the format above; the message says what is wrong."""


@dataclass(frozen=True)
class SegmentSizes:
    track_id: str
    first_number: int
    sizes: tuple[int, ...]

    def size(self, number: int) -> int | None:
        i = number - self.first_number
        return self.sizes[i] if 0 <= i < len(self.sizes) else None


def render(track_id: str, segments: Sequence[Segment]) -> bytes:
    numbers = [s.number for s in segments]
    first = numbers[0] if numbers else 1
    if numbers != list(range(first, first + len(numbers))):
        raise ValueError(f"{track_id}: segment numbers are not consecutive")
    return json.dumps({"format": FORMAT, "track_id": track_id, "first_number": first,
                       "sizes": [s.size for s in segments]}, separators=(",", ":")).encode()


def parse(data: bytes, where: str) -> SegmentSizes:
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SizesInvalid(f"{where}: not JSON ({e})") from e
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise SizesInvalid(f"{where}: 'format' must be {FORMAT!r}")
    sizes, first = doc.get("sizes"), doc.get("first_number")
    if not isinstance(first, int) or not isinstance(sizes, list) or \
            not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in sizes):
        raise SizesInvalid(f"{where}: needs an integer 'first_number' and 'sizes', positive byte counts")
    return SegmentSizes(str(doc.get("track_id", "")), first, tuple(sizes))
